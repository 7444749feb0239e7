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
  ``min_severity`` the alert is stored but held: no notification then. The held alert
  is queued in its key's state with its routed channels and the end of its window.
* **digest** — :meth:`Dispatcher.flush` takes the held alerts whose window has ended by
  ``now`` (event time, like every decision here: the window ``[start, end)`` is over at
  ``now >= end``), removes them from their states and returns one digest per channel
  (an alert of type ``quiet_digest``: count per rule and severity, the top few held
  alerts with account, unit, numbers, Beijing time and link), sent like any alert.
  Each worker digests the keys of its own partitions (one worker: one digest per channel).
  A held alert that reaches the dispatcher after its window's digest went out comes in
  a later digest of its own. Digest ids hash the held ids: a re-sent digest (a crash
  between sending and saving the state) keeps its id, so receivers can dedupe.
* **routing** — the rule's routes, else channels.yaml's: every matching route adds its
  channels (``stop: true`` ends the list); disabled channels (missing secrets) are skipped.
* **send budget** — :class:`FanOut` with a :class:`~matrixwatch.alerts.throttle.Throttle`
  keeps each channel within its robot's rate limit; what does not fit is summarised
  (alerts/throttle.py). That decides about messages only: every alert decided for the
  store is stored. A platform's own "sending too fast" answer (another system posting to
  the robot, a restart, several workers) is not retried: :func:`deliver` raises
  :class:`RateLimited`, and the fan-out sends nothing to that channel until the platform's
  cooldown has passed, then summarises what waited.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from matrixwatch.alerts import metrics
from matrixwatch.alerts.channels import Channel, ChannelConfig, ChannelError
from matrixwatch.alerts.notifiers import SENDERS
from matrixwatch.alerts.notifiers.base import (
    DeliveryFailed,
    NotifyError,
    RateLimited,
    RateLimitError,
    shared_client,
)
from matrixwatch.alerts.notifiers.render import COUNT_PREFIX, QUIET_DIGEST, digest_line
from matrixwatch.alerts.rules import SEVERITIES, QuietHours, Rule, severity_rank
from matrixwatch.alerts.text import SHANGHAI, alert_id, local_str, to_local
from matrixwatch.alerts.throttle import Planned, Throttle
from matrixwatch.registry import Registry
from matrixwatch.retry import retry_async
from matrixwatch.streams.records import Alert, epoch

__all__ = ["Decision", "DeliveryFailed", "Digest", "Dispatcher", "FanOut", "HeldIndex",
           "RateLimited", "Throttle", "deliver"]

log = logging.getLogger(__name__)
MAX_IDS = 32
MAX_HELD = 200  # held alerts kept whole per key; beyond, the last entry counts the rest
DIGEST_TOP = 5  # held alerts listed in a digest (the rest are counted)


@dataclass(frozen=True)
class Decision:
    store: bool
    alert: Alert
    channels: list[str] = field(default_factory=list)
    reason: str = "new"  # new | escalated | realert | duplicate
    held: bool = False  # stored but not sent (quiet hours)
    skipped: list[str] = field(default_factory=list)  # routed but disabled channels


@dataclass(frozen=True)
class Digest:
    """One quiet-hours digest for one channel: ``alert`` is what is sent (never stored)."""

    channel: str
    alert: Alert
    held: list[str]  # ids of the held alerts it summarises


def quiet_window(q: QuietHours, local: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the occurrence of ``q`` that covers ``local`` (Asia/Shanghai).

    The end is the next ``q.end`` after ``local`` (windows are minute-aligned and end
    exclusive); the start the last ``q.start`` at or before it. ``start == end`` is a
    24-hour window per start day.
    """
    minute = local.hour * 60 + local.minute
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    start = day + timedelta(minutes=q.start - (0 if q.start <= minute else 1440))
    end = day + timedelta(minutes=q.end + (0 if q.end > minute else 1440))
    return start, end


def _held_entry(alert: Alert, windows: list[tuple[datetime, datetime]],
                channels: list[str]) -> dict:
    """What the state keeps of a held alert: enough to render it in the digest."""
    a = alert.asdict()
    a.pop("message", None)
    a["samples"] = (a.get("samples") or [])[:1]
    return {"start": min(w[0] for w in windows).timestamp(),
            "end": max(w[1] for w in windows).timestamp(), "ch": list(channels), "a": a}


def _enqueue(queue: list[dict], entry: dict) -> list[dict]:
    if len(queue) < MAX_HELD or queue[-1]["end"] != entry["end"]:
        return [*queue, entry]
    last = dict(queue[-1])  # full: count it on the last entry (same key and window)
    more = dict(last.get("more") or {})
    sev = entry["a"]["severity"]
    more[sev] = more.get(sev, 0) + 1
    last.update(more=more, ch=[*last["ch"], *(c for c in entry["ch"] if c not in last["ch"])])
    return [*queue[:-1], last]


def digest_for(channel: str, entries: list[dict]) -> Digest:
    """The digest of held entries for one channel (pure: same entries, same digest)."""
    held = sorted({e["a"]["id"] for e in entries})
    counts: dict[str, float] = {}
    total = 0
    for e in entries:
        a = e["a"]
        for sev, n in [(a["severity"], 1), *(e.get("more") or {}).items()]:
            k = f"{COUNT_PREFIX}{a['rule']}|{a['type']}|{sev}"
            counts[k] = counts.get(k, 0.0) + n
            total += n
    top = sorted(entries, key=lambda e: (-severity_rank(e["a"]["severity"]),
                                         e["a"]["timestamp"], e["a"]["id"]))[:DIGEST_TOP]
    start, end = min(e["start"] for e in entries), max(e["end"] for e in entries)
    severity = max((e["a"]["severity"] for e in entries), key=severity_rank)
    alert = Alert(
        id=alert_id(QUIET_DIGEST, channel, ",".join(held)), rule="quiet_hours",
        type=QUIET_DIGEST, severity=severity,
        timestamp=datetime.fromtimestamp(end, tz=SHANGHAI).isoformat(),
        title=f"暂缓 {total} 条告警（{local_str(start, seconds=False)[5:]} 至 "
              f"{local_str(end, seconds=False)[5:]}）",
        message="以下告警在静默时段内低于发送级别，已入库但未通知；时段结束，汇总如下。"
                "完整列表见值班台。",
        values={"total": float(total), "window_start": start, "window_end": end, **counts},
        samples=[digest_line(Alert(**e["a"])) for e in top],
    )
    return Digest(channel=channel, alert=alert, held=held)


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
        if held and enabled:  # for the digest at the end of the window
            windows = [quiet_window(q, local) for q in (rule.quiet_hours if rule else ())
                       if q.holds(alert.severity, local)]
            st["queue"] = _enqueue(st.get("queue") or [], _held_entry(alert, windows, enabled))
        outcome = "held" if held else ("sent" if enabled else "unrouted")
        metrics.DECISIONS.labels(rule=alert.rule, outcome=outcome).inc()
        return st, Decision(store=True, alert=alert, channels=[] if held else enabled,
                            reason=reason, held=held, skipped=skipped)

    def flush(self, items: Iterable[tuple[str, dict | None]], now: float,
              ) -> tuple[dict[str, dict], list[Digest]]:
        """Held alerts whose quiet window has ended by ``now`` (event time, epoch s).

        ``items`` are (key, state) pairs. Returns the changed states (due entries
        removed; nothing else changes) and one digest per channel, by channel name.
        Pure: the caller saves the states only after the digests are out.
        """
        changes: dict[str, dict] = {}
        by_channel: dict[str, list[dict]] = {}
        for key, st in items:
            queue = (st or {}).get("queue") or []
            due = [e for e in queue if e["end"] <= now]
            if not due or st is None:
                continue
            rest = [e for e in queue if e["end"] > now]
            changes[key] = {**{k: v for k, v in st.items() if k != "queue"},
                            **({"queue": rest} if rest else {})}
            for e in due:
                for ch in e["ch"]:
                    by_channel.setdefault(ch, []).append(e)
        digests = [digest_for(ch, entries) for ch, entries in sorted(by_channel.items())]
        return changes, digests

    def expired(self, state: dict | None, watermark: float, retention: float = 86400.0,
                key: str | None = None) -> bool:
        """True when a key's state can be deleted: nothing for ``retention`` past its
        windows (its own rule's, when ``key`` names one; else the longest of all rules),
        and no held alert waiting for its digest.

        With ``retention`` at least the allowed lateness, deleting it changes no
        decision on an alert at or after the watermark: it would be outside every
        realert and escalation window of the old state, so it is decided as on a new
        key either way. Only a duplicate (same id) arriving later than that is sent
        again."""
        if not state or state.get("last") is None:
            return not (state or {}).get("queue")
        if state.get("queue"):
            return False
        rule = self.rules.get(key.split("|", 1)[0]) if key else None
        rules = [rule] if rule is not None else self.rules.values()
        horizon = retention + max((max(r.realert, r.escalate_reset or 0.0) for r in rules),
                                  default=0.0)
        return bool(state["last"] < watermark - horizon)


class HeldIndex:
    """Which keys hold alerts, and the dispatcher's clock, on this worker.

    Derived and in memory: ``due`` maps a key to its earliest window end; it is rebuilt
    from the table after a rebalance (set ``stale``), so only the table needs a
    changelog. ``clock`` is the latest event time the dispatcher has been shown (the
    alerts it decided and, live, the pipeline's event time); it only moves forward.
    """

    def __init__(self) -> None:
        self.due: dict[str, float] = {}
        self.clock = -math.inf
        self.stale = True

    def advance(self, t: float) -> float:
        self.clock = max(self.clock, t)
        return self.clock

    def note(self, states: Iterable[tuple[str, dict | None]]) -> None:
        for key, st in states:
            queue = (st or {}).get("queue")
            if queue:
                self.due[key] = min(e["end"] for e in queue)
            else:
                self.due.pop(key, None)

    def keys_due(self, table_items: Callable[[], Iterable[tuple[str, dict | None]]],
                 overlay: dict[str, dict | None] | None = None) -> list[str]:
        """Keys with a window ended by ``clock``. ``table_items`` rebuilds the index when
        stale; ``overlay`` holds states decided but not saved yet (they win)."""
        if self.stale:
            self.due.clear()
            self.note(table_items())
            self.stale = False
        self.note((overlay or {}).items())
        return sorted(k for k, end in self.due.items() if end <= self.clock)


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
    error such as a bad signature or a 4xx), with a message free of secrets; and
    :class:`RateLimited` at once when the platform answers that the robot sends too fast
    (retrying would only prolong its throttling; :class:`FanOut` waits it out).
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

    def retrying(exc: BaseException | None, attempt: int) -> None:
        reason = exc.reason if isinstance(exc, NotifyError) else "error"
        metrics.NOTIFY_RETRIES.labels(channel=channel, type=ch.type, reason=reason).inc()
        log.warning("alert %s to %s (%s → %s): attempt %d failed (%s); retrying",
                    alert.id, channel, ch.type, ch.public_target(), attempt, reason)

    async def send_once() -> None:
        nonlocal attempts
        attempts += 1
        metrics.NOTIFY_ATTEMPTS.labels(channel=channel, type=ch.type).inc()
        await sender(alert, ch, registry, client, clock())

    started = time.monotonic()
    client = shared_client(ch) if ch.type != "email" else None
    try:
        await retry_async(send_once, initial=ch.retry.initial, max_wait=ch.retry.max_wait,
                          on_retry=retrying, attempts=ch.retry.attempts,
                          retryable=_retryable)
    except RateLimitError as e:  # not a failure: the alert goes into a summary later
        raise RateLimited(channel, ch.type, ch.public_target(), e.reason, e.cooldown,
                          attempts, _scrub(e.detail, ch)) from None
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
    metrics.NOTIFY_SENT.labels(channel=channel, type=ch.type).inc()
    metrics.NOTIFY_SECONDS.labels(type=ch.type).observe(time.monotonic() - started)


class FanOut:
    """Deliveries of a batch, all channels at once, at most ``per_channel`` in flight on
    each: one channel retrying with backoff must not hold up the others, and a burst
    of alerts must not queue behind one HTTP round trip each. The gates live as long
    as the object, so the cap also holds across overlapping batches (the alerts agent
    and the quiet-hours timer).

    With a ``throttle``, the channels' send budgets apply as well (alerts/throttle.py):
    a batch is planned highest severity first per channel, what has no room waits in
    the channel's overflow, and summaries go out with a batch or from :meth:`flush`.
    A delivery the platform refuses as too fast (:class:`RateLimited` from ``send``)
    throttles its channel for the platform's cooldown and waits in its overflow; so does
    every delivery to that channel until then, without a request, including those
    already planned and waiting for the channel's gate or its per-second pace. Without a
    throttle, RateLimited propagates like any other error of ``send``.
    """

    def __init__(self, send: Callable[[Alert, str], Awaitable[None]], per_channel: int = 8,
                 throttle: Throttle | None = None, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if per_channel < 1:
            raise ValueError("per_channel must be at least 1")
        self.send = send
        self.per_channel = per_channel
        self.throttle = throttle
        self.sleep = sleep
        self._gates: dict[str, asyncio.Semaphore] = {}

    async def __call__(self, deliveries: Sequence[tuple[Alert, str]]) -> None:
        if self.throttle is None:
            await asyncio.gather(*(self._one(Planned(a, ch)) for a, ch in deliveries))
        else:
            await self._run(self.throttle.plan(deliveries))

    async def flush(self) -> int:
        """Send the rate-limit summaries whose channel has room again (a timer's job:
        an alert burst ended and no new batch came). Returns how many were attempted."""
        if self.throttle is None:
            return 0
        planned = self.throttle.summaries()
        await self._run(planned)
        return len(planned)

    async def _run(self, planned: Sequence[Planned]) -> None:
        await asyncio.gather(*(self._one(p) for p in planned))

    async def _one(self, p: Planned) -> None:
        gate = self._gates.get(p.channel)
        if gate is None:
            gate = self._gates[p.channel] = asyncio.Semaphore(self.per_channel)
        th = self.throttle
        attempted = False
        try:
            async with gate:
                if p.slot is not None and th is not None:
                    wait = p.slot.at - th.clock()  # a per-second budget
                    if wait > 0:
                        await self.sleep(wait)
                if th is not None and th.throttled(p.channel):  # since it was planned
                    th.hold(p)
                    return
                attempted = True
                await self.send(p.alert, p.channel)
        except RateLimited as e:
            if th is None:
                raise
            th.rate_limited(p, e.cooldown, e.reason)
        finally:
            if th is not None:
                th.done(p, attempted=attempted)
