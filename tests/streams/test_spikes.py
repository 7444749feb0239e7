"""Spike detector: hand-made count sequences, the restart case, and the `spikes` command."""

from __future__ import annotations

import io
import json
import math
import random
from datetime import UTC, datetime

import numpy as np
import pytest

from matrixwatch.streams.spikes import (
    MAX_COUNT,
    SEVERITIES,
    SpikeDetector,
    SpikeParams,
    SpikeSignal,
    detect_series,
    nb_log10_sf,
    spikes_command,
)

T0 = 1_700_000_000.0  # a bucket start, epoch seconds
B = 300.0  # default bucket width
DAY = 288  # 5-minute buckets per day


def feed(
    values: list[float] | np.ndarray,
    params: SpikeParams | None = None,
    state: dict | None = None,
    start: int = 0,
) -> tuple[dict | None, list[tuple[int, SpikeSignal]]]:
    det = SpikeDetector(params)
    signals = []
    for i, x in enumerate(values, start):
        state, sig = det.step(state, T0 + i * B, float(x))
        if sig is not None:
            signals.append((i, sig))
    return state, signals


def noisy(mean: float, n: int, seed: int = 7, k: float = 2.0) -> np.ndarray:
    """Over-dispersed counts: a gamma-Poisson (negative binomial) with size k."""
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(k, mean / k, n)).astype(float)


def test_flat_baseline_then_burst_fires_once() -> None:
    xs = noisy(5.0, 2 * DAY)
    xs = np.concatenate([xs, [80.0, 90.0, 60.0], noisy(5.0, 50, seed=8)])
    _, signals = feed(xs)
    assert [i for i, _ in signals] == [2 * DAY], signals
    sig = signals[0][1]
    assert sig.t == T0 + 2 * DAY * B
    assert sig.value == 80.0
    assert 3.0 < sig.baseline < 8.0
    assert sig.score >= SpikeParams().thresholds[0]
    assert sig.severity in SEVERITIES


def test_no_alert_during_warmup() -> None:
    _, signals = feed([0.0] * 10 + [500.0] + [0.0] * 10)
    assert signals == []


@pytest.mark.parametrize("burst", [1.0, 2.0, 5.0, 9.0])
def test_small_counts_on_a_silent_key_never_fire(burst: float) -> None:
    # "0 -> 2" (and anything under min_count) must never fire, however quiet the key was.
    xs = [0.0] * (3 * DAY) + [burst] * 5 + [0.0] * 20 + [burst, 0.0, burst]
    _, signals = feed(xs)
    assert signals == []


def test_sparse_key_with_occasional_events_stays_quiet() -> None:
    xs = noisy(0.3, 10 * DAY, seed=3, k=0.3)  # mostly zeros, bursty
    assert xs.max() >= SpikeParams().min_count  # the floors alone don't explain the silence
    _, signals = feed(xs)
    assert signals == []


def test_gradual_growth_does_not_fire_constantly() -> None:
    rng = np.random.default_rng(11)
    ramp = np.linspace(5.0, 120.0, 6 * DAY)  # a 24x rise over six days
    _, signals = feed(rng.poisson(ramp).astype(float))
    assert len(signals) <= 1


def test_level_shift_fires_once_then_is_learned() -> None:
    xs = np.concatenate([noisy(5.0, 2 * DAY, seed=1), noisy(60.0, 4 * DAY, seed=2)])
    _, signals = feed(xs)
    assert 1 <= len(signals) <= 2  # the jump (and at most one escalation), not every bucket
    assert all(i < 2 * DAY + 12 for i, _ in signals)


def test_state_round_trips_through_json_like_a_restart() -> None:
    xs = np.concatenate(
        [noisy(8.0, 2 * DAY, seed=5), [70.0, 200.0], noisy(8.0, DAY, seed=6), [400.0, 30.0]]
    )
    _, uninterrupted = feed(xs)
    assert len(uninterrupted) >= 2

    # Restart after every bucket: the state lives only as JSON text in between.
    det = SpikeDetector()
    text: str | None = None
    restarted = []
    for i, x in enumerate(xs):
        state = json.loads(text) if text is not None else None
        state, sig = det.step(state, T0 + i * B, float(x))
        text = json.dumps(state, allow_nan=False)
        if sig is not None:
            restarted.append((i, sig))
    assert restarted == uninterrupted

    # Restart once, in the middle, with a fresh detector object.
    mid = len(xs) // 2
    state, first = feed(xs[:mid])
    state, second = feed(xs[mid:], state=json.loads(json.dumps(state)), start=mid)
    assert first + second == uninterrupted


def test_state_is_small_and_plain() -> None:
    state, _ = feed(noisy(5.0, DAY))
    assert state is not None
    assert set(state) == {"t", "n", "m", "v", "until", "sev"}
    for value in state.values():
        assert value is None or isinstance(value, (int, float))


def test_replayed_bucket_is_ignored() -> None:
    det = SpikeDetector()
    state, _ = feed(noisy(5.0, 2 * DAY))
    assert state is not None
    last_t = state["t"]
    again, sig = det.step(state, last_t, 1000.0)
    assert sig is None and again == state
    older, sig = det.step(state, last_t - B, 1000.0)
    assert sig is None and older == state


def test_severity_escalates_with_magnitude() -> None:
    base = list(noisy(5.0, 2 * DAY, seed=9))
    levels = []
    scores = []
    for burst in (45.0, 80.0, 150.0, 300.0):  # the baseline is ~5 with variance ~16
        _, signals = feed([*base, burst])
        assert len(signals) == 1, burst
        levels.append(signals[0][1].severity)
        scores.append(signals[0][1].score)
    assert levels == ["blue", "yellow", "orange", "red"]
    assert scores == sorted(scores)


def test_refractory_holds_same_severity_but_lets_escalation_through() -> None:
    base = list(noisy(5.0, 2 * DAY, seed=9))
    quiet = list(noisy(5.0, 12, seed=10))
    _, signals = feed([*base, 45.0, *quiet, 45.0, *quiet, 400.0, *quiet, 400.0])
    assert [(s.value, s.severity) for _, s in signals] == [(45.0, "blue"), (400.0, "red")]
    no_escalation = SpikeParams(escalate=False)
    _, signals = feed([*base, 45.0, *quiet, 400.0], params=no_escalation)
    assert [s.value for _, s in signals] == [45.0]
    # After the refractory period (one day) the same burst fires again.
    _, signals = feed([*base, 45.0, *noisy(5.0, DAY + 1, seed=12), 45.0])
    assert [s.value for _, s in signals] == [45.0, 45.0]


def test_jump_in_time_is_the_same_as_feeding_zeros() -> None:
    xs = list(noisy(20.0, 2 * DAY, seed=4))
    det = SpikeDetector()
    for gap in (3, 500, 40 * DAY):  # within and beyond the 1/n ramp of the variance
        state, _ = feed(xs)
        assert state is not None
        zeros, _ = feed([0.0] * gap, state=state, start=len(xs))
        jumped, _ = det.step(state, T0 + (len(xs) + gap - 1) * B, 0.0)
        assert zeros is not None
        assert jumped["n"] == zeros["n"]
        assert jumped["m"] == pytest.approx(zeros["m"], rel=1e-6, abs=1e-12)
        assert jumped["v"] == pytest.approx(zeros["v"], rel=1e-6, abs=1e-12)


def test_bad_bucket_value_is_rejected() -> None:
    with pytest.raises(ValueError):
        SpikeDetector().step(None, T0, -1.0)
    with pytest.raises(ValueError):
        SpikeDetector().step(None, T0, math.nan)


def test_counts_above_2_53_are_rejected() -> None:
    """1e306 overflowed lgamma; 1e155 in the first buckets made the variance infinite."""
    with pytest.raises(ValueError, match="2\\*\\*53"):
        SpikeDetector().step(None, T0, 1e306)
    state, _ = SpikeDetector().step(None, T0, MAX_COUNT)
    with pytest.raises(ValueError):
        SpikeDetector().step(state, T0 + B, MAX_COUNT * 2)


def test_the_largest_count_keeps_the_math_finite() -> None:
    """MAX_COUNT early (unwinsorised learning) and late (the tail test) stays finite."""
    det = SpikeDetector()
    state, _ = det.step(None, T0, 5.0)
    state, _ = det.step(state, T0 + B, MAX_COUNT)
    assert math.isfinite(state["v"])
    # Months later the baseline is small again and a burst is tested against it.
    t = T0 + 80_000 * B
    state, _ = det.step(state, t, 5.0)
    for i in range(1, 3 * DAY):
        state, _ = det.step(state, t + i * B, 5.0)
    state, sig = det.step(state, t + 3 * DAY * B, MAX_COUNT)
    assert sig is not None and math.isfinite(sig.score)
    assert math.isfinite(state["m"]) and math.isfinite(state["v"])


def test_negative_binomial_tail() -> None:
    # Size r = 1 is the geometric distribution: P(X >= x) = q^x with q = 1 - mean / var.
    mean, var = 4.0, 20.0  # r = 16 / 16 = 1
    for x in (1, 5, 40, 400):
        expected = -x * math.log10(1.0 - mean / var)
        assert nb_log10_sf(x, mean, var) == pytest.approx(expected, rel=1e-6)
    assert nb_log10_sf(0, mean, var) == 0.0
    # Near-Poisson: P(X >= 10) for mean 1 is 1.114e-7.
    assert nb_log10_sf(10, 1.0, 1.0 + 1e-9) == pytest.approx(-math.log10(1.1143e-7), abs=1e-3)


def test_parameters_are_in_seconds_not_buckets() -> None:
    hourly = SpikeParams(bucket_seconds=3600.0)
    det = SpikeDetector(hourly)
    assert hourly.warmup_buckets == 24
    assert det._a_mean == pytest.approx(1 - 0.5 ** (3600 / hourly.mean_half_life))


def write_csv(tmp_path, text: str):
    path = tmp_path / "series.csv"
    path.write_text(text)
    return path


def nab_like(values: list[float], start: str = "2015-02-26 21:42:53") -> str:
    t0 = datetime.fromisoformat(start)
    lines = ["timestamp,value"]
    for i, v in enumerate(values):
        ts = datetime.fromtimestamp(t0.replace(tzinfo=UTC).timestamp() + i * B, UTC)
        lines.append(f"{ts:%Y-%m-%d %H:%M:%S},{int(v)}")
    return "\n".join(lines) + "\n"


def test_spikes_command_writes_json_lines(tmp_path) -> None:
    xs = [*noisy(5.0, 2 * DAY, seed=21), 120.0, *noisy(5.0, 20, seed=22)]
    path = write_csv(tmp_path, nab_like(xs))
    out = io.StringIO()
    assert spikes_command(path, out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    alert = lines[0]
    assert set(alert) >= {"timestamp", "severity", "value", "baseline", "score"}
    assert alert["severity"] in SEVERITIES
    assert alert["value"] == 120.0
    # Same wall-clock time as the CSV row, with an explicit UTC offset.
    assert alert["timestamp"] == "2015-02-28T21:42:53+00:00"
    assert datetime.fromisoformat(alert["timestamp"]).utcoffset().total_seconds() == 0


def test_detect_series_infers_the_bucket_width() -> None:
    rng = np.random.default_rng(5)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    xs = [*rng.poisson(50.0, 72).astype(float), 400.0]  # hourly buckets, 3 days
    rows = [(datetime.fromtimestamp(t0.timestamp() + 3600 * i, UTC), x) for i, x in enumerate(xs)]
    alerts = list(detect_series(rows))
    assert [a["timestamp"] for a in alerts] == ["2026-01-04T00:00:00+00:00"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,count\n2015-01-01 00:00:00,1\n", "header"),
        ("", "header"),
        ("timestamp,value\n2015-01-01 00:00:00,abc\n", "bad value"),
        ("timestamp,value\nyesterday,3\n", "bad timestamp"),
        ("timestamp,value\n2015-01-01 00:00:00,-4\n", ">= 0"),
        ("timestamp,value\n2015-01-01 00:00:00,1e306\n", "<= 2**53"),  # was OverflowError
        ("timestamp,value\n2015-01-01 00:00:00,1e155\n", "<= 2**53"),
        ("timestamp,value\n2015-01-01 00:00:00\n", "fields"),
        ("timestamp,value\n2015-01-01 00:05:00,1\n2015-01-01 00:00:00,1\n", "increase"),
    ],
)
def test_bad_csv_exits_2(tmp_path, capsys, text: str, message: str) -> None:
    out = io.StringIO()
    assert spikes_command(write_csv(tmp_path, text), out) == 2
    assert out.getvalue() == ""
    assert message in capsys.readouterr().err


def test_missing_or_binary_file_exits_2(tmp_path, capsys) -> None:
    assert spikes_command(tmp_path / "nope.csv", io.StringIO()) == 2
    assert "nope.csv" in capsys.readouterr().err
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    assert spikes_command(binary, io.StringIO()) == 2
    assert "binary.csv" in capsys.readouterr().err


@pytest.mark.parametrize("n0", [0, 1, 50, 206, 207, 208, 3000, 5819, 5820, 9000])
@pytest.mark.parametrize("k", [1, 7, 300, 7000])
def test_learning_a_gap_equals_learning_its_zeros_one_by_one(n0: int, k: int) -> None:
    """_learn_zeros is exactly k calls of _learn(s, 0.0): through the 1/n ramp (inlined
    there), and in closed form after it (equal to rounding)."""
    det = SpikeDetector()
    rng = random.Random(n0 * 7919 + k)
    start = {"t": 0.0, "n": n0, "m": rng.uniform(0, 30), "v": rng.uniform(0, 400),
             "until": None, "sev": -1}
    fast, slow = dict(start), dict(start)
    det._learn_zeros(fast, k)
    for _ in range(k):
        det._learn(slow, 0.0)
    assert fast["n"] == slow["n"]
    if n0 + k <= det._ramp:  # all in the ramp: the very same arithmetic
        assert (fast["m"], fast["v"]) == (slow["m"], slow["v"])
    else:
        assert fast["m"] == pytest.approx(slow["m"], rel=1e-9, abs=1e-12)
        assert fast["v"] == pytest.approx(slow["v"], rel=1e-9, abs=1e-12)
