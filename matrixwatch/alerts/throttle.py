"""Per-channel send budgets: a burst of alerts must not get a duty robot banned.

The platforms rate-limit custom robots: DingTalk and WeCom 20 messages a minute, Feishu
100 a minute and 5 a second (channels.py cites them); a DingTalk robot over its limit is
throttled for 10 minutes (errcode 130101). The 10k-account load run made ~97
notifications per 1,000 input events, ~5 a second per channel at ``run``'s 50 events/s:
a burst got the robot banned (at night, when it matters) or piled up retries that
arrived very late. So each channel gets a budget, and what does not fit is summarised.

* **Budget** — :class:`Window`: a sliding 60 s window of the messages sent to one
  channel, on a monotonic clock passed in. A message counts from when it is handed to
  the notifier until 60 s after its delivery ends, retries included: the platform counts
  it when it arrives, somewhere in between. Alerts get ``max_per_minute`` minus one
  delivery's messages; the last ones are the **reserve** of the overflow summary, so the
  summary itself never trips the limit. ``max_per_second`` (Feishu 5) delays sends
  instead of dropping them.
* **Priority** — :meth:`Throttle.plan` hands out a batch's slots on one channel highest
  severity first (red > orange > yellow > blue, ``rules.SEVERITIES``; equal severities
  keep their order), so it is the low ones that overflow.
* **Overflow** — a delivery without a slot is not sent: it waits in the channel's
  overflow and is counted (``matrixwatch_alert_notifications_overflowed_total``). The
  alert is stored either way: the alerts agent writes the store and notifies at once,
  and the budget only decides about the message.
* **Summary** — once the reserve is free, one alert of type ``rate_digest`` per channel
  (:func:`rate_digest`) covers all of the channel's overflow: count per severity and per
  rule, the five highest with account, numbers, Beijing time and link, rendered by every
  notifier like the quiet-hours digest. Its id hashes the overflowed ids and the
  channel: a summary of the same alerts keeps its id. Checked after every batch's
  deliveries are planned (the summary of a burst goes out with the burst) and by the
  worker's timer every ``MW_SWEEP_INTERVAL`` (``FanOut.flush``), so it goes out at most
  that long after the window frees again.
* **Platform throttling** — the budget cannot see another system posting to the same
  robot, a restarted worker's forgotten window or a wrong worker count, so the platform
  may still answer "sending too fast" (DingTalk 130101, WeCom 45009, Feishu 11232; the
  notifiers cite them). Retrying within seconds only prolongs it (a DingTalk robot stays
  throttled for 10 minutes), so that answer is not retried: :meth:`Throttle.rate_limited`
  marks the channel throttled for the platform's cooldown and puts the delivery in its
  overflow (counted like any other). Until the cooldown has passed every delivery to the
  channel goes there without a request, and no summary is sent; then one summary covers
  it all. A summary refused that way puts its alerts back (counted once).
* Channels without a budget (webhook and email unless configured) pass untouched.

Per worker: every worker process notifies (each owns some partitions of mw-alerts) and
keeps its own windows, so with W workers each should use a W-th of a robot's limit;
``MW_NOTIFY_BUDGET_WORKERS`` divides every budget (settings.py).

Crash trade-off: windows and overflow live in memory. A crash loses the pending summary,
not the alerts (they are stored; the duty console lists them). A worker restarted within
a minute of a full window starts with an empty one, so in that minute a robot may get up
to twice its budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from matrixwatch import metrics
from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.notifiers.render import COUNT_PREFIX, RATE_DIGEST, digest_line
from matrixwatch.alerts.rules import SEVERITIES, SEVERITY_ZH
from matrixwatch.alerts.text import SHANGHAI, alert_id
from matrixwatch.streams.records import Alert, epoch

__all__ = ["Budget", "Planned", "Slot", "Throttle", "Window", "rate_digest"]

log = logging.getLogger(__name__)
WINDOW = 60.0  # seconds of the per-minute budget
SECOND = 1.0  # seconds of the per-second budget
SUMMARY_TOP = 5  # overflowed alerts listed in a summary (the rest are counted)


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass(frozen=True)
class Budget:
    """One channel's limits as this worker applies them. ``cost``: messages per delivery."""

    per_minute: int
    per_second: int | None = None
    cost: int = 1

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.cost < 1 or (self.per_second is not None
                                                     and self.per_second < 1):
            raise ValueError(f"invalid budget {self}")

    @property
    def individual(self) -> int:
        """Deliveries a full window has room for besides the summary's reserve."""
        return max(0, self.per_minute - self.cost) // self.cost


class _Send:
    """One message in a window: ``end`` is inf while its delivery is in flight."""

    __slots__ = ("end", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.end = math.inf


@dataclass(frozen=True)
class Slot:
    """Room taken in a window: send at ``at`` (the clock's time), then :meth:`Window.done`."""

    at: float
    sends: tuple[_Send, ...]


class Window:
    """Sliding-window counter of one channel's messages (pure: times are passed in)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._sends: list[_Send] = []  # in order of start

    def used(self, now: float) -> int:
        """Messages that count at ``now``: in flight, or ended less than 60 s ago."""
        self._sends = [s for s in self._sends if s.end > now - WINDOW]
        return len(self._sends)

    def take(self, now: float, *, summary: bool = False) -> Slot | None:
        """Room for one delivery, or None. Alerts leave ``cost`` messages for the summary."""
        b = self.budget
        limit = b.per_minute if summary else b.per_minute - b.cost
        if self.used(now) + b.cost > limit:
            return None
        at = now
        if b.per_second is not None:  # the k-th last start must be a second before this one
            k = max(1, b.per_second - b.cost + 1)
            if len(self._sends) >= k:
                at = max(now, self._sends[-k].start + SECOND)
        sends = tuple(_Send(at) for _ in range(b.cost))
        self._sends.extend(sends)
        return Slot(at, sends)

    def done(self, slot: Slot, now: float) -> None:
        """The delivery ended (sent, given up or cancelled): its 60 s run from ``now``."""
        for s in slot.sends:
            s.end = max(now, s.start)

    def release(self, slot: Slot) -> None:
        """The delivery was never attempted: nothing reached the platform to count."""
        self._sends = [s for s in self._sends if s not in slot.sends]


@dataclass(frozen=True)
class Planned:
    """A delivery to make: ``slot`` None on a channel without a budget. A summary also
    carries the overflowed alerts it ``covers`` (they go back if it cannot be sent)."""

    alert: Alert
    channel: str
    slot: Slot | None = None
    covers: tuple[Alert, ...] = ()


@dataclass
class Throttle:
    """The budgets of every limited channel, their windows and their overflow.

    Synchronous and in memory: nothing awaits between checking a window and taking a
    slot, so overlapping batches (the alerts agent, the timers) cannot both take it.
    """

    budgets: Mapping[str, Budget]
    clock: Callable[[], float] = time.monotonic
    overflow: dict[str, dict[str, Alert]] = field(default_factory=dict)  # channel → id → alert

    def __post_init__(self) -> None:
        self._windows = {ch: Window(b) for ch, b in self.budgets.items()}
        self._until: dict[str, float] = {}  # channel → end of the platform's throttling
        for ch in self.budgets:  # exported at 0, so the first overflow is an increase
            metrics.child(metrics.NOTIFICATIONS_OVERFLOWED, channel=ch)

    @classmethod
    def from_channels(cls, channels: ChannelConfig, workers: int = 1,
                      clock: Callable[[], float] = time.monotonic) -> Throttle:
        """Each channel's limits divided among ``workers`` processes (rounded down)."""
        budgets: dict[str, Budget] = {}
        for name, ch in channels.channels.items():
            if ch.max_per_minute is None:
                continue
            per_minute = ch.max_per_minute // workers
            if per_minute < 1:
                log.error("channel %s: max_per_minute %d over %d workers is below one message "
                          "a minute each; using 1 (the robot may be throttled)",
                          name, ch.max_per_minute, workers)
            per_second = None if ch.max_per_second is None else max(1, ch.max_per_second
                                                                     // workers)
            b = Budget(max(1, per_minute), per_second, ch.messages_per_alert)
            if b.individual < 1 and ch.enabled:
                log.warning("channel %s: a budget of %d messages a minute per worker leaves "
                            "no room for single alerts: each goes into a summary",
                            name, b.per_minute)
            budgets[name] = b
        return cls(budgets, clock)

    def plan(self, deliveries: Sequence[tuple[Alert, str]]) -> list[Planned]:
        """What to send of a batch, and in which order: channels without a budget as
        given; on each limited one the highest severities while there is room, the rest
        into its overflow; then the summaries the windows have room for."""
        now = self.clock()
        out: list[Planned] = []
        limited: dict[str, list[Alert]] = {}
        for a, ch in deliveries:
            if self.throttled(ch, now):
                self._overflowed(ch, a)
            elif ch in self._windows:
                limited.setdefault(ch, []).append(a)
            else:
                out.append(Planned(a, ch))
        for ch, alerts in limited.items():
            window = self._windows[ch]
            for a in sorted(alerts, key=lambda a: -_rank(a.severity)):  # stable
                slot = window.take(now)
                if slot is None:
                    if not self.overflow.get(ch):
                        log.warning("channel %s: send budget (%d a minute) used up; further "
                                    "alerts go into a summary", ch,
                                    self.budgets[ch].per_minute)
                    self._overflowed(ch, a)
                else:
                    out.append(Planned(a, ch, slot))
        return out + self.summaries(now)

    def summaries(self, now: float | None = None) -> list[Planned]:
        """One summary per channel with overflow, not throttled by its platform, and room
        for it; that overflow is done."""
        now = self.clock() if now is None else now
        out: list[Planned] = []
        for ch in sorted(self.overflow):
            if self.throttled(ch, now):
                continue
            window = self._windows.get(ch)  # None: throttled once, without a budget
            slot = None if window is None else window.take(now, summary=True)
            if window is None or slot is not None:
                pending = tuple(self.overflow.pop(ch).values())
                out.append(Planned(rate_digest(ch, pending), ch, slot, pending))
        return out

    def done(self, p: Planned, *, attempted: bool = True) -> None:
        """``p``'s delivery ended; one never ``attempted`` (held) gives its room back."""
        if p.slot is not None:
            if attempted:
                self._windows[p.channel].done(p.slot, self.clock())
            else:
                self._windows[p.channel].release(p.slot)

    def throttled(self, channel: str, now: float | None = None) -> bool:
        """Whether the platform's cooldown for ``channel`` is still running."""
        until = self._until.get(channel)
        if until is None:
            return False
        if (self.clock() if now is None else now) < until:
            return True
        del self._until[channel]
        return False

    def rate_limited(self, p: Planned, cooldown: float, reason: str = "") -> None:
        """The platform refused ``p`` as too fast: nothing goes to the channel for
        ``cooldown`` seconds (from now, the platform's count of them), and ``p`` waits in
        its overflow for the summary after that."""
        now = self.clock()
        if not self.throttled(p.channel, now):
            log.warning("channel %s: the platform says the robot sends too fast (%s); "
                        "nothing is sent to it for %g s, its alerts go into a summary",
                        p.channel, reason or "rate limited", cooldown)
        self._until[p.channel] = max(self._until.get(p.channel, now), now + cooldown)
        self.hold(p)

    def hold(self, p: Planned) -> None:
        """``p`` into its channel's overflow instead of being sent: a summary's alerts go
        back (already counted), any other delivery is counted as overflowed."""
        if p.covers:
            for a in p.covers:
                self._overflowed(p.channel, a, count=False)
        else:
            self._overflowed(p.channel, p.alert)

    def _overflowed(self, channel: str, alert: Alert, *, count: bool = True) -> None:
        pending = self.overflow.setdefault(channel, {})
        if alert.id not in pending:
            pending[alert.id] = alert
            if count:
                metrics.child(metrics.NOTIFICATIONS_OVERFLOWED, channel=channel).inc()


def rate_digest(channel: str, alerts: Sequence[Alert]) -> Alert:
    """The summary of a channel's overflowed alerts (pure: same alerts, same summary)."""
    ids = sorted({a.id for a in alerts})
    by_severity = Counter(a.severity for a in alerts)
    counts: dict[str, float] = {}
    for a in alerts:
        k = f"{COUNT_PREFIX}{a.rule}|{a.type}|{a.severity}"
        counts[k] = counts.get(k, 0.0) + 1
    times = sorted(epoch(a.timestamp) for a in alerts)
    top = sorted(alerts, key=lambda a: (-_rank(a.severity), epoch(a.timestamp), a.id))
    top = top[:SUMMARY_TOP]
    spread = " · ".join(f"{SEVERITY_ZH[s]} {by_severity.get(s, 0)}" for s in reversed(SEVERITIES))
    return Alert(
        id=alert_id(RATE_DIGEST, channel, ",".join(ids)), rule="rate_limit", type=RATE_DIGEST,
        severity=max((a.severity for a in alerts), key=_rank),
        timestamp=datetime.fromtimestamp(times[-1], tz=SHANGHAI).isoformat(),
        title=f"另有 {len(alerts)} 条告警未单独推送（{spread}）",
        message=f"限流：发送过快会被平台封禁，本渠道超出每分钟额度的告警未单独推送，"
                f"均已入库；最高级别的 {len(top)} 条列在下面，详见值班台。",
        values={"total": float(len(alerts)), "window_start": times[0],
                "window_end": times[-1], **counts},
        samples=[digest_line(a) for a in top],
    )
