"""Volume-spike detection on event-time count buckets.

One algorithm serves the stream (per account, per post) and the offline ``spikes`` command.

Model. Per key we keep an exponentially weighted mean ``m`` and variance ``v`` of the
bucket counts. Counts are over-dispersed (bursty, many zeros), so the variance used in
the test is floored at the negative-binomial variance ``m + m²/k``: the learned variance can
only widen the distribution, never make it narrower than a Poisson-gamma mixture with size
``k``. The test statistic is ``score = -log10 P(X >= value)`` under a negative binomial with
that mean and variance. A bucket is a spike when

* the key has ``warmup`` of history (the baseline means something),
* ``value >= min_count`` and ``value >= min_ratio * baseline`` (absolute floors, so
  "0 -> 2" never fires however small the baseline),
* ``score >= thresholds[0]``.

Severity rises with the score (``thresholds`` for blue, yellow, orange, red). After a spike
the key is quiet for ``refractory`` seconds unless the severity escalates, so one burst
gives one alert (plus at most one per higher level).

Robustness. The mean and variance are updated with the value winsorised at
``m + clip * sd``, so a burst cannot teach the baseline that bursts are normal, while a
lasting level shift is still absorbed within a few mean half-lives. The variance has a
longer half-life than the mean: the mean follows the day, the variance remembers the
week's volatility. Every time constant is in seconds, so the same parameters hold for any
bucket width.

State. ``SpikeDetector.step`` is a pure function of (state, bucket): the state is a small
dict of floats and ints that survives ``json.dumps``/``json.loads`` exactly, so the stream
keeps it in a changelogged table and a restarted worker continues bit-for-bit. Buckets
at or before the last one seen are ignored, so a bucket replayed after a crash never
counts twice.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

SEVERITIES: tuple[str, str, str, str] = ("blue", "yellow", "orange", "red")
SEVERITY_ZH: dict[str, str] = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}

# Feeding more than this many missing buckets changes nothing measurable: after 12 variance
# half-lives the old baseline weighs < 0.03%.
_MAX_GAP_HALF_LIVES = 12.0


@dataclass(frozen=True)
class SpikeParams:
    """Detector parameters. Durations are in seconds of event time.

    The defaults are the stream's per-account defaults for 5-minute buckets, and the
    ``spikes`` command uses them too (see ``for_series``). They were chosen on the five
    NAB realTweets series (``bench/nab_bench.py``) with the floors set for sparse
    per-account Weibo counts; the NAB score is flat within ±25% of each value.
    """

    bucket_seconds: float = 300.0
    """Bucket width; only used to count the missing buckets in a jump of ``t``."""
    mean_half_life: float = 12 * 3600.0
    """Baseline mean half-life: long enough to span a burst, short enough to follow the day."""
    var_half_life: float = 7 * 86400.0
    """Variance half-life: a week, so a volatile key stays volatile overnight."""
    warmup: float = 86400.0
    """History needed before a key may alert (one daily cycle)."""
    dispersion: float = 10.0
    """Negative-binomial size k: the variance is at least m + m²/k."""
    thresholds: tuple[float, float, float, float] = (7.0, 14.0, 28.0, 56.0)
    """-log10 p for blue, yellow, orange, red."""
    min_count: float = 10.0
    """Absolute floor: fewer events than this in a bucket never fire."""
    min_ratio: float = 3.0
    """Relative floor: the value must be at least this multiple of the baseline."""
    clip: float = 4.0
    """Winsorise updates at m + clip * sd so bursts don't inflate the baseline."""
    refractory: float = 86400.0
    """Quiet period after an alert, unless the severity escalates."""
    escalate: bool = True
    """During the quiet period, still fire when the severity is higher than the last alert's."""
    mean_floor: float = 0.05
    """Smallest baseline mean used in the test (a silent key is not infinitely quiet)."""

    @classmethod
    def for_series(cls) -> SpikeParams:
        """Parameters for the offline ``spikes`` command: the stream defaults, unchanged.

        Kept as a named constructor so the command and the benchmark state explicitly which
        parameters they use; ``detect_series`` still adapts ``bucket_seconds`` to the file.
        """
        return cls()

    @property
    def warmup_buckets(self) -> int:
        return max(1, math.ceil(self.warmup / self.bucket_seconds))


@dataclass(frozen=True)
class SpikeSignal:
    """One spike: the bucket, what was seen, what was expected, and how surprising it was."""

    t: float
    value: float
    baseline: float
    score: float
    severity: str


def nb_log10_sf(x: float, mean: float, var: float) -> float:
    """Return -log10 P(X >= x) for a negative binomial with the given mean and variance > mean.

    The tail is summed term by term from x (terms shrink geometrically past the mode) and
    closed with a geometric bound, so it stays accurate for p far below float precision.
    """
    if x <= 0.0:
        return 0.0
    if var <= mean:
        var = mean * (1.0 + 1e-9) + 1e-12
    r = mean * mean / (var - mean)  # NB size
    p = mean / var  # success probability
    q = 1.0 - p
    log_term = (
        math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1.0) + r * math.log(p)
        + x * math.log(q)
    )
    total = term = 1.0
    k = x
    for _ in range(500):
        term *= (k + r) / (k + 1.0) * q
        total += term
        k += 1.0
        if term < 1e-10 * total:
            break
    ratio = max((k + r) / (k + 1.0) * q, q)  # an upper bound on every later ratio
    if ratio < 1.0:
        total += term * ratio / (1.0 - ratio)
    return max(0.0, -(log_term + math.log(total)) / math.log(10.0))


class SpikeDetector:
    """Stateless step function over per-key state dicts (see the module docstring)."""

    def __init__(self, params: SpikeParams | None = None) -> None:
        self.params = p = params or SpikeParams()
        self._a_mean = 1.0 - 0.5 ** (p.bucket_seconds / p.mean_half_life)
        self._a_var = 1.0 - 0.5 ** (p.bucket_seconds / p.var_half_life)
        self._max_fill = math.ceil(_MAX_GAP_HALF_LIVES * p.var_half_life / p.bucket_seconds)

    def expected(self, state: dict) -> tuple[float, float]:
        """Baseline mean and the (floored) variance the next bucket is tested against."""
        p = self.params
        m = max(state["m"], p.mean_floor)
        return m, max(state["v"], m + m * m / p.dispersion)

    def _learn(self, s: dict, x: float) -> None:
        # Until a full EWMA window is seen, 1/n weights make m, v the plain sample moments,
        # so the start value does not linger. Winsorise only once the moments mean something.
        n = s["n"]
        a_m = max(self._a_mean, 1.0 / (n + 1))
        a_v = max(self._a_var, 1.0 / (n + 1))
        if n >= self.params.warmup_buckets:
            x = min(x, s["m"] + self.params.clip * math.sqrt(self.expected(s)[1]))
        d = x - s["m"]
        s["m"] += a_m * d
        s["v"] = (1.0 - a_v) * (s["v"] + a_v * d * d)
        s["n"] = n + 1

    def step(self, state: dict | None, t: float, value: float) -> tuple[dict, SpikeSignal | None]:
        """Feed one closed bucket (t = bucket start, epoch seconds) and return (state, signal).

        Buckets skipped since the last call are learned as zeros. A bucket at or before the
        last one seen returns the state unchanged and no signal (idempotent replays).
        """
        p = self.params
        value = float(value)
        if state is None:
            s: dict = {"t": float(t), "n": 0, "m": 0.0, "v": 0.0, "until": None, "sev": -1}
            self._learn(s, value)
            return s, None
        if t <= state["t"]:
            return state, None
        s = dict(state)
        missing = round((t - s["t"]) / p.bucket_seconds) - 1
        for _ in range(min(max(missing, 0), self._max_fill)):
            self._learn(s, 0.0)
        s["t"] = float(t)

        signal = None
        m, v = self.expected(s)
        if s["n"] >= p.warmup_buckets and value >= p.min_count and value >= p.min_ratio * m:
            score = nb_log10_sf(value, m, v)
            level = sum(1 for th in p.thresholds if score >= th) - 1
            quiet = s["until"] is not None and t < s["until"]
            if level >= 0 and (not quiet or (p.escalate and level > s["sev"])):
                signal = SpikeSignal(t=float(t), value=value, baseline=m, score=score,
                                     severity=SEVERITIES[level])
                if not quiet:
                    s["until"] = float(t) + p.refractory
                s["sev"] = level
        if s["until"] is not None and t >= s["until"]:
            s["until"], s["sev"] = None, -1
        self._learn(s, value)
        return s, signal


def _bucket_of(times: list[float], default: float) -> float:
    diffs = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    return statistics.median(diffs) if diffs else default


def _iso(dt: datetime) -> str:
    # Naive timestamps are UTC. Aware ones keep their own offset, because readers such as
    # NAB's scorer compare the wall-clock part with the (naive) series timestamps.
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def detect_series(
    rows: Iterable[tuple[datetime, float]],
    params: SpikeParams | None = None,
    bucket_seconds: float | None = None,
) -> Iterator[dict]:
    """Run the detector over one series and yield alert dicts for the ``spikes`` command.

    ``bucket_seconds`` defaults to the median spacing of the timestamps. Naive timestamps are
    taken as UTC.
    """
    data = [(dt, float(v)) for dt, v in rows]
    times = [(dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() for dt, _ in data]
    p = params or SpikeParams.for_series()
    bucket = bucket_seconds or _bucket_of(times, p.bucket_seconds)
    if bucket != p.bucket_seconds:
        p = replace(p, bucket_seconds=bucket)
    det = SpikeDetector(p)
    state: dict | None = None
    for (dt, value), t in zip(data, times, strict=True):
        state, sig = det.step(state, t, value)
        if sig is not None:
            yield {
                "timestamp": _iso(dt),
                "severity": sig.severity,
                "value": sig.value,
                "baseline": round(sig.baseline, 3),
                "score": round(sig.score, 3),
            }


class SeriesError(ValueError):
    """The series file cannot be read as timestamp,value rows."""


def read_series(path: Path) -> list[tuple[datetime, float]]:
    """Read a NAB-style CSV (header ``timestamp,value``), checking every row."""
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        raise SeriesError(f"{path}: cannot open: {e.strerror or e}") from e
    rows: list[tuple[datetime, float]] = []
    with f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if "timestamp" not in header or "value" not in header:
            raise SeriesError(f"{path}: header must name the columns timestamp,value; got {header}")
        it, iv = header.index("timestamp"), header.index("value")
        last: float | None = None
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(it, iv):
                raise SeriesError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
            try:
                dt = datetime.fromisoformat(row[it].strip())
            except ValueError:
                raise SeriesError(f"{path}:{line}: bad timestamp {row[it]!r}") from None
            try:
                value = float(row[iv])
            except ValueError:
                raise SeriesError(f"{path}:{line}: bad value {row[iv]!r}") from None
            if not math.isfinite(value) or value < 0:
                raise SeriesError(f"{path}:{line}: value must be a count >= 0, got {row[iv]!r}")
            t = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
            if last is not None and t <= last:
                raise SeriesError(f"{path}:{line}: timestamps must increase ({row[it]!r})")
            last = t
            rows.append((dt, value))
    return rows


def spikes_command(series: Path, out: TextIO, params: SpikeParams | None = None) -> int:
    """``matrixwatch spikes --series FILE.csv``: one JSON line per alert on ``out``.

    Returns 0, or 2 with a message on stderr when the file is missing or malformed.
    """
    try:
        rows = read_series(Path(series))
    except SeriesError as e:
        print(f"matrixwatch spikes: {e}", file=sys.stderr)
        return 2
    for alert in detect_series(rows, params):
        out.write(json.dumps(alert, ensure_ascii=False) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m matrixwatch.streams.spikes",
                                 description="Spike alerts for a timestamp,value CSV series.")
    ap.add_argument("--series", required=True, type=Path)
    args = ap.parse_args(argv)
    return spikes_command(args.series, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
