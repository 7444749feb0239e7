"""Event-time volume buckets per key, counted from distinct ids.

Pure and JSON-able, so a key's state can live in a Faust table with a changelog.
A replayed or duplicated event lands on the same id in the same bucket and is
counted once. Buckets close when the watermark passes their end; an event for a
bucket that has already closed is late and is not counted (the caller counts it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from matrixwatch.streams.spikes import SpikeDetector, SpikeSignal

VolumeState = dict[str, Any]

MAX_GAP_BUCKETS = 288  # at most a day of zero buckets is replayed into the baseline


def new_state() -> VolumeState:
    return {"open": {}, "last_closed": None, "det": None, "fired": []}


@dataclass(frozen=True)
class Closed:
    t: float
    count: int
    negative: int


class VolumeCounter:
    """Distinct-id buckets per key feeding one spike detector per key."""

    def __init__(self, bucket: float, detector: SpikeDetector) -> None:
        self.bucket = bucket
        self.detector = detector

    def bucket_of(self, ts: float) -> float:
        return ts - (ts % self.bucket)

    def add(self, state: VolumeState, doc_id: str, ts: float, negative: bool) -> bool:
        """Count one event. False if it is late (its bucket already closed)."""
        b = self.bucket_of(ts)
        last = state["last_closed"]
        if last is not None and b <= last:
            return False
        slot = state["open"].setdefault(repr(b), {"ids": [], "neg": []})
        if doc_id not in slot["ids"]:
            slot["ids"].append(doc_id)
            if negative:
                slot["neg"].append(doc_id)
        return True

    def early(self, state: VolumeState) -> list[SpikeSignal]:
        """Fire on an open bucket as soon as its partial count is already a spike.

        Counts only grow, so waiting for the bucket to close would only delay the
        alert a duty officer needs within a minute. The baseline is not updated.
        """
        out = []
        for key, slot in state["open"].items():
            t = float(key)
            if t in state["fired"]:
                continue
            _, sig = self.detector.step(copy.deepcopy(state["det"]), t, len(slot["ids"]))
            if sig is not None:
                state["fired"].append(t)
                out.append(sig)
        return out

    def advance(self, state: VolumeState, watermark: float) -> list[SpikeSignal]:
        """Close every bucket that ended before the watermark; return new signals."""
        due = sorted(float(k) for k in state["open"] if float(k) + self.bucket <= watermark)
        out: list[SpikeSignal] = []
        for t in due:
            slot = state["open"].pop(repr(t))
            last = state["last_closed"]
            if last is not None:
                gap = int((t - last) / self.bucket) - 1
                start = t - min(gap, MAX_GAP_BUCKETS) * self.bucket
                z = start
                while z < t:
                    state["det"], _ = self.detector.step(state["det"], z, 0.0)
                    z += self.bucket
            state["det"], sig = self.detector.step(state["det"], t, float(len(slot["ids"])))
            state["last_closed"] = t
            if sig is not None and t not in state["fired"]:
                state["fired"].append(t)
                out.append(sig)
        state["fired"] = [f for f in state["fired"] if f > watermark - 2 * self.bucket]
        return out
