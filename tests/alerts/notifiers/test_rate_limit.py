"""A platform's own "sending too fast" answer, against the local stand-ins of the robots.

The send budget (alerts/throttle.py) keeps each channel under its robot's limit, but the
platform may still refuse (another system on the same robot, a restarted worker): that
answer must not be retried within seconds (a DingTalk robot is then throttled for 10
minutes); the channel waits out the cooldown and one rate-limit summary covers what
waited. The monotonic clock is a fake one; the signatures use a fixed wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, FanOut, RateLimited, deliver
from matrixwatch.alerts.notifiers import dingtalk, feishu, wecom
from matrixwatch.alerts.throttle import Throttle
from matrixwatch.streams.records import Alert
from tests.alerts.notifiers import test_dingtalk, test_feishu, test_wecom
from tests.alerts.notifiers.conftest import NOW, HTTPStub, Request, sample_alert
from tests.alerts.notifiers.helpers import metric


@dataclass(frozen=True)
class Platform:
    channel: str
    type: str
    config: Callable[[str], ChannelConfig]
    ok: Callable[[Request], tuple[int, dict]]  # the stand-in's normal answer
    too_fast: dict[str, Any]  # the platform's rate-limit answer
    busy: dict[str, Any]  # a retryable answer that is not a rate limit
    cooldown: float
    cost: int = 1  # requests per delivery (WeCom's @-mobile follow-up is a second)

    @property
    def reason(self) -> str:
        return f"errcode_{next(iter(self.too_fast.values()))}"


PLATFORMS = [
    Platform("dd", "dingtalk", test_dingtalk.config, lambda r: test_dingtalk.dingtalk(r, NOW),
             {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
             {"errcode": -1, "errmsg": "system busy"}, 600.0),
    Platform("wx", "wecom", test_wecom.config, test_wecom.wecom,
             {"errcode": 45009, "errmsg": "api freq out of limit"},
             {"errcode": -1, "errmsg": "system busy"}, 60.0, cost=2),
    Platform("fs", "feishu", test_feishu.config, test_feishu.feishu,
             {"code": 11232, "msg": "frequency limited psm=lark.oapi.app_platform_runtime"},
             {"code": 11233, "msg": "busy"}, 60.0),
]
IDS = [p.type for p in PLATFORMS]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def answers(p: Platform, *first: dict[str, Any]) -> Callable[[Request], tuple[int, dict]]:
    """The given answers to the first requests, then the stand-in's own."""
    queue = list(first)
    return lambda r: (200, queue.pop(0)) if queue else p.ok(r)


def retries(p: Platform) -> float:
    return metric("matrixwatch_alert_notify_retries_total", channel=p.channel, type=p.type,
                  reason=p.reason)


def test_the_cooldowns_are_the_documented_ones() -> None:
    assert dingtalk.RATE_LIMITS == {130101: 600.0}  # "限流10分钟"
    assert wecom.RATE_LIMITS == {45009: 60.0}  # "按分钟拦截则被屏蔽60秒"
    assert feishu.RATE_LIMITS == {11232: 60.0}  # none documented: one minute's window
    for mod in (dingtalk, wecom, feishu):
        assert not set(mod.RATE_LIMITS) & mod.RETRYABLE


@pytest.mark.parametrize("p", PLATFORMS, ids=IDS)
async def test_a_rate_limit_answer_is_one_request_and_no_retry(http_stub: HTTPStub,
                                                               p: Platform) -> None:
    http_stub.handler = answers(p, p.too_fast)
    before = retries(p)
    failed = metric("matrixwatch_alert_notify_failures_total", channel=p.channel, type=p.type,
                    reason=p.reason)
    with pytest.raises(RateLimited) as e:
        await deliver(sample_alert(), p.channel, p.config(http_stub.url), clock=lambda: NOW)
    assert len(http_stub.requests) == 1
    assert not isinstance(e.value, DeliveryFailed)  # a sender's dead-letter path skips it
    assert (e.value.channel, e.value.type, e.value.cooldown, e.value.attempts) == (
        p.channel, p.type, p.cooldown, 1)
    assert e.value.reason == p.reason
    assert retries(p) == before
    assert metric("matrixwatch_alert_notify_failures_total", channel=p.channel, type=p.type,
                  reason=p.reason) == failed  # not a failure: it will be summarised
    for secret in (test_dingtalk.TOKEN, test_wecom.KEY, test_feishu.HOOK):
        assert secret not in str(e.value)


@pytest.mark.parametrize("p", PLATFORMS, ids=IDS)
async def test_the_channel_waits_out_the_cooldown_then_one_summary_covers_both(
        http_stub: HTTPStub, p: Platform) -> None:
    http_stub.handler = answers(p, p.too_fast)
    cfg = p.config(http_stub.url)
    clock = Clock()
    th = Throttle.from_channels(cfg, clock=clock)

    async def send(a: Alert, channel: str) -> None:
        await deliver(a, channel, cfg, clock=lambda: NOW)

    fan = FanOut(send, throttle=th)
    first, second = sample_alert(id="first"), sample_alert(id="second", severity="red")
    overflowed = metric("matrixwatch_alert_notifications_overflowed_total", channel=p.channel)
    before = retries(p)

    await fan([(first, p.channel)])
    assert len(http_stub.requests) == 1 and retries(p) == before  # refused once, no retry
    assert th.throttled(p.channel) and list(th.overflow[p.channel]) == ["first"]

    clock.t += 30
    await fan([(second, p.channel)])  # throttled: no request at all
    assert len(http_stub.requests) == 1 and list(th.overflow[p.channel]) == ["first", "second"]
    assert metric("matrixwatch_alert_notifications_overflowed_total",
                  channel=p.channel) == overflowed + 2

    clock.t = 1000.0 + p.cooldown - 0.1
    assert await fan.flush() == 0 and len(http_stub.requests) == 1  # still cooling down
    clock.t = 1000.0 + p.cooldown
    assert await fan.flush() == 1
    assert not th.throttled(p.channel) and th.overflow == {}
    summary = http_stub.requests[1:]
    assert len(summary) == p.cost
    body = summary[0].body.decode()
    assert "【限流】另有 2 条告警未单独推送（红 1 · 橙 1 · 黄 0 · 蓝 0）" in body
    assert await fan.flush() == 0 and len(http_stub.requests) == 1 + p.cost  # exactly once

    await fan([(sample_alert(id="third"), p.channel)])  # and single alerts go out again
    assert len(http_stub.requests) == 1 + 2 * p.cost


@pytest.mark.parametrize("p", PLATFORMS, ids=IDS)
async def test_other_errors_still_retry_and_do_not_throttle(http_stub: HTTPStub,
                                                            p: Platform) -> None:
    http_stub.handler = answers(p, p.busy)
    cfg = p.config(http_stub.url)
    th = Throttle.from_channels(cfg, clock=Clock())

    async def send(a: Alert, channel: str) -> None:
        await deliver(a, channel, cfg, clock=lambda: NOW)

    await FanOut(send, throttle=th)([(sample_alert(), p.channel)])
    assert len(http_stub.requests) == 1 + p.cost  # the busy answer, then the delivery
    assert not th.throttled(p.channel) and th.overflow == {}

