"""Which alerts are stored and who hears of them: realert, escalation, quiet hours, routing.

State is one JSON-able dict per alert key (:meth:`Dispatcher.key`: rule + platform +
account, + post for per-post alerts), so the stream keeps it in a changelogged table and
decisions survive restarts. Everything is decided on the alert's event time:

* **duplicate** — an alert id already decided for the key (a replayed event): nothing.
* **escalation** — while a key keeps firing (no gap above ``escalate_reset``), every full
  ``escalate_after`` since the episode's first alert raises the severity one level
  (capped at red); the escalated alert gets its own deterministic id.
* **realert** — the same key again within ``realert`` of the last stored alert, at the same
  or a lower severity: suppressed (not stored, not sent). A higher severity breaks through,
  and so does the first alert after quiet hours if the one before was held.
* **quiet hours** — in Asia/Shanghai local time of the alert; below the window's
  ``min_severity`` the alert is stored but held: no notification.
* **routing** — the rule's routes, else channels.yaml's: every matching route adds its
  channels (``stop: true`` ends the list); disabled channels (missing secrets) are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from matrixwatch.alerts import metrics
from matrixwatch.alerts.channels import Channel, ChannelConfig, ChannelError
from matrixwatch.alerts.notifiers import SENDERS
from matrixwatch.alerts.notifiers.base import DeliveryFailed, NotifyError, client_for
from matrixwatch.alerts.rules import SEVERITIES, Rule, severity_rank
from matrixwatch.alerts.text import alert_id, to_local
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert, epoch

__all__ = ["Decision", "DeliveryFailed", "Dispatcher", "deliver"]

log = logging.getLogger(__name__)
MAX_IDS = 32


@dataclass(frozen=True)
class Decision:
    store: bool
    alert: Alert
    channels: list[str] = field(default_factory=list)
    reason: str = "new"  # new | escalated | realert | duplicate
    held: bool = False  # stored but not sent (quiet hours)
    skipped: list[str] = field(default_factory=list)  # routed but disabled channels


class Dispatcher:
    def __init__(self, rules: Sequence[Rule], channels: ChannelConfig) -> None:
        self.rules = {r.name: r for r in rules}
        self.channels = channels
        for r in rules:
            for route in r.routing or ():
                try:
                    channels.check_route(route)
                except ChannelError as e:
                    raise ChannelError(f"rule {r.name}: {e}") from None

    @staticmethod
    def key(alert: Alert) -> str:
        """Realert/escalation key: rule, platform, account, and the post for per-post alerts.
        Collector-health alerts key on their source (the first sample)."""
        parts = [alert.rule, alert.platform, alert.account_id or "-"]
        if alert.post_id:
            parts.append(alert.post_id)
        if alert.type == "collector_health" and alert.samples:
            parts.append(alert.samples[0])
        return "|".join(parts)

    def route(self, alert: Alert, rule: Rule | None) -> list[str]:
        routes = rule.routing if rule is not None and rule.routing is not None \
            else self.channels.routes
        out: list[str] = []
        for r in routes:
            if r.matches(alert):
                out += [c for c in r.channels if c not in out]
                if r.stop:
                    break
        return out

    def decide(self, state: dict | None, alert: Alert) -> tuple[dict, Decision]:
        rule = self.rules.get(alert.rule)
        st = state if state is not None else {"ids": [], "first": None, "last": None,
                                              "stored": None, "sev": -1, "held": False}
        if alert.id in st["ids"]:
            metrics.DECISIONS.labels(rule=alert.rule, outcome="duplicate").inc()
            return st, Decision(store=False, alert=alert, reason="duplicate")
        st["ids"] = [*st["ids"], alert.id][-MAX_IDS:]
        ts = epoch(alert.timestamp)
        realert = rule.realert if rule else 0.0
        reset = rule.escalate_reset if rule else None
        if st["first"] is None or reset is None or abs(ts - st["last"]) > reset:
            st["first"] = ts
        st["last"] = ts if st["last"] is None else max(st["last"], ts)
        reason = "new"
        if rule is not None and rule.escalate_after and ts - st["first"] >= rule.escalate_after:
            levels = int((ts - st["first"]) // rule.escalate_after)
            sev = SEVERITIES[min(len(SEVERITIES) - 1, severity_rank(alert.severity) + levels)]
            if sev != alert.severity:
                hours = (ts - st["first"]) / 3600.0
                alert = alert.derive(
                    id=alert_id(alert.id, "escalated", sev), severity=sev,
                    title=f"{alert.title}（持续 {hours:.3g} 小时，升级）",
                    message=f"{alert.message}（自首次告警起持续 {hours:.3g} 小时，"
                            f"级别由 {alert.severity} 升为 {sev}）",
                )
                reason = "escalated"
        local = to_local(alert.timestamp)
        held = any(q.holds(alert.severity, local) for q in (rule.quiet_hours if rule else ()))
        rank = severity_rank(alert.severity)
        if (st["stored"] is not None and abs(ts - st["stored"]) < realert
                and rank <= st["sev"] and not (st["held"] and not held)):
            metrics.DECISIONS.labels(rule=alert.rule, outcome="realert").inc()
            return st, Decision(store=False, alert=alert, reason="realert")
        st["stored"], st["sev"], st["held"] = ts, rank, held
        routed = self.route(alert, rule)
        enabled = [c for c in routed if self.channels.channels[c].enabled]
        skipped = [c for c in routed if c not in enabled]
        outcome = "held" if held else ("sent" if enabled else "unrouted")
        metrics.DECISIONS.labels(rule=alert.rule, outcome=outcome).inc()
        return st, Decision(store=True, alert=alert, channels=[] if held else enabled,
                            reason=reason, held=held, skipped=skipped)

    def expired(self, state: dict | None, watermark: float) -> bool:
        """True when a key's state can be deleted: nothing for a day past its windows."""
        if not state or state.get("last") is None:
            return True
        horizon = 86400.0 + max((max(r.realert, r.escalate_reset or 0.0)
                                 for r in self.rules.values()), default=0.0)
        return state["last"] < watermark - horizon


def _scrub(text: str, ch: Channel) -> str:
    """Belt and braces: a platform that echoes a token in its error body must not leak it."""
    secrets = [ch.token, ch.secret, ch.url_secret, ch.email.password if ch.email else None]
    for s in secrets:
        if s is not None and s.get():
            text = text.replace(s.get(), "***")
    return text


def _retryable(e: BaseException) -> bool:
    return isinstance(e, NotifyError) and e.retryable


async def deliver(alert: Alert, channel: str, channels: ChannelConfig,
                  registry: Registry | None = None, *,
                  clock: Callable[[], float] = time.time) -> None:
    """Send one alert to one channel, retrying with exponential backoff.

    Raises :class:`DeliveryFailed` after the last attempt (or at once for a permanent
    error such as a bad signature or a 4xx), with a message free of secrets.
    ``clock`` is the wall clock the platforms' signatures need (DingTalk and Feishu
    reject timestamps more than an hour off).
    """
    try:
        ch: Channel = channels.get(channel)
    except ChannelError:
        metrics.NOTIFY_FAILED.labels(channel=channel, type="?", reason="unknown_channel").inc()
        raise DeliveryFailed(channel, "?", "-", "unknown_channel", 0) from None
    if not ch.enabled:
        metrics.NOTIFY_FAILED.labels(channel=channel, type=ch.type, reason="disabled").inc()
        raise DeliveryFailed(channel, ch.type, ch.public_target(), "disabled", 0,
                             f"missing {', '.join(ch.missing)}")
    sender = SENDERS[ch.type]
    attempts = 0

    def _before_sleep(rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        reason = exc.reason if isinstance(exc, NotifyError) else "error"
        metrics.NOTIFY_RETRIES.labels(channel=channel, type=ch.type, reason=reason).inc()
        log.warning("alert %s to %s (%s → %s): attempt %d failed (%s); retrying",
                    alert.id, channel, ch.type, ch.public_target(), rs.attempt_number, reason)

    started = time.monotonic()
    client = client_for(ch) if ch.type != "email" else None
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(ch.retry.attempts),
            wait=wait_exponential(multiplier=ch.retry.initial, max=ch.retry.max_wait),
            retry=retry_if_exception(_retryable),
            before_sleep=_before_sleep,
            reraise=True,
        ):
            with attempt:
                attempts += 1
                metrics.NOTIFY_ATTEMPTS.labels(channel=channel, type=ch.type).inc()
                await sender(alert, ch, registry, client, clock())
    except NotifyError as e:
        metrics.NOTIFY_FAILED.labels(channel=channel, type=ch.type, reason=e.reason).inc()
        raise DeliveryFailed(channel, ch.type, ch.public_target(), e.reason, attempts,
                             _scrub(e.detail, ch)) from None
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug or an unexpected library error: still never silent
        metrics.NOTIFY_FAILED.labels(channel=channel, type=ch.type, reason="internal").inc()
        log.error("alert %s to %s: unexpected %s", alert.id, channel, type(e).__name__)
        raise DeliveryFailed(channel, ch.type, ch.public_target(), "internal", attempts,
                             type(e).__name__) from None
    finally:
        if client is not None:
            await client.aclose()
    metrics.NOTIFY_SENT.labels(channel=channel, type=ch.type).inc()
    metrics.NOTIFY_SECONDS.labels(type=ch.type).observe(time.monotonic() - started)
