"""Event-time watermarks across the partitions a worker consumes.

A worker reads its partitions at different speeds (a replay can drain one partition
hours of event time ahead of another), so "the latest event time seen" is not a safe
clock: a task in a slow partition would close before its reposts were read. The
watermark is the minimum over partitions of each one's latest event time, minus the
allowed lateness. A partition with nothing new for ``idle_after`` wall seconds stops
holding the others back (Flink's idleness), so a quiet partition cannot freeze time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class PartitionWatermark:
    def __init__(self, lateness: float, idle_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lateness = lateness
        self.idle_after = idle_after
        self.clock = clock
        self.max_ts: dict[int, float] = {}
        self.seen_at: dict[int, float] = {}
        self.ended: set[int] = set()

    def observe(self, partition: int, ts: float, *, end: bool = False) -> None:
        """Record an event time; ``end`` marks the partition's end of input."""
        if end:
            self.ended.add(partition)
        elif ts > self.max_ts.get(partition, -math.inf):
            self.max_ts[partition] = ts
        self.seen_at[partition] = self.clock()

    def forget(self, partitions: set[int]) -> None:
        """Partitions revoked in a rebalance no longer hold time back."""
        for p in partitions:
            self.max_ts.pop(p, None)
            self.seen_at.pop(p, None)
            self.ended.discard(p)

    def value(self) -> float:
        """The watermark; +inf once every partition seen has reached its end of input.

        With infinite lateness (a finite replay) time only moves at the end, so every
        decision is taken with all the input in hand.
        """
        if self.ended and self.ended >= set(self.seen_at):
            return math.inf
        if not self.max_ts:
            return -math.inf
        now = self.clock()
        active = [m for p, m in self.max_ts.items() if now - self.seen_at[p] < self.idle_after]
        return min(active or self.max_ts.values()) - self.lateness

    def latest(self) -> float:
        """The latest event time seen on any partition (no lateness)."""
        return max(self.max_ts.values(), default=-math.inf)
