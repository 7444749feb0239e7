"""The store interface every sink implements.

Writes are idempotent upserts keyed by deterministic ids (platform + native id for
events, the rule + key + bucket for alerts, platform + root post for linkage), so
an at-least-once replay never double-counts. The agents await a write before they
let Faust ack the offsets of the events in it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from matrixwatch.retry import retry_async
from matrixwatch.streams.records import Alert, DeadLetter, Event, LinkageResult

RETRY_INITIAL = 0.2  # seconds before the first retry of a failed write; doubles, with jitter


async def write_until_done(write: Callable[[], Awaitable[None]],
                           failed: Callable[[BaseException | None, int], None],
                           max_wait: float) -> None:
    """Await ``write()`` until it succeeds, backing off exponentially from
    RETRY_INITIAL (at most ``max_wait`` between tries, plus up to 1 s of jitter);
    ``failed(exception, attempt)`` is called for each failure. It never gives up: an
    agent that raised would let Faust commit past its batch, so an outage stops the
    partition (back-pressure) instead.
    """
    await retry_async(write, initial=RETRY_INITIAL, max_wait=max_wait, on_retry=failed,
                      jitter=min(1.0, max_wait))


class Store(ABC):
    """Async writes for the stream, sync reads for commands and reports."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def write_events(self, events: Sequence[Event]) -> None: ...

    @abstractmethod
    async def write_alerts(self, alerts: Sequence[Alert]) -> None: ...

    @abstractmethod
    async def write_linkage(self, results: Sequence[LinkageResult]) -> None: ...

    @abstractmethod
    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    async def write_measures(self, rows: Sequence[dict[str, Any]]) -> None:
        """Matrix measures per account and period (reports); keyed account + period."""
        raise NotImplementedError(f"{type(self).__name__} does not store measures")

    # Reads: ordered, for exports (replay outputs) and reports.
    @abstractmethod
    def iter_events(self) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def iter_alerts(self) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def iter_linkage(self) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def iter_dead_letters(self) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]: ...


def alert_sort_key(a: dict[str, Any]) -> tuple[str, str]:
    return (a["timestamp"], a["id"])
