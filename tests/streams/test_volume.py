"""Distinct-id event-time buckets and early firing, on hand-made sequences."""

from __future__ import annotations

import json

from matrixwatch.streams.spikes import SpikeDetector, SpikeParams
from matrixwatch.streams.volume import VolumeCounter, new_state

B = 300.0
DAY = 86400.0


def counter() -> VolumeCounter:
    return VolumeCounter(B, SpikeDetector(SpikeParams(bucket_seconds=B)))


def warm(c: VolumeCounter, state: dict, days: float = 2, per_bucket: int = 1) -> float:
    """A quiet history: ``per_bucket`` events every bucket for ``days``."""
    t = 0.0
    n = 0
    while t < days * DAY:
        for _ in range(per_bucket):
            c.add(state, f"h{n}", t + 1, False)
            n += 1
        c.advance(state, t + 1 - 60)
        t += B
    c.advance(state, t)
    return t


def test_duplicates_count_once() -> None:
    c = counter()
    s = new_state()
    for _ in range(5):
        assert c.add(s, "weibo:1", 10.0, True)
    slot = s["open"][repr(0.0)]
    assert slot["ids"] == ["weibo:1"] and slot["neg"] == ["weibo:1"]


def test_late_event_for_a_closed_bucket_is_refused() -> None:
    c = counter()
    s = new_state()
    c.add(s, "a", 10.0, False)
    c.advance(s, 2 * B)
    assert not c.add(s, "b", 20.0, False)


def test_burst_fires_early_once_per_severity_and_state_round_trips() -> None:
    c = counter()
    state = new_state()
    t = warm(c, state)
    state = json.loads(json.dumps(state))  # survives a changelog round trip
    fired = []
    for i in range(200):
        c.add(state, f"burst{i}", t + 10 + i, False)
        fired += c.early(state)
    assert fired, "a 200-event burst over a quiet baseline must fire"
    ranks = [f.severity for f in fired]
    assert len(ranks) == len(set(ranks))  # one alert per severity level, escalating only
    assert fired[0].value >= 10  # the absolute floor holds


def test_zero_to_two_never_fires() -> None:
    c = counter()
    state = new_state()
    t = 3 * DAY
    c.add(state, "a", t, False)
    c.add(state, "b", t + 1, False)
    assert c.early(state) == []
    assert c.advance(state, t + 2 * B) == []
