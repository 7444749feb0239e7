#!/usr/bin/env python3
"""NAB benchmark of the spike detector: runs the ``spikes`` command on every realTweets series,
scores the alerts with the shared NAB scorer, and prints per-series and total scores.

    python bench/nab_bench.py                    # default parameters (what the stream uses)
    python bench/nab_bench.py --sensitivity      # also each parameter at x0.75 and x1.25
    python bench/nab_bench.py --data DIR --scorer PATH --keep ALERTS_DIR

The data is not part of the repo: by default it is read from <repo>/../shared/data/nab
(windows.json and realTweets/*.csv) and the scorer from <repo>/../shared/bench/nab_score.py.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from matrixwatch.streams.spikes import SpikeParams, spikes_command

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nab"
DEFAULT_SCORER = REPO.parent / "shared" / "bench" / "nab_score.py"
SENSITIVE = (
    "thresholds",
    "mean_half_life",
    "var_half_life",
    "warmup",
    "dispersion",
    "min_count",
    "min_ratio",
    "clip",
    "refractory",
    "mean_floor",
)
# Published NAB standard-profile scores on these five series, for comparison.
PUBLISHED = {"windowed Gaussian": 64.8, "Twitter ADVec": 66.0, "Numenta HTM": 66.1, "ARTime": 83.8}


class BenchError(RuntimeError):
    pass


def run_once(
    data: Path, scorer: Path, params: SpikeParams, alerts_dir: Path, profile: str = "standard"
) -> tuple[float, dict[str, dict]]:
    """Write one alerts file per series, score them, return (total, per-series info)."""
    series = sorted((data / "realTweets").glob("*.csv"))
    if not series:
        raise BenchError(f"no series in {data / 'realTweets'}")
    alerts_dir.mkdir(parents=True, exist_ok=True)
    for csv_path in series:
        with (alerts_dir / f"{csv_path.stem}.jsonl").open("w") as out:
            if spikes_command(csv_path, out, params) != 0:
                raise BenchError(f"spikes failed on {csv_path}")
    proc = subprocess.run(
        [
            sys.executable,
            str(scorer),
            "--windows",
            str(data / "windows.json"),
            "--data-dir",
            str(data / "realTweets"),
            "--profile",
            profile,
            str(alerts_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"scorer failed ({proc.returncode}): {proc.stderr.strip()}")
    per: dict[str, dict] = {}
    total = None
    for line in proc.stdout.splitlines():
        if m := re.match(r"^(\S+\.csv): (\{.*\})$", line):
            per[m.group(1)] = json.loads(m.group(2))
        elif m := re.match(r"^NAB \S+ score: (-?[\d.]+)$", line):
            total = float(m.group(1))
    if total is None:
        raise BenchError(f"no score in scorer output:\n{proc.stdout}")
    for name, info in per.items():
        alert_file = alerts_dir / (Path(name).stem + ".jsonl")
        info["alerts"] = sum(1 for ln in alert_file.read_text().splitlines() if ln.strip())
        n = info["windows"]
        # The same normalisation as the total, applied to one series.
        info["score"] = round(100.0 * (info["raw"] + n) / (2 * n), 1) if n else None
    return total, per


def scaled(params: SpikeParams, name: str, factor: float) -> SpikeParams:
    value = getattr(params, name)
    if isinstance(value, tuple):
        return replace(params, **{name: tuple(v * factor for v in value)})
    return replace(params, **{name: value * factor})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="NAB folder with windows.json and realTweets/ (default: %(default)s)",
    )
    ap.add_argument(
        "--scorer", type=Path, default=DEFAULT_SCORER, help="nab_score.py (default: %(default)s)"
    )
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--keep", type=Path, help="write the alerts here instead of a temp dir")
    ap.add_argument(
        "--sensitivity",
        action="store_true",
        help="also score each parameter scaled by 0.75 and 1.25",
    )
    args = ap.parse_args(argv)

    missing = [
        p
        for p in (args.data / "windows.json", args.data / "realTweets", args.scorer)
        if not p.exists()
    ]
    if missing:
        print(
            "nab_bench: NAB data or scorer not found: "
            + ", ".join(map(str, missing))
            + "\n  pass --data DIR (with windows.json and realTweets/) and --scorer PATH",
            file=sys.stderr,
        )
        return 2

    params = SpikeParams.for_series()
    print("params: " + ", ".join(f"{f.name}={getattr(params, f.name)}" for f in fields(params)))
    try:
        with tempfile.TemporaryDirectory(prefix="nab_alerts_") as tmp:
            out_dir = args.keep or Path(tmp)
            total, per = run_once(args.data, args.scorer, params, out_dir, args.profile)
            print(
                f"{'series':<28}{'windows':>8}{'tp':>4}{'fp':>4}{'fn':>4}{'alerts':>8}"
                f"{'raw':>9}{'score':>7}"
            )
            for name, i in per.items():
                print(
                    f"{name:<28}{i['windows']:>8}{i['tp']:>4}{i['fp']:>4}{i['fn']:>4}"
                    f"{i['alerts']:>8}{i['raw']:>9.3f}{i['score']:>7.1f}"
                )
            print(f"NAB {args.profile} score (total): {total:.1f}")
            if args.profile == "standard":
                published = ", ".join(f"{k} {v}" for k, v in PUBLISHED.items())
                print(f"published on these five: {published}")
            if args.sensitivity:
                print("sensitivity (one parameter at a time):")
                scores = []
                for name in SENSITIVE:
                    row = []
                    for factor in (0.75, 1.25):
                        s, _ = run_once(
                            args.data,
                            args.scorer,
                            scaled(params, name, factor),
                            Path(tmp) / f"{name}_{factor}",
                            args.profile,
                        )
                        scores.append(s)
                        row.append(f"x{factor}: {s:5.1f}")
                    print(f"  {name:<16}" + "   ".join(row))
                print(f"  min {min(scores):.1f}, mean {sum(scores) / len(scores):.1f}")
    except BenchError as e:
        print(f"nab_bench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
