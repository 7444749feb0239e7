"""Dispatcher: realert, escalation, quiet hours (Beijing time) and routing, by event time."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from matrixwatch.alerts.channels import ChannelConfig, ChannelError
from matrixwatch.alerts.dispatch import Dispatcher, FanOut
from matrixwatch.streams.records import Alert
from tests.alerts.helpers import A2, rule

CST = timezone(timedelta(hours=8))
NOON = datetime(2026, 11, 2, 12, 0, tzinfo=CST)
CHANNELS = ChannelConfig.from_text("""
channels:
  county_bot: {type: webhook, url: "http://127.0.0.1:9/county"}
  city_bot: {type: webhook, url: "http://127.0.0.1:9/city"}
  boss_mail: {type: email, host: 127.0.0.1, tls: none, sender: a@b.c, to: [d@e.f]}
  safety_bot: {type: webhook, url: "http://127.0.0.1:9/safety"}
  off_bot: {type: webhook, url_env: MW_TEST_UNSET_URL}
routes:
  - {channels: [county_bot], levels: [county, township]}
  - {channels: [city_bot], levels: [city]}
  - {channels: [boss_mail], min_severity: orange}
""", env={})

RULE = rule("""
type: keyword
params: {lists: [{name: 安全生产, words: [爆炸]}, {name: 民生, words: [停水]}]}
severity: yellow
realert: 30m
escalate_after: 1h
quiet_hours: {start: "23:00", end: "07:00", min_severity: orange}
""", name="kw")


def alert(t: datetime, severity: str = "yellow", *, aid: str | None = None,
          post: str | None = "p1", level: str = "county", rule_name: str = "kw",
          values: dict | None = None) -> Alert:
    return Alert(id=aid or f"{rule_name}-{t.isoformat()}-{severity}", rule=rule_name,
                 type="keyword", severity=severity, timestamp=t.isoformat(),
                 account_id=A2, post_id=post, title="甲市西区发布 评论命中关注词", message="m",
                 unit="甲市西区人民政府", level=level, values=values or {"hits": 1.0})


def decide_all(d: Dispatcher, alerts: list[Alert], restart: bool = False) -> list:
    states: dict = {}
    out = []
    for a in alerts:
        k = Dispatcher.key(a)
        states[k], dec = d.decide(states.get(k), a)
        out.append(dec)
        if restart:
            states = json.loads(json.dumps(states))
    return out


def test_key() -> None:
    a = alert(NOON)
    assert Dispatcher.key(a) == f"kw|weibo|{A2}|p1"
    assert Dispatcher.key(alert(NOON, post=None)) == f"kw|weibo|{A2}"


def test_realert_suppresses_repeats_by_event_time_and_higher_severity_breaks_through() -> None:
    d = Dispatcher([RULE], CHANNELS)
    decs = decide_all(d, [alert(NOON), alert(NOON + timedelta(minutes=10)),
                          alert(NOON + timedelta(minutes=20), "orange"),
                          alert(NOON + timedelta(minutes=25), "orange"),
                          alert(NOON + timedelta(minutes=56), "yellow")])
    assert [(x.store, x.reason) for x in decs] == [
        (True, "new"), (False, "realert"), (True, "new"), (False, "realert"), (True, "new")]
    assert decs[0].channels == ["county_bot"]
    assert decs[2].channels == ["county_bot", "boss_mail"]


def test_duplicate_alert_id_is_dropped() -> None:
    d = Dispatcher([RULE], CHANNELS)
    a = alert(NOON)
    decs = decide_all(d, [a, a])
    assert [x.reason for x in decs] == ["new", "duplicate"] and not decs[1].store


def test_escalation_while_the_key_keeps_firing() -> None:
    r = rule("type: keyword\nparams: {lists: [{name: a, words: [b]}]}\nseverity: blue\n"
             "realert: 0\nescalate_after: 1h\n", name="kw")
    d = Dispatcher([r], CHANNELS)
    times = [NOON + timedelta(minutes=20 * i) for i in range(8)]  # every 20 min for 2h20
    decs = decide_all(d, [alert(t, "blue") for t in times])
    assert [x.alert.severity for x in decs] == ["blue"] * 3 + ["yellow"] * 3 + ["orange"] * 2
    assert decs[3].reason == "escalated" and decs[3].alert.id != alert(times[3], "blue").id
    assert "升级" in decs[3].alert.title
    # A gap longer than escalate_reset (default = escalate_after) starts a new episode.
    later = NOON + timedelta(hours=5)
    decs2 = decide_all(d, [alert(t, "blue") for t in [*times, later]])
    assert decs2[-1].alert.severity == "blue"


def test_quiet_hours_hold_in_beijing_time_but_store() -> None:
    d = Dispatcher([RULE], CHANNELS)
    utc = UTC
    night = datetime(2026, 11, 2, 19, 30, tzinfo=utc)  # 03:30 in Beijing
    dec = decide_all(d, [alert(night, "yellow")])[0]
    assert dec.store and dec.held and dec.channels == []
    dec = decide_all(d, [alert(night, "orange")])[0]
    assert dec.store and not dec.held and dec.channels == ["county_bot", "boss_mail"]
    evening_utc = datetime(2026, 11, 2, 14, 30, tzinfo=utc)  # 22:30 in Beijing: not quiet
    assert not decide_all(d, [alert(evening_utc)])[0].held
    # Held at 06:50, repeated at 07:05 (inside realert): sent, not suppressed.
    decs = decide_all(d, [alert(datetime(2026, 11, 3, 6, 50, tzinfo=CST)),
                          alert(datetime(2026, 11, 3, 7, 5, tzinfo=CST))])
    assert [(x.store, x.held, x.channels) for x in decs] == [
        (True, True, []), (True, False, ["county_bot"])]


def test_quiet_hours_on_given_days_only() -> None:
    r = rule("type: keyword\nparams: {lists: [{name: a, words: [b]}]}\n"
             "quiet_hours: {start: '22:00', end: '08:00', days: [sat, sun]}\n", name="kw")
    d = Dispatcher([r], CHANNELS)
    sat_night = datetime(2026, 11, 7, 23, 0, tzinfo=CST)  # Saturday
    sun_early = datetime(2026, 11, 8, 3, 0, tzinfo=CST)  # belongs to Saturday's window
    mon_early = datetime(2026, 11, 9, 3, 0, tzinfo=CST)  # Sunday's window
    tue_early = datetime(2026, 11, 10, 3, 0, tzinfo=CST)  # Monday's: not quiet
    held = [decide_all(d, [alert(t)])[0].held for t in (sat_night, sun_early, mon_early,
                                                        tue_early)]
    assert held == [True, True, True, False]


def test_routing_by_level_unit_severity_and_list_with_disabled_channels() -> None:
    r = rule("""
type: keyword
params: {lists: [{name: 安全生产, words: [x]}, {name: 民生, words: [y]}]}
routing:
  - {channels: [safety_bot], lists: [安全生产], stop: true}
  - {channels: [city_bot], units: [甲市西区人民政府]}
  - {channels: [off_bot, boss_mail], min_severity: red}
""", name="kw")
    d = Dispatcher([r], CHANNELS)
    safety = alert(NOON, values={"hits": 1.0, "list:安全生产": 1.0})
    assert decide_all(d, [safety])[0].channels == ["safety_bot"]
    people = alert(NOON, values={"hits": 1.0, "list:民生": 1.0})
    assert decide_all(d, [people])[0].channels == ["city_bot"]
    red = decide_all(d, [alert(NOON, "red", values={"list:民生": 1.0})])[0]
    assert red.channels == ["city_bot", "boss_mail"] and red.skipped == ["off_bot"]
    # Rules without routing use channels.yaml's routes (here by level).
    d2 = Dispatcher([RULE], CHANNELS)
    assert decide_all(d2, [alert(NOON, level="city")])[0].channels == ["city_bot"]


def test_unknown_channel_in_a_rule_is_an_error_at_startup() -> None:
    r = rule("type: spike\nrouting:\n  - {channels: [nope]}\n", name="sp")
    with pytest.raises(ChannelError, match=r"rule sp: sp.yaml:3: channels: unknown channel "
                                           r"'nope'"):
        Dispatcher([r], CHANNELS)


def test_restart_gives_identical_decisions() -> None:
    d = Dispatcher([RULE], CHANNELS)
    seq = [alert(NOON + timedelta(minutes=7 * i), "orange" if i == 9 else "yellow")
           for i in range(30)]
    assert decide_all(d, seq, restart=True) == decide_all(d, seq)


def test_expired_state() -> None:
    d = Dispatcher([RULE], CHANNELS)
    st, _ = d.decide(None, alert(NOON))
    assert not d.expired(st, NOON.timestamp() + 3600)
    assert d.expired(st, NOON.timestamp() + 3 * 86400)
    assert d.expired(None, 0.0)


def test_retention_sets_the_horizon_and_expiry_changes_no_timely_decision() -> None:
    """Deleting an expired key is safe: an alert at or after the watermark is decided
    on the old state exactly as on a new key (the pipeline expires by the watermark)."""
    d = Dispatcher([RULE], CHANNELS)
    week = 7 * 86400.0
    st = None
    for i in range(5):  # realert, then escalation
        st, _ = d.decide(st, alert(NOON + timedelta(minutes=40 * i)))
    last = (NOON + timedelta(minutes=160)).timestamp()
    windows = max(RULE.realert, RULE.escalate_reset or 0.0)
    assert not d.expired(st, last + 3 * 86400, week)
    assert not d.expired(st, last + week + windows - 1, week)
    watermark = last + week + windows + 1
    assert d.expired(st, watermark, week)
    assert d.expired(st, watermark, week, key=Dispatcher.key(alert(NOON)))
    longer = rule("type: spike\nrealert: 1h\nescalate_after: 2h\nescalate_reset: 30d\n",
                  name="sp")
    d2 = Dispatcher([RULE, longer], CHANNELS)  # a key is held by its own rule's windows
    assert not d2.expired(st, watermark, week)
    assert d2.expired(st, watermark, week, key=Dispatcher.key(alert(NOON)))
    assert not d2.expired(st, watermark, week, key="sp|weibo|1")
    for later in (watermark, watermark + 60):
        a = alert(datetime.fromtimestamp(later, NOON.tzinfo))
        _, kept = d.decide(json.loads(json.dumps(st)), a)
        _, fresh = d.decide(None, a)
        assert (kept.store, kept.reason, kept.channels, kept.alert) == \
            (fresh.store, fresh.reason, fresh.channels, fresh.alert)


# --- fan-out of deliveries ------------------------------------------------------------


def test_fan_out_a_stuck_channel_does_not_hold_up_the_others() -> None:
    """A channel in retry backoff used to block every delivery after it in the batch."""
    async def scenario() -> list[tuple[str, str]]:
        stuck = asyncio.Event()
        done: list[tuple[str, str]] = []

        async def send(a: Alert, channel: str) -> None:
            if channel == "slow_bot":
                await stuck.wait()
            done.append((channel, a.id))
            if len([c for c, _ in done if c == "fast_bot"]) == 3:
                stuck.set()  # only once every fast delivery went out

        batch = [(alert(NOON + timedelta(minutes=i), aid=f"a{i}"), ch)
                 for i in range(3) for ch in ("slow_bot", "fast_bot")]
        await asyncio.wait_for(FanOut(send, per_channel=2)(batch), timeout=5)
        return done

    done = asyncio.run(scenario())
    assert [c for c, _ in done[:3]] == ["fast_bot"] * 3
    assert sorted(done) == sorted([(ch, f"a{i}") for i in range(3)
                                   for ch in ("slow_bot", "fast_bot")])


def test_fan_out_caps_sends_in_flight_per_channel() -> None:
    async def scenario() -> dict[str, int]:
        in_flight: dict[str, int] = {"a_bot": 0, "b_bot": 0}
        peak = dict(in_flight)

        async def send(a: Alert, channel: str) -> None:
            in_flight[channel] += 1
            peak[channel] = max(peak[channel], in_flight[channel])
            await asyncio.sleep(0.01)
            in_flight[channel] -= 1

        fan = FanOut(send, per_channel=3)
        batch = [(alert(NOON, aid=f"x{i}"), "a_bot") for i in range(10)]
        batch += [(alert(NOON, aid=f"y{i}"), "b_bot") for i in range(2)]
        await asyncio.gather(fan(batch[:6]), fan(batch[6:]))  # two overlapping batches
        return peak

    assert asyncio.run(scenario()) == {"a_bot": 3, "b_bot": 2}
    with pytest.raises(ValueError):
        FanOut(lambda a, c: asyncio.sleep(0), per_channel=0)  # type: ignore[arg-type,return-value]
