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

Robustness. Learning uses the value winsorised at ``m + clip * sd``, so one freak burst
moves the baseline by a bounded amount while routine volatility is still learned (on NAB a
tight clip, 4 sd, costs 8 points: bursty keys then look calm and alert too often; no clip
costs 7: one burst hides the next). The variance has a longer half-life than the mean: the
mean follows the day, the variance remembers two weeks of volatility. For the first
1/alpha buckets (about 1.4 half-lives) plain 1/n averages replace the EWMA, so the first
values don't linger. Every time constant is in seconds, so the same parameters hold for any
bucket width.

State. ``SpikeDetector.step`` is a pure function of (state, bucket): the state is a small
dict of floats, ints and None that survives ``json.dumps``/``json.loads`` exactly, so the
stream keeps it in a changelogged table and a restarted worker continues bit-for-bit. Buckets
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
from itertools import pairwise
from pathlib import Path
from typing import TextIO

SEVERITIES: tuple[str, str, str, str] = ("blue", "yellow", "orange", "red")
SEVERITY_ZH: dict[str, str] = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
MAX_HALF_LIFE_BUCKETS = 1_000_000
"""Longest half-life, in buckets. Beyond ~1e16 the per-bucket rate 1 - 0.5**(1/h) is 0.0
in floats (no learning, and a division by zero); well before that, the 1/n ramp of
``_learn_zeros`` (about 1.44 h steps) makes one long gap cost seconds of CPU."""

MAX_COUNT = float(2**53)
"""Largest bucket count accepted: the largest integer a float holds exactly. Far beyond
any real count, and it keeps the math finite: from ~1.3e154 the squared deviation in
``_learn`` overflows to an infinite variance (a ValueError from ``lgamma(0)`` months of
buckets later), from ~2.5e305 ``lgamma`` in :func:`nb_log10_sf` overflows at once."""


@dataclass(frozen=True)
class SpikeParams:
    """Detector parameters. Durations are seconds of event time, so they hold for any bucket.

    ``SpikeParams()`` is the stream's default for 5-minute per-account buckets, and the
    ``spikes`` command uses the same values (``for_series``). The time constants, dispersion
    and threshold were tuned on the five NAB realTweets series (``bench/nab_bench.py``; the
    score stays >= 77 with any one of them moved by ±25%). The floors (``min_count``,
    ``min_ratio``) are set for sparse per-account Weibo counts and don't bind on NAB.
    """

    bucket_seconds: float = 300.0
    """Bucket width; used to turn time constants into per-bucket rates and to count the
    buckets missing in a jump of ``t``."""
    mean_half_life: float = 12 * 3600.0
    """Baseline mean: spans a burst without absorbing it, still follows a level shift in a day."""
    var_half_life: float = 14 * 86400.0
    """Variance: two weeks, so a key that is bursty by nature stays known as bursty."""
    warmup: float = 86400.0
    """History needed before a key may alert: one daily cycle."""
    dispersion: float = 10.0
    """Negative-binomial size k: the variance tested against is at least m + m²/k."""
    thresholds: tuple[float, float, float, float] = (5.0, 10.0, 20.0, 40.0)
    """-log10 p at which a bucket is blue, yellow, orange, red."""
    min_count: float = 10.0
    """Absolute floor: a bucket with fewer events never fires (so 0 -> 2 never does)."""
    min_ratio: float = 3.0
    """Relative floor: the value must be at least this multiple of the baseline."""
    clip: float = 10.0
    """Winsorise learning at m + clip * sd: a one-off burst must not teach the variance that
    huge bursts are normal, but the variance should still learn routine volatility."""
    refractory: float = 86400.0
    """Quiet period after an alert (one burst, one alert), unless the severity escalates."""
    escalate: bool = True
    """During the quiet period, still fire when the severity exceeds the last alert's."""
    mean_floor: float = 0.05
    """Smallest baseline mean used in the test: a silent key is not infinitely quiet."""

    @classmethod
    def for_series(cls) -> SpikeParams:
        """Parameters for the offline ``spikes`` command: the stream defaults, unchanged.

        A named constructor so the command and the benchmark say which parameters they use;
        ``detect_series`` only adapts ``bucket_seconds`` to the file's spacing.
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
        math.lgamma(x + r)
        - math.lgamma(r)
        - math.lgamma(x + 1.0)
        + r * math.log(p)
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
        for name in ("mean_half_life", "var_half_life"):
            ratio = getattr(p, name) / p.bucket_seconds
            if not 0.0 < ratio <= MAX_HALF_LIFE_BUCKETS:
                raise ValueError(f"{name} must be between 0 and {MAX_HALF_LIFE_BUCKETS:,} "
                                 f"buckets of {p.bucket_seconds:g}s, not {ratio:.3g}")
        self._a_mean = 1.0 - 0.5 ** (p.bucket_seconds / p.mean_half_life)
        self._a_var = 1.0 - 0.5 ** (p.bucket_seconds / p.var_half_life)
        # After this many buckets both rates are at their EWMA values (see _learn).
        self._ramp = math.ceil(1.0 / min(self._a_mean, self._a_var))
        self._warmup = p.warmup_buckets  # a property of a frozen dataclass: compute once

    def may_fire(self, value: float) -> bool:
        """Cheap pre-check: below the absolute floor no bucket can ever fire."""
        return value >= self.params.min_count

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
        if n >= self._warmup:
            x = min(x, s["m"] + self.params.clip * math.sqrt(self.expected(s)[1]))
        d = x - s["m"]
        s["m"] += a_m * d
        s["v"] = (1.0 - a_v) * (s["v"] + a_v * d * d)
        s["n"] = n + 1

    def _learn_zeros(self, s: dict, k: int) -> None:
        """Learn k empty buckets: exactly as k calls of _learn(s, 0), in O(ramp) time."""
        # The ramp (1/n weights) has no closed form here: step through it, with
        # _learn(s, 0.0) inlined (a zero is never winsorised: the bound m + clip·sd ≥ 0).
        # It runs for most events of a young key (one ramp is ~20 days of buckets).
        n, m, v = s["n"], s["m"], s["v"]
        a_mean, a_var, ramp = self._a_mean, self._a_var, self._ramp
        while k > 0 and n < ramp:
            inv = 1.0 / (n + 1)
            a_m = a_mean if a_mean >= inv else inv
            a_v = a_var if a_var >= inv else inv
            d = 0.0 - m
            m += a_m * d
            v = (1.0 - a_v) * (v + a_v * d * d)
            n += 1
            k -= 1
        s["n"], s["m"], s["v"] = n, m, v
        if k <= 0:
            return
        # With constant rates and x = 0 (never winsorised): m_j = m0 b^j with b = 1 - a_m,
        # v_k = c^k v0 + a_v m0² sum_j c^(k-j) b^(2j) with c = 1 - a_v.
        b, c = 1.0 - self._a_mean, 1.0 - self._a_var
        m0, v0 = s["m"], s["v"]
        ck, b2k = c**k, b ** (2 * k)
        rho = b * b / c
        geo = k * ck if abs(1.0 - rho) < 1e-12 else (ck - b2k) / (1.0 - rho)
        s["m"] = m0 * b**k
        s["v"] = ck * v0 + self._a_var * m0 * m0 * geo
        s["n"] += k

    def step(self, state: dict | None, t: float, value: float) -> tuple[dict, SpikeSignal | None]:
        """Feed one closed bucket (t = bucket start, epoch seconds) and return (state, signal).

        Buckets skipped since the last call are learned as zeros. A bucket at or before the
        last one seen returns the state unchanged and no signal (idempotent replays).
        """
        p = self.params
        value = float(value)
        if not 0.0 <= value <= MAX_COUNT:  # also NaN and inf
            raise ValueError(f"bucket count must be finite, >= 0 and <= 2**53, got {value!r}")
        if state is None:
            s: dict = {"t": float(t), "n": 0, "m": 0.0, "v": 0.0, "until": None, "sev": -1}
            self._learn(s, value)
            return s, None
        if t <= state["t"]:
            return state, None
        s = dict(state)
        missing = round((t - s["t"]) / p.bucket_seconds) - 1
        if missing > 0:
            self._learn_zeros(s, missing)
        s["t"] = float(t)

        signal = None
        m, v = self.expected(s)
        if s["n"] >= self._warmup and value >= p.min_count and value >= p.min_ratio * m:
            score = nb_log10_sf(value, m, v)
            level = sum(1 for th in p.thresholds if score >= th) - 1
            quiet = s["until"] is not None and t < s["until"]
            if level >= 0 and (not quiet or (p.escalate and level > s["sev"])):
                signal = SpikeSignal(
                    t=float(t), value=value, baseline=m, score=score, severity=SEVERITIES[level]
                )
                if not quiet:
                    s["until"] = float(t) + p.refractory
                s["sev"] = level
        if s["until"] is not None and t >= s["until"]:
            s["until"], s["sev"] = None, -1
        self._learn(s, value)
        return s, signal


def _bucket_of(times: list[float], default: float) -> float:
    diffs = [b - a for a, b in pairwise(times) if b > a]
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
    try:
        with f:
            return _read_rows(path, f)
    except (UnicodeDecodeError, csv.Error) as e:
        raise SeriesError(f"{path}: not a readable CSV text file: {e}") from e
    except OSError as e:
        raise SeriesError(f"{path}: cannot read: {e.strerror or e}") from e


def _read_rows(path: Path, f: TextIO) -> list[tuple[datetime, float]]:
    rows: list[tuple[datetime, float]] = []
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
        if value > MAX_COUNT:
            raise SeriesError(f"{path}:{line}: value must be a count <= 2**53 "
                              f"({MAX_COUNT:.0f}), got {row[iv]!r}")
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
    ap = argparse.ArgumentParser(
        prog="python -m matrixwatch.streams.spikes",
        description="Spike alerts for a timestamp,value CSV series.",
    )
    ap.add_argument("--series", required=True, type=Path)
    args = ap.parse_args(argv)
    return spikes_command(args.series, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
