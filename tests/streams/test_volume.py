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


def test_advance_is_idle_until_a_bucket_ends_or_a_mark_expires() -> None:
    c = counter()
    s = new_state()
    assert c.idle(s, 10 * B)  # nothing open, nothing fired
    c.add(s, "a", B + 10, False)  # bucket [B, 2B) ends at 2B
    assert s["due"] == 2 * B
    assert c.idle(s, 2 * B - 1) and c.advance(s, 2 * B - 1) == [] and s["open"]
    assert not c.idle(s, 2 * B)
    c.advance(s, 3 * B)  # closes it: nothing left to wait for
    assert not s["open"] and s["due"] is None


def test_a_state_written_before_due_existed_is_still_advanced() -> None:
    c = counter()
    s = new_state()
    c.add(s, "a", 10.0, False)
    del s["due"]  # the layout of states already in a changelog
    assert not c.idle(s, 0.0)
    c.advance(s, 2 * B)
    assert not s["open"] and s["last_closed"] == 0.0 and "due" in s


def test_skipping_idle_advances_changes_nothing() -> None:
    """The same random feed through a counter that skips idle advances and one that
    scans every time (due forgotten before each call) gives the same signals and state."""
    import random

    rnd = random.Random(7)
    fast, slow = counter(), counter()
    a, b = new_state(), new_state()
    t, wm = 0.0, 0.0
    sig_a: list = []
    sig_b: list = []
    for i in range(20_000):
        t += rnd.expovariate(1 / 40) if rnd.random() < 0.97 else rnd.uniform(0, 3 * DAY)
        burst = rnd.random() < 0.002
        for j in range(60 if burst else 1):
            ts = t - rnd.uniform(0, 200)
            for c, s, out in ((fast, a, sig_a), (slow, b, sig_b)):
                if c.add(s, f"e{i}.{j}", ts, False):
                    out += c.early(s)
        wm = max(wm, t - 60)
        sig_a += fast.advance(a, wm)
        b.pop("due", None)
        sig_b += slow.advance(b, wm)
    assert sig_a == sig_b and len(sig_a) > 0
    b.pop("due")
    a.pop("due")
    assert a == b
