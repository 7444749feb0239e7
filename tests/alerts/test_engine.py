"""RuleEngine on hand-made event sequences, one section per rule type.

Every stateful rule is also run with its state going through json.dumps/loads after every
event (what a changelog restore does) and must give identical alerts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from matrixwatch.alerts.engine import END_OF_INPUT_GUARD, RuleEngine, is_question
from matrixwatch.alerts.rules import UnansweredRuleParams, load_rules
from matrixwatch.streams.records import CollectorHealth, LinkageResult
from tests.alerts.helpers import (
    A1,
    A2,
    PROV,
    REG,
    A,
    B,
    C,
    D,
    H,
    M,
    S,
    ev,
    quiet_history,
    rule,
    run,
)
from tests.factories import T0

DAY = timedelta(days=1)
RULES = {r.name: r for r in load_rules()}


def engine(*names: str) -> RuleEngine:
    return RuleEngine([RULES[n] for n in names], REG)


def dumped(alerts: list) -> list[dict]:
    return [a.asdict() for a in alerts]


def burst(n: int, start=T0 + 5 * H, step=20 * S, label="negative", owner=A2, post="p1",
          text="停水三天了没人管，太气人了", prefix="b") -> list:
    return [ev(f"{prefix}{i}", start + i * step, author=f"96{i:08d}", owner=owner, post=post,
               label=label, text=text) for i in range(n)]


# --- spike ------------------------------------------------------------------------------
def test_zero_to_two_never_fires() -> None:
    """A quiet account (baseline ~0) getting 2 events in a bucket never alerts; nor do
    counts under each rule's floor (volume 10, negatives 6)."""
    eng = engine("volume_spike", "negative_surge", "post_spike")
    assert run(eng, quiet_history() + burst(2)) == []
    assert run(eng, quiet_history() + burst(5)) == []
    assert run(engine("volume_spike", "post_spike"), quiet_history() + burst(9)) == []


def test_burst_fires_within_the_burst_with_event_time_and_samples() -> None:
    eng = engine("volume_spike")
    events = quiet_history() + burst(30)
    alerts = run(eng, events)
    assert alerts, "30 complaints in ten minutes on a quiet county account must alert"
    first = alerts[0]
    assert first.rule == "volume_spike" and first.type == "spike"
    assert first.account_id == A2 and first.post_id is None
    assert first.unit == "甲市西区人民政府" and first.level == "county"
    assert first.values["value"] >= 10
    # Fired by the 10th event of the burst, at its event time (not the wall clock).
    assert first.timestamp == events[len(quiet_history()) + 9].created_at
    assert "2026-11-02 14:00" in first.message  # bucket start shown in Beijing time
    assert first.samples and first.samples[-1].endswith("https://weibo.com/9100000112/b9")
    sev = [a.severity for a in alerts]
    assert len(sev) == len(set(sev)), "one alert per severity level as the burst grows"
    assert [a.id for a in run(eng, events)] == [a.id for a in alerts]  # deterministic ids


def test_samples_of_closed_buckets_are_forgotten() -> None:
    """Samples serve the alert of their own bucket; once it closes they are dropped (the
    state is changelogged on every change), and alerts keep the samples of their bucket."""
    eng = engine("volume_spike")
    events = quiet_history() + burst(30)
    state = None
    alerts: list = []
    for e in events:
        state, out = eng.on_event(state, e)
        alerts += out
        c = state["rules"]["volume_spike"]["c"]
        if c["last_closed"] is not None:
            assert all(t >= c["last_closed"] + 300 for t, _ in c.get("recent", []))
    assert alerts and all(a.samples for a in alerts)
    assert alerts == run(eng, events)
    # An event two buckets later closes the burst's buckets: their samples go.
    assert len(c["recent"]) == 3
    state, _ = eng.on_event(state, ev("late", T0 + 5 * H + 30 * M, author="9600000099"))
    c = state["rules"]["volume_spike"]["c"]
    assert len(c["recent"]) == 1 and c["recent"][0][1].endswith("/late")


def test_spike_restart_mid_sequence_gives_identical_alerts() -> None:
    eng = engine("volume_spike", "post_spike", "negative_surge")
    events = quiet_history() + burst(40) + burst(30, start=T0 + 9 * H, prefix="c")
    plain = dumped(run(eng, events))
    assert plain
    assert dumped(run(eng, events, restart_every=1)) == plain
    assert dumped(run(eng, events, restart_every=7)) == plain


def test_duplicated_events_count_once() -> None:
    eng = engine("volume_spike")
    events = quiet_history() + burst(12)
    once = run(eng, events)
    twice = run(eng, [e for e in events for _ in (0, 1)])
    assert dumped(twice) == dumped(once)


def test_filter_by_level_and_unregistered_owner() -> None:
    r = rule("type: spike\nfilter: {levels: [city]}\n")
    eng = RuleEngine([r], REG)
    assert run(eng, quiet_history() + burst(40)) == []  # A2 is a county account
    r2 = rule("type: spike\n")
    stranger = "5555555555"
    events = quiet_history(owner=stranger) + burst(40, owner=stranger)
    assert run(RuleEngine([r2], REG), events) == []  # registered_only by default
    r3 = rule("type: spike\nfilter: {registered_only: false}\n")
    assert run(RuleEngine([r3], REG), events)


def test_per_post_spike_and_bounded_state() -> None:
    eng = engine("post_spike")
    warm = [ev(f"w{i}", T0 + i * 5 * M, author=f"77{i:08d}", post="p9")
            for i in range(24)]  # 2 h of one comment per bucket on post p9
    events = [*warm, *burst(60, start=T0 + 2 * H + 10 * M, step=4 * S, post="p9", label="neutral")]
    alerts = run(eng, events)
    assert alerts and {a.post_id for a in alerts} == {"p9"}
    assert alerts[0].title.startswith("甲市西区发布 微博 p9 互动突增")
    # Bounded: a post quiet for more than post_ttl is dropped when a new post appears.
    state, _ = None, []
    for e in events:
        state, _ = eng.on_event(state, e)
    later = ev("n1", T0 + 3 * DAY, post="p10")
    state, _ = eng.on_event(state, later)
    assert set(state["rules"]["post_spike"]["posts"]) == {"p10"}
    r = rule("type: spike\nparams: {per: post, max_posts: 3}\n")
    eng2 = RuleEngine([r], REG)
    st = None
    for i in range(10):
        st, _ = eng2.on_event(st, ev(f"x{i}", T0 + i * M, post=f"q{i}"))
    assert sorted(st["rules"]["t"]["posts"]) == ["q7", "q8", "q9"]


# --- negative_surge ---------------------------------------------------------------------
def mixed_history(neg_every: int = 4) -> list:
    """Two days, a comment every 30 min, one in ``neg_every`` negative."""
    return [ev(f"h{i}", T0 - 48 * H + i * 30 * M, author=f"77{i:08d}",
               label="negative" if i % neg_every == 0 else "neutral") for i in range(96)]


def test_negative_surge_fires_when_count_and_share_rise() -> None:
    eng = engine("negative_surge")
    alerts = run(eng, mixed_history() + burst(20, step=10 * S))
    assert alerts
    a = alerts[0]
    assert a.type == "negative_surge" and a.account_id == A2
    assert a.values["share"] >= 0.9 and a.values["base_share"] < 0.4
    assert a.values["value"] >= 6 and a.values["total"] >= 8
    assert "负面占比" in a.message


def test_negative_surge_ignores_volume_rise_with_unchanged_share_and_is_not_muted() -> None:
    """Negatives rise only with the volume (share stays 50%): no surge, and that count
    spike must not start a refractory period that hides a real surge an hour later."""
    eng = engine("negative_surge")
    even = mixed_history(neg_every=2)
    crowd = [ev(f"c{i}", T0 + 5 * H + i * 5 * S, author=f"95{i:08d}",
                label="negative" if i % 2 else "neutral") for i in range(40)]
    assert run(eng, even + crowd) == []
    real = burst(30, start=T0 + 6 * H, step=5 * S, prefix="r")
    alerts = run(eng, even + crowd + real)
    assert alerts and all(a.values["bucket_start"] >= (T0 + 6 * H).timestamp() for a in alerts)


def test_negative_surge_zero_to_two_and_restart() -> None:
    eng = engine("negative_surge")
    assert run(eng, mixed_history() + burst(2)) == []
    events = mixed_history() + burst(25, step=10 * S)
    assert dumped(run(eng, events, restart_every=1)) == dumped(run(eng, events))


# --- keyword ----------------------------------------------------------------------------
KW = """
type: keyword
params:
  lists:
    - {name: 安全生产, severity: 橙, words: [爆炸, 坍塌]}
    - {name: 民生, words: [停水, WiFi]}
severity: 黄
"""


def test_keyword_hits_lists_and_severity() -> None:
    eng = RuleEngine([rule(KW)], REG)
    out = run(eng, [ev("k1", T0, text="小区停水了，wifi 也断了"),
                    ev("k2", T0 + M, text="化工厂发生爆炸，有人停水"),
                    ev("k3", T0 + 2 * M, text="今天天气很好")])
    assert [a.severity for a in out] == ["yellow", "orange"]
    assert out[0].values == {"hits": 2.0, "list:民生": 2.0}  # case-insensitive WiFi
    assert out[1].values["list:安全生产"] == 1.0 and out[1].post_id == "p1"
    assert "爆炸" in out[1].message and out[1].timestamp == (T0 + M).isoformat()
    assert out[1].samples[0].endswith("https://weibo.com/9100000112/k2")


def test_keyword_filter_min_hits_and_fields() -> None:
    r = rule(KW + "filter: {kinds: [post]}\n")
    assert run(RuleEngine([r], REG), [ev("k1", T0, text="停水")]) == []  # a comment
    assert run(RuleEngine([r], REG), [ev("k1", T0, kind="post", author=A2, text="停水")])
    r3 = rule(KW.replace("params:\n", "params:\n  min_hits: 2\n"))
    assert run(RuleEngine([r3], REG), [ev("k1", T0, text="停水")]) == []
    e = ev("k1", T0, kind="repost", author=A, text="转发微博").derive(root_text="工地坍塌")
    r4 = rule(KW.replace("params:\n", "params:\n  fields: [text, root_text]\n"))
    assert len(run(RuleEngine([r4], REG), [e])) == 1
    assert run(RuleEngine([rule(KW)], REG), [e]) == []


# --- stale_account ----------------------------------------------------------------------
def post(eid: str, t, owner: str = A2):
    return ev(eid, t, kind="post", author=owner, owner=owner, text="今日动态")


def sweep_all(eng: RuleEngine, states: dict, wm: float) -> list:
    out = []
    for k in sorted(states):
        states[k], a = eng.sweep(k, states[k], wm)
        out += a
    return out


def test_stale_account_fires_once_at_computed_time_then_reminds() -> None:
    eng = engine("stale_account")
    st, _ = eng.on_event(None, post("s1", T0))
    states = {f"weibo:{A2}": st}
    assert sweep_all(eng, states, (T0 + 13 * DAY).timestamp()) == []
    out = sweep_all(eng, states, (T0 + 15 * DAY).timestamp())
    assert len(out) == 1
    a = out[0]
    assert a.timestamp == (T0 + 14 * DAY).isoformat() == "2026-11-16T09:00:00+08:00"
    assert a.account_id == A2 and "14 天" in a.title and a.severity == "yellow"
    assert sweep_all(eng, states, (T0 + 15 * DAY).timestamp()) == []  # idempotent
    states = json.loads(json.dumps(states))
    out = sweep_all(eng, states, (T0 + 22 * DAY).timestamp())
    assert [x.timestamp for x in out] == [(T0 + 21 * DAY).isoformat()]
    assert out[0].values["reminder"] == 1.0


def test_stale_result_does_not_depend_on_sweep_cadence() -> None:
    eng = engine("stale_account")
    events = [post("s1", T0), post("s2", T0 + 20 * DAY), post("s3", T0 + 22 * DAY)]
    end = (T0 + 40 * DAY).timestamp()
    key = f"weibo:{A2}"
    timeline = [(e.ts, 1, e) for e in events]
    timeline += [((T0 + d * DAY).timestamp(), 0, None) for d in range(1, 41)]
    state, daily = None, []
    for t, _, e in sorted(timeline, key=lambda x: (x[0], x[1])):
        if e is None:
            state, out = eng.sweep(key, state, t)
        else:
            state, out = eng.on_event(state, e)
        daily += out
    # No sweep until the end: the post after 20 silent days proves the stale period.
    lazy = run(eng, events, sweep_at=[end])
    assert sorted(a.id for a in daily) == sorted(a.id for a in lazy)
    assert [a.timestamp for a in lazy] == [(T0 + 14 * DAY).isoformat(),
                                           (T0 + 36 * DAY).isoformat()]


def test_stale_configurable_days_inactive_and_never_posted() -> None:
    r = rule("type: stale_account\nparams: {days: 10, remind_every: 0}\n")
    eng = RuleEngine([r], REG)
    out = run(eng, [post("s1", T0)], sweep_at=[(T0 + 30 * DAY).timestamp()])
    assert [a.timestamp for a in out] == [(T0 + 10 * DAY).isoformat()]
    assert run(eng, [post("d1", T0, owner=D)], sweep_at=[(T0 + 30 * DAY).timestamp()]) == []
    assert eng.sweep(f"weibo:{A1}", None, (T0 + 30 * DAY).timestamp()) == (None, [])
    # The replay's end-of-input punctuation is not a time: nothing goes stale at year 9999.
    st, _ = eng.on_event(None, post("s1", T0))
    assert eng.sweep(f"weibo:{A2}", st, END_OF_INPUT_GUARD + 1)[1] == []


def test_comments_and_others_posts_do_not_refresh_the_account() -> None:
    eng = engine("stale_account")
    events = [post("s1", T0), ev("c1", T0 + 10 * DAY, author=A2, text="回复网友")]
    assert len(run(eng, events, sweep_at=[(T0 + 15 * DAY).timestamp()])) == 1


def test_reposts_of_a_superiors_post_count_for_the_author() -> None:
    """A county account that only reposts its superior is not stale: the repost is keyed to
    the superior's owner key, so the caller also routes it to the author's key."""
    eng = engine("stale_account", "volume_spike")
    mine = post("s1", T0)
    rp = ev("r1", T0 + 10 * DAY, kind="repost", author=A2, owner=A, text="转发微博")
    assert eng.activity_key(mine) is None
    assert eng.activity_key(rp) == f"weibo:{A2}"
    assert eng.activity_key(ev("c1", T0, author=A2, owner=A)) is None  # a comment
    st, _ = eng.on_event(None, mine)
    volume = json.dumps(st["rules"]["volume_spike"])
    st, out = eng.on_author_activity(st, rp)
    assert out == [] and [x[0] for x in st["rules"]["stale_account"]["p"]] == [mine.ts, rp.ts]
    assert json.dumps(st["rules"]["volume_spike"]) == volume  # only stale_account sees it
    _, out = eng.sweep(f"weibo:{A2}", st, (T0 + 25 * DAY).timestamp())
    assert [a.timestamp for a in out] == [(T0 + 24 * DAY).isoformat()]


# --- unanswered -------------------------------------------------------------------------
def q(eid: str, t, text: str = "请问停水什么时候恢复？", post_id: str = "p1"):
    return ev(eid, t, author="8800000099", text=text, post=post_id)


def reply(eid: str, t, to: str | None = None, post_id: str = "p1"):
    return ev(eid, t, author=A2, text="您好，已转相关部门处理", post=post_id, reply_to=to)


def test_question_answered_in_time_never_fires() -> None:
    eng = engine("unanswered")
    out = run(eng, [q("q1", T0), reply("r1", T0 + 3 * H, to="q1")],
              sweep_at=[(T0 + 2 * DAY).timestamp()])
    assert out == []
    # Any owner comment on the same post after the question counts as the answer.
    out = run(eng, [q("q1", T0), reply("r1", T0 + 3 * H)], sweep_at=[(T0 + 2 * DAY).timestamp()])
    assert out == []


def test_unanswered_fires_at_deadline_once() -> None:
    eng = engine("unanswered")
    st, _ = eng.on_event(None, q("q1", T0))
    key = f"weibo:{A2}"
    assert eng.sweep(key, st, (T0 + 23 * H).timestamp())[1] == []
    st = json.loads(json.dumps(st))
    st, out = eng.sweep(key, st, (T0 + 25 * H).timestamp())
    assert len(out) == 1
    a = out[0]
    assert a.timestamp == (T0 + 24 * H).isoformat() and a.post_id == "p1"
    assert "请问停水什么时候恢复" in a.message and a.severity == "blue"
    assert eng.sweep(key, st, (T0 + 30 * H).timestamp())[1] == []
    st, _again = eng.on_event(st, q("q1", T0))  # a replayed duplicate of the question
    assert eng.sweep(key, st, (T0 + 30 * H).timestamp())[1] == []


def test_late_reply_still_counts_as_unanswered_whatever_the_sweep_cadence() -> None:
    """A reply after the deadline does not answer; the alert comes from the sweep (an
    event alone proves nothing: an in-time reply could still arrive after it)."""
    eng = engine("unanswered")
    events = [q("q1", T0), reply("r1", T0 + 30 * H, to="q1")]
    assert run(eng, events) == []
    at_end = run(eng, events, sweep_at=[(T0 + 30 * H).timestamp()])
    by_sweep = run(eng, events[:1], sweep_at=[(T0 + 25 * H).timestamp()])
    assert [a.id for a in at_end] == [a.id for a in by_sweep]
    assert at_end[0].timestamp == (T0 + 24 * H).isoformat()
    # The in-time reply arriving after the late one still answers it.
    late_first = [*events, reply("r0", T0 + 3 * H, to="q1")]
    assert run(eng, late_first, sweep_at=[(T0 + 30 * H).timestamp()]) == []


def test_question_detection() -> None:
    p = UnansweredRuleParams()
    assert is_question("请问这个政策怎么申请", p)
    assert is_question("停水到底要停几天?", p)
    assert not is_question("支持！辛苦了", p)
    assert not is_question("回复@某网友:你说什么？", p)
    assert not is_question("？", p)
    eng = engine("unanswered")
    thread = ev("t1", T0, author="8800000001", text="你怎么知道的？", reply_to="c0")
    assert run(eng, [thread], sweep_at=[(T0 + 2 * DAY).timestamp()]) == []


# --- linkage ----------------------------------------------------------------------------
def task(linked: dict[str, float]) -> dict:
    t0 = T0.timestamp()
    return {"post_id": "5000000001", "platform": "weibo", "account_id": PROV,
            "created_at": T0.isoformat(), "t0": t0, "deadline": t0 + 86400.0,
            "expected": [A, B, C], "linked": linked, "late": {}, "closed": False}


def test_linkage_lagging_checkpoints() -> None:
    eng = engine("linkage_lagging")
    t = task({A: 1800.0, B: 7 * 3600.0})
    assert eng.on_linkage_progress(t, (T0 + 5 * H).timestamp()) == []
    out = eng.on_linkage_progress(t, (T0 + 6 * H + M).timestamp())
    assert len(out) == 1
    a = out[0]
    assert a.type == "linkage_lagging" and a.timestamp == (T0 + 6 * H).isoformat()
    assert a.values["rate"] == pytest.approx(1 / 3) and a.values["checkpoint"] == 0.25
    assert "乙市发布（乙市人民政府新闻办公室）" in a.message and "丙市发布" in a.message
    assert "甲市发布（" not in a.message.split("尚未转发")[1]
    assert a.samples == [B, C]
    assert t["checkpoints_fired"] == ["linkage_lagging@0.25"]
    assert eng.on_linkage_progress(t, (T0 + 6 * H + M).timestamp()) == []  # recorded
    t = json.loads(json.dumps(t))
    # At 12 h, B (7 h) counts: 2/3 >= 0.5, evaluated but silent.
    assert eng.on_linkage_progress(t, (T0 + 13 * H).timestamp()) == []
    assert t["checkpoints_fired"] == ["linkage_lagging@0.25", "linkage_lagging@0.5"]


def result(rate_linked: dict[str, float], expected: list[str]) -> LinkageResult:
    return LinkageResult(post_id="5000000002", account_id=A, platform="weibo",
                         created_at="2026-11-02T12:00:00+08:00",
                         deadline="2026-11-03T12:00:00+08:00", expected=expected,
                         linked=rate_linked,
                         rate=round(len(rate_linked) / len(expected), 6),
                         closed_at="2026-11-03T12:00:00+08:00")


def test_linkage_low() -> None:
    eng = engine("linkage_low")
    out = eng.on_linkage_closed(result({A1: 600.0}, [A1, A2]))
    assert [(a.rule, a.type) for a in out] == [("linkage_low", "linkage_low")]
    a = out[0]
    assert a.timestamp == "2026-11-03T12:00:00+08:00" and a.account_id == A
    assert a.post_id == "5000000002" and "甲市西区发布" in a.message
    assert a.severity == "yellow"
    assert eng.on_linkage_closed(result({A: 1.0, B: 2.0}, [A, B, C])) == []  # 0.667
    low = eng.on_linkage_closed(result({}, [A1, A2]))
    assert low[0].severity == "orange"  # below escalate_below


# --- collector health -------------------------------------------------------------------
def health(status: str, n: int, err: str | None = None) -> CollectorHealth:
    return CollectorHealth(source="weibo-mobile", status=status, at="2026-11-02T03:00:00+00:00",
                           consecutive_failures=n, last_error=err)


def test_collector_health() -> None:
    eng = engine("collector_health")
    assert eng.on_health(health("ok", 0)) == []
    assert eng.on_health(health("failing", 2)) == []
    a = eng.on_health(health("failing", 3, "GET https://m.weibo.cn/api?cookie=SECRET 500"))[0]
    assert a.severity == "orange" and a.timestamp == "2026-11-02T03:00:00+00:00"
    assert "SECRET" not in a.message and "https://m.weibo.cn/…" in a.message
    assert "2026-11-02 11:00:00" in a.message  # Beijing time
    assert eng.on_health(health("failing", 10))[0].severity == "red"
    assert "登录凭据失效" in eng.on_health(health("auth_expired", 0))[0].title


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("consecutive_failures", "three", "consecutive_failures: not a count: 'three'"),
    ("consecutive_failures", -1, "consecutive_failures: not a count"),
    ("consecutive_failures", 2.5, "consecutive_failures: not a count"),
    ("at", "yesterday", "at: Invalid isoformat"),
    ("at", "2026-11-02T03:00:00", "at: timestamp without offset"),
    ("source", None, "source: not a non-empty string"),
    ("last_error", 5, "last_error: not a string"),
])
def test_a_malformed_health_record_is_a_value_error(field: str, value: object,
                                                    reason: str) -> None:
    """mw-health records are decoded without coercion: the stream dead-letters what this
    refuses (it used to be a TypeError deep in the rule, which stopped the agent)."""
    h = health("failing", 5)
    setattr(h, field, value)
    with pytest.raises(ValueError, match=f"^bad health record: {reason}"):
        engine("collector_health").on_health(h)


def test_absurd_times_do_not_break_the_wording() -> None:
    """to_local/local_str and iso_from_epoch run in the worker's sweep timer: a time out
    of datetime's range is clamped, never an OverflowError/ValueError (which crashed it)."""
    from matrixwatch.alerts.text import local_str, to_local
    from matrixwatch.streams.linkage import iso_from_epoch

    assert local_str("0001-01-01T00:00:00+14:00").endswith("-01-01 00:00:00")
    assert local_str("9999-12-31T23:59:59-12:00") == "9999-12-31 23:59:59"
    assert to_local(-62135647200.0).year == 1  # year 1 at +14:00, as epoch seconds
    for ts in (1e20, float("inf")):
        assert to_local(ts).year == 9999
    assert to_local(float("nan")).year == 1
    assert local_str("2026-11-02T03:00:00+00:00") == "2026-11-02 11:00:00"
    assert iso_from_epoch(1e20).startswith("9999-12-31T23:59:59")
    assert iso_from_epoch(-1e20, "2026-11-02T11:00:00+08:00") == "0001-01-01T00:00:00+08:00"


def test_disabled_rules_are_skipped() -> None:
    r = replace(RULES["volume_spike"], enabled=False)
    assert run(RuleEngine([r], REG), quiet_history() + burst(40)) == []


# --- a batch ----------------------------------------------------------------------------
def test_fold_equals_event_by_event_and_sets_observed_at() -> None:
    eng = engine("volume_spike")
    events = quiet_history() + burst(30)
    alerts, states, failed = eng.fold(events, lambda key: None)
    assert failed == []
    assert [a.id for a in alerts] == [a.id for a in run(eng, events)]
    fired_by = {e.created_at: e.collected_at for e in events}
    assert all(a.observed_at == fired_by[a.timestamp] for a in alerts)
    assert set(states) == {f"weibo:{A2}"}


def test_an_event_that_raises_is_left_out_and_the_batch_goes_on() -> None:
    """Retried event by event, the events before a poison one would be folded twice into
    states already changed in place: fold keeps going instead and reports it."""
    eng = engine("volume_spike")
    events = quiet_history() + burst(30)
    poison = events[len(events) // 2]
    plain = eng.on_event

    def on_event(state: dict | None, e: object) -> tuple[dict, list]:
        if e is poison:
            raise RuntimeError("engine bug")
        return plain(state, e)

    eng.on_event = on_event  # type: ignore[method-assign]
    alerts, _, failed = eng.fold(events, lambda key: None)
    assert [(e.id, str(x)) for e, x in failed] == [(poison.id, "engine bug")]
    rest = [e for e in events if e is not poison]
    assert [a.id for a in alerts] == [a.id for a in run(engine("volume_spike"), rest)]
