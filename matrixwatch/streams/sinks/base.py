"""The store interface every sink implements.

Writes are idempotent upserts keyed by deterministic ids (platform + native id for
events, the rule + key + bucket for alerts, platform + root post for linkage), so
an at-least-once replay never double-counts. The agents await a write before they
let Faust ack the offsets of the events in it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from matrixwatch.streams.records import Alert, DeadLetter, Event, LinkageResult


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
