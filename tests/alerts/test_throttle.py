"""Send budgets per channel: the window, severity priority, overflow and its one summary.

Fake clocks and fake senders throughout: nothing here depends on how fast the code runs.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from matrixwatch.alerts.channels import ChannelConfig, ChannelError
from matrixwatch.alerts.dispatch import FanOut, RateLimited
from matrixwatch.alerts.notifiers import dingtalk, feishu, smtp, webhook, wecom
from matrixwatch.alerts.notifiers.render import RATE_DIGEST, digest_counts, render
from matrixwatch.alerts.text import alert_id
from matrixwatch.alerts.throttle import Budget, Planned, Throttle, Window, rate_digest
from matrixwatch.streams.records import Alert
from tests.alerts.helpers import REG
from tests.alerts.notifiers.conftest import CST, NOW, sample_alert
from tests.alerts.notifiers.test_digest import CHANNELS as PLATFORMS

T = datetime(2026, 11, 3, 2, 15, tzinfo=CST)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def alert(i: int, severity: str = "yellow", rule: str = "keyword_watchlist") -> Alert:
    return sample_alert(id=f"a{i:03d}", severity=severity, rule=rule, type="keyword",
                        post_id=f"p{i}", timestamp=(T + timedelta(minutes=i)).isoformat())


class Recorder:
    """A fake sender: what went where, and the clock when it went."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.sent: list[tuple[str, Alert, float]] = []
        self.clock = clock

    async def __call__(self, a: Alert, channel: str) -> None:
        self.sent.append((channel, a, self.clock() if self.clock else 0.0))

    def ids(self, channel: str = "bot") -> list[str]:
        return [a.id for ch, a, _ in self.sent if ch == channel and a.type != RATE_DIGEST]

    def summaries(self, channel: str = "bot") -> list[Alert]:
        return [a for ch, a, _ in self.sent if ch == channel and a.type == RATE_DIGEST]


def overflowed(channel: str) -> float:
    return REGISTRY.get_sample_value("matrixwatch_alert_notifications_overflowed_total",
                                     {"channel": channel}) or 0.0


# --- the window -------------------------------------------------------------------------


def test_window_allows_max_minus_one_alerts_then_the_summary_per_60_s() -> None:
    w = Window(Budget(per_minute=5))
    slots = [w.take(0.0) for _ in range(5)]
    assert [s is not None for s in slots] == [True] * 4 + [False]
    summary = w.take(0.0, summary=True)
    assert summary is not None and w.take(0.0, summary=True) is None
    for s in [*slots[:4], summary]:
        assert s is not None
        w.done(s, 2.0)  # delivered at t=2: each counts until t=62
    assert w.take(61.9) is None and w.take(61.9, summary=True) is None
    assert w.used(62.0) == 0
    assert [w.take(62.0) is not None for _ in range(5)] == [True] * 4 + [False]


def test_a_delivery_in_flight_keeps_its_slot_until_it_ends() -> None:
    """Retries can take longer than a minute: the platform counts the message when it
    arrives, so its slot frees 60 s after the delivery ended, not after it started."""
    w = Window(Budget(per_minute=2))
    slot = w.take(0.0)
    assert slot is not None
    assert w.take(500.0) is None  # still in flight: only the summary's reserve is left
    w.done(slot, 500.0)
    assert w.take(559.0) is None and w.take(560.0) is not None


def test_a_per_second_budget_spaces_sends_instead_of_dropping_them() -> None:
    w = Window(Budget(per_minute=100, per_second=5))
    ats = [s.at for s in (w.take(10.0) for _ in range(12)) if s is not None]
    assert ats == [10.0] * 5 + [11.0] * 5 + [12.0] * 2


def test_a_wecom_at_mobile_delivery_costs_two_messages() -> None:
    w = Window(Budget(per_minute=20, cost=2))
    assert Budget(per_minute=20, cost=2).individual == 9
    assert sum(w.take(0.0) is not None for _ in range(12)) == 9
    assert w.take(0.0, summary=True) is not None and w.used(0.0) == 20


def test_budget_rejects_nonsense() -> None:
    for bad in (dict(per_minute=0), dict(per_minute=5, per_second=0), dict(per_minute=5, cost=0)):
        with pytest.raises(ValueError):
            Budget(**bad)  # type: ignore[arg-type]


# --- planning: priority and overflow ------------------------------------------------------


def test_a_batch_is_planned_highest_severity_first_and_the_low_ones_overflow() -> None:
    clock = Clock()
    th = Throttle({"bot": Budget(per_minute=4)}, clock)
    sevs = ["blue", "red", "yellow", "orange", "red", "yellow", "blue"]
    batch = [(alert(i, s), "bot") for i, s in enumerate(sevs)]
    before = overflowed("bot")
    plan = th.plan(batch)
    assert [(p.alert.id, p.alert.severity) for p in plan[:3]] == [
        ("a001", "red"), ("a004", "red"), ("a003", "orange")]
    [summary] = [p.alert for p in plan[3:]]
    assert summary.type == RATE_DIGEST and summary.severity == "yellow"
    assert summary.values is not None and summary.values["total"] == 4
    assert overflowed("bot") - before == 4  # the metric counts every overflowed alert
    assert th.overflow == {}  # all of it went into that summary


def test_the_summary_counts_and_id_are_deterministic() -> None:
    alerts = [alert(0, "blue"), alert(1, "yellow"), alert(2, "red", rule="volume_spike"),
              alert(3, "yellow"), alert(4, "orange"), alert(5, "yellow"), alert(6, "blue")]
    s = rate_digest("bot", alerts)
    assert s == rate_digest("bot", list(reversed(alerts)))  # same alerts, same summary
    assert s.id == alert_id(RATE_DIGEST, "bot", ",".join(sorted(a.id for a in alerts)))
    assert s.id != rate_digest("other_bot", alerts).id
    assert s.title == "另有 7 条告警未单独推送（红 1 · 橙 1 · 黄 3 · 蓝 2）"
    assert s.severity == "red" and s.rule == "rate_limit"
    assert digest_counts(s) == [("volume_spike", "keyword", "red", 1),
                                ("keyword_watchlist", "keyword", "orange", 1),
                                ("keyword_watchlist", "keyword", "yellow", 3),
                                ("keyword_watchlist", "keyword", "blue", 2)]
    assert s.samples is not None and len(s.samples) == 5  # the five highest, earliest first
    assert [x[:2] for x in s.samples] == ["红色", "橙色", "黄色", "黄色", "黄色"]
    r = render(s)
    assert r.title == "【限流】另有 7 条告警未单独推送（红 1 · 橙 1 · 黄 3 · 蓝 2）"
    assert dict(r.fields)["合计"] == "7 条（已入库，因限流未单独推送）"
    assert dict(r.fields)["列出"] == "级别最高的 5 条"
    assert "详见值班台" in r.message


def test_every_platform_renders_the_summary() -> None:
    s = rate_digest("ding", [alert(i, "orange" if i < 2 else "yellow") for i in range(8)])
    _, ding = dingtalk.build(s, PLATFORMS.get("ding"), REG, NOW)
    assert ding["markdown"]["title"].startswith("【限流】另有 8 条告警未单独推送")
    assert "关注词命中）橙色 2 条" in ding["markdown"]["text"]
    [wx] = wecom.build(s, PLATFORMS.get("wx"), REG)
    assert '<font color="warning">【限流】另有 8 条' in wx["markdown"]["content"]
    card = feishu.card(s, PLATFORMS.get("fs"), REG)
    assert card["header"]["template"] == "orange"
    assert "级别最高的 5 条" in card["elements"][0]["text"]["content"]
    _, body, headers = webhook.build(s, PLATFORMS.get("hook"), REG)
    assert headers["X-Matrixwatch-Event"] == "digest" and headers["X-Matrixwatch-Alert-Id"] == s.id
    payload = json.loads(body)
    assert payload["digest"]["kind"] == "rate_limit" and payload["digest"]["total"] == 8
    assert len(payload["digest"]["top"]) == 5
    msg = smtp.build(s, PLATFORMS.get("mail"), REG)
    assert msg["Subject"].startswith("【限流】另有 8 条告警未单独推送（红 0 · 橙 2 · 黄 6 · 蓝 0）")


# --- the fan-out with a budget ----------------------------------------------------------


def test_the_summary_goes_out_once_the_budget_frees_and_exactly_once() -> None:
    async def scenario() -> None:
        clock = Clock()
        sent = Recorder(clock)
        fan = FanOut(sent, per_channel=3, throttle=Throttle({"bot": Budget(5)}, clock))
        await fan([(alert(i, "red" if i == 7 else "yellow"), "bot") for i in range(10)])
        # 4 alerts (the red one first) and, in the reserve, one summary of the other 6
        assert sent.ids() == ["a007", "a000", "a001", "a002"]
        [first] = sent.summaries()
        assert first.values is not None and first.values["total"] == 6
        clock.t += 30
        await fan([(alert(i), "bot") for i in range(10, 13)])  # no room: all overflow
        assert len(sent.sent) == 5 and await fan.flush() == 0
        clock.t += 29.9  # the first sends ended at 1000.0: their slots free at 1060.0
        assert await fan.flush() == 0
        clock.t += 0.1
        assert await fan.flush() == 1
        second = sent.summaries()[-1]
        assert second.values is not None and second.values["total"] == 3
        assert second.id == rate_digest("bot", [alert(i) for i in range(10, 13)]).id
        assert await fan.flush() == 0 and len(sent.summaries()) == 2  # exactly once

    asyncio.run(scenario())


def test_unlimited_channels_are_unchanged() -> None:
    async def scenario() -> Recorder:
        sent = Recorder()
        th = Throttle.from_channels(PLATFORMS, clock=Clock())
        fan = FanOut(sent, per_channel=1, throttle=th)
        await fan([(alert(i, "blue" if i % 2 else "red"), "hook") for i in range(60)])
        return sent

    sent = asyncio.run(scenario())
    assert sent.ids("hook") == [f"a{i:03d}" for i in range(60)]  # all, in the batch's order
    assert sent.summaries("hook") == []


def test_a_failed_delivery_still_ends_its_slot() -> None:
    async def scenario() -> Throttle:
        clock = Clock()
        th = Throttle({"bot": Budget(3)}, clock)

        async def broken(a: Alert, channel: str) -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await FanOut(broken, throttle=th)([(alert(0), "bot")])
        return th

    th = asyncio.run(scenario())
    th.clock.t += 60  # type: ignore[attr-defined]
    assert th._windows["bot"].used(th.clock()) == 0


def test_a_per_second_budget_delays_sends_in_the_fan_out() -> None:
    async def scenario() -> list[float]:
        clock = Clock()
        sent = Recorder(clock)

        async def sleep(seconds: float) -> None:  # the fake clock moves instead
            clock.t += seconds

        th = Throttle({"fs": Budget(per_minute=100, per_second=5)}, clock)
        await FanOut(sent, per_channel=1, throttle=th, sleep=sleep)(
            [(alert(i), "fs") for i in range(11)])
        return [t - 1000.0 for _, _, t in sent.sent]

    assert asyncio.run(scenario()) == [0.0] * 5 + [1.0] * 5 + [2.0]


# --- the platform's own rate limit --------------------------------------------------------


class TooFast(Recorder):
    """A fake sender whose platform refuses the first ``refuse`` deliveries as too fast."""

    def __init__(self, clock: Clock, refuse: int = 1, cooldown: float = 600.0) -> None:
        super().__init__(clock)
        self.refuse = refuse
        self.cooldown = cooldown
        self.calls = 0

    async def __call__(self, a: Alert, channel: str) -> None:
        self.calls += 1
        if self.calls <= self.refuse:
            raise RateLimited(channel, "dingtalk", "http://127.0.0.1", "errcode_130101",
                              self.cooldown, 1)
        await super().__call__(a, channel)


def test_a_platform_rate_limit_holds_the_channel_for_its_cooldown() -> None:
    clock = Clock()
    th = Throttle({"bot": Budget(20), "other": Budget(20)}, clock)
    before = overflowed("bot")
    [p] = th.plan([(alert(0), "bot")])
    th.rate_limited(p, 600.0, "errcode_130101")
    th.done(p)
    assert th.throttled("bot") and not th.throttled("other")
    clock.t += 300
    plan = th.plan([(alert(1, "red"), "bot"), (alert(2), "other")])
    assert [(q.alert.id, q.channel) for q in plan] == [("a002", "other")]  # nothing to bot
    assert list(th.overflow["bot"]) == ["a000", "a001"]
    assert overflowed("bot") - before == 2
    clock.t = 1599.9
    assert th.summaries() == [] and th.throttled("bot")
    clock.t = 1600.0
    [summary] = th.summaries()
    assert not th.throttled("bot") and th.overflow == {}
    assert summary.alert == rate_digest("bot", [alert(0), alert(1, "red")])
    assert summary.slot is not None and [a.id for a in summary.covers] == ["a000", "a001"]


def test_a_rate_limited_delivery_ends_the_others_waiting_for_the_channel() -> None:
    """per_channel=1: the rest of the batch waits on the gate; once the platform said
    "too fast" they are held without a request, and so is what comes next."""
    async def scenario() -> tuple[TooFast, Throttle]:
        clock = Clock()
        sent = TooFast(clock)
        th = Throttle({"bot": Budget(20), "hook": Budget(20)}, clock)
        fan = FanOut(sent, per_channel=1, throttle=th)
        await fan([(alert(i), "bot") for i in range(3)] + [(alert(9), "hook")])
        await fan([(alert(3), "bot")])
        assert await fan.flush() == 0
        return sent, th

    sent, th = asyncio.run(scenario())
    assert sent.calls == 2  # one refused request to bot, the hook delivery
    assert sent.ids("hook") == ["a009"] and sent.ids("bot") == []
    assert sorted(th.overflow["bot"]) == ["a000", "a001", "a002", "a003"]
    assert th._windows["bot"].used(th.clock()) == 1  # the refused message still counts


def test_a_summary_refused_as_too_fast_puts_its_alerts_back_counted_once() -> None:
    class RefusesTheFirstSummary(TooFast):
        async def __call__(self, a: Alert, channel: str) -> None:
            if a.type == RATE_DIGEST and self.refuse:
                self.refuse = 0
                raise RateLimited(channel, "dingtalk", "-", "errcode_130101", self.cooldown, 1)
            await Recorder.__call__(self, a, channel)

    async def scenario() -> tuple[Recorder, float]:
        clock = Clock()
        sent = RefusesTheFirstSummary(clock, cooldown=60.0)
        fan = FanOut(sent, throttle=Throttle({"bot": Budget(3)}, clock))
        before = overflowed("bot")
        await fan([(alert(i), "bot") for i in range(4)])  # 2 sent; the summary refused
        assert sent.ids() == ["a000", "a001"] and sent.summaries() == []
        clock.t += 30
        await fan([(alert(4), "bot")])  # held: the channel is cooling down
        clock.t += 30
        assert await fan.flush() == 1
        return sent, overflowed("bot") - before

    sent, counted = asyncio.run(scenario())
    [summary] = sent.summaries()
    assert summary == rate_digest("bot", [alert(2), alert(3), alert(4)])
    assert counted == 3  # each overflowed alert counted once


def test_a_refused_summary_goes_back_into_the_overflow() -> None:
    clock = Clock()
    th = Throttle({"bot": Budget(2)}, clock)
    before = overflowed("bot")
    plan = th.plan([(alert(i), "bot") for i in range(3)])
    summary = plan[-1]
    assert summary.alert.type == RATE_DIGEST and len(summary.covers) == 2
    th.rate_limited(summary, 60.0)
    th.done(summary)
    assert list(th.overflow["bot"]) == ["a001", "a002"]
    assert overflowed("bot") - before == 2  # not counted again
    clock.t += 120
    [again] = th.summaries()
    assert again.alert.id == summary.alert.id  # the same alerts, the same summary id


def test_a_channel_without_a_budget_can_be_throttled_too() -> None:
    clock = Clock()
    th = Throttle({}, clock)
    th.rate_limited(Planned(alert(0), "hook"), 60.0)
    assert th.plan([(alert(1), "hook")]) == []
    clock.t += 60
    [summary] = th.summaries()
    assert summary.slot is None and summary.alert.values is not None
    assert summary.alert.values["total"] == 2


def test_without_a_throttle_rate_limited_is_the_senders_error() -> None:
    async def scenario() -> None:
        await FanOut(TooFast(Clock()))([(alert(0), "bot")])

    with pytest.raises(RateLimited, match="rate-limited by the platform for 600 s"):
        asyncio.run(scenario())


def test_every_budgeted_channel_exports_its_overflow_counter_from_the_start() -> None:
    """A labelled counter appears on its first increment, and Prometheus' increase()
    cannot see that first step; exported at 0, the first overflow is an increase."""
    Throttle({"fresh_channel_x": Budget(20)}, Clock())
    assert REGISTRY.get_sample_value("matrixwatch_alert_notifications_overflowed_total",
                                     {"channel": "fresh_channel_x"}) == 0.0


# --- channel configuration --------------------------------------------------------------

CONFIG = """
channels:
  dd: {type: dingtalk, token_env: T}
  wx: {type: wecom, token_env: T}
  wx_mobiles: {type: wecom, token_env: T, at_mobiles: ["13800000000"]}
  fs: {type: feishu, token_env: T}
  hook: {type: webhook, url: "http://127.0.0.1:9/h"}
  mail: {type: email, host: 127.0.0.1, tls: none, sender: a@b.c, to: [d@e.f]}
  shared_dd: {type: dingtalk, token_env: T, max_per_minute: 8}
  slow_hook: {type: webhook, url: "http://127.0.0.1:9/s", max_per_minute: 10,
              max_per_second: 2}
"""


def test_defaults_by_type_and_per_channel_overrides() -> None:
    cfg = ChannelConfig.from_text(CONFIG, env={"T": "tok"})
    limits = {n: (c.max_per_minute, c.max_per_second) for n, c in cfg.channels.items()}
    assert limits == {"dd": (20, None), "wx": (20, None), "wx_mobiles": (20, None),
                      "fs": (100, 5), "hook": (None, None), "mail": (None, None),
                      "shared_dd": (8, None), "slow_hook": (10, 2)}
    th = Throttle.from_channels(cfg)
    assert set(th.budgets) == {"dd", "wx", "wx_mobiles", "fs", "shared_dd", "slow_hook"}
    assert th.budgets["wx_mobiles"] == Budget(20, None, cost=2)
    assert th.budgets["fs"] == Budget(100, 5)
    two = Throttle.from_channels(cfg, workers=2)  # MW_NOTIFY_BUDGET_WORKERS
    assert two.budgets["dd"] == Budget(10) and two.budgets["fs"] == Budget(50, 2)
    assert two.budgets["slow_hook"] == Budget(5, 1)
    # A channel built in code gets its platform's limit too: a robot is never unlimited.
    assert cfg.get("dd").__class__(name="x", type="dingtalk").max_per_minute == 20


def test_the_packaged_channels_have_the_platform_limits() -> None:
    cfg = ChannelConfig.load(env={})
    assert {n: c.max_per_minute for n, c in cfg.channels.items()} == {
        "duty_dingtalk": 20, "duty_wecom": 20, "duty_feishu": 100, "ops_webhook": None,
        "duty_email": None}


@pytest.mark.parametrize(("value", "shown"), [
    ("0", "0"), ("-3", "-3"), ("2.5", "2.5"), ("'20'", "'20'"), ("true", "True"),
    ("null", "None"), ("[20]", "[20]"),
])
def test_invalid_budgets_are_refused_with_a_clear_message(value: str, shown: str) -> None:
    text = f"channels:\n  dd:\n    type: dingtalk\n    token_env: T\n    max_per_minute: {value}\n"
    with pytest.raises(ChannelError) as e:
        ChannelConfig.from_text(text, env={}, file="c.yaml")
    assert str(e.value) == (
        f"c.yaml:5: channels.dd.max_per_minute: expected a whole number >= 1 (messages per "
        f"minute), got {shown}; omit it for the dingtalk default (20)")
    with pytest.raises(ChannelError, match=r"c.yaml:2: channels.h.max_per_second: expected a "
                                           r"whole number >= 1 \(messages per second\), got 0; "
                                           r"omit it for the webhook default \(unlimited\)"):
        ChannelConfig.from_text("channels:\n  h: {type: webhook, url: 'http://h', "
                                "max_per_second: 0}\n", env={}, file="c.yaml")
