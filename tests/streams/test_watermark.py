"""The cross-partition watermark: the slowest active partition sets the time."""

from __future__ import annotations

import math

from matrixwatch.streams.watermark import PartitionWatermark


def test_min_over_partitions_minus_lateness_and_idleness() -> None:
    now = [0.0]
    wm = PartitionWatermark(lateness=10, idle_after=30, clock=lambda: now[0])
    assert wm.value() == -math.inf
    wm.observe(0, 1000)
    wm.observe(1, 400)
    wm.observe(0, 900)  # older than partition 0's max: no step back
    assert wm.value() == 390
    now[0] = 20
    wm.observe(0, 2000)
    assert wm.value() == 390  # partition 1 still active (seen 20 s ago)
    now[0] = 45
    wm.observe(0, 2100)
    assert wm.value() == 2090  # partition 1 idle for 45 s: it no longer holds time back
    wm.observe(1, 500)
    assert wm.value() == 490  # active again
    wm.forget({1})
    assert wm.value() == 2090 and wm.latest() == 2100


def test_end_of_input_on_every_partition_releases_everything() -> None:
    wm = PartitionWatermark(lateness=math.inf)
    wm.observe(0, 100)
    wm.observe(1, 200)
    assert wm.value() == -math.inf  # infinite lateness: nothing decided before the end
    wm.observe(0, 0, end=True)
    assert wm.value() == -math.inf  # partition 1 has not ended
    wm.observe(1, 0, end=True)
    assert wm.value() == math.inf
