"""Monthly index + compliance report on a simulated 500-account matrix over 60 days.

Setup (not timed as the report): build the matrix (`build_matrix(seed=1, cities=14,
counties_per_city=18, departments_per_city=4)` = 500 accounts), simulate 60 days from
2026-09-02 00:00 +08:00, normalise every object as the stream does (fixed collected_at)
and write the events into a fresh SQLite store. Report (timed): read the store, one
collect pass, compliance checks, the six indices and the 排行榜 for --period (default
2026-10), render JSON + CSV + Markdown of both reports and upsert the rows into the
store. Prints the time and a SHA-256 of the rendered output; run it twice (two
processes) to see the output is identical bit for bit.

    python bench/index_bench.py [--period 2026-10] [--store PATH] [--runs 1]

--store PATH keeps the generated store (and reuses it if it exists) so that repeated
runs skip the setup.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from matrixwatch.collectors.simulator import TZ, Simulator, build_matrix, write_registry
from matrixwatch.registry import Registry
from matrixwatch.reports import index_render as render
from matrixwatch.reports.monthly import build, report_config
from matrixwatch.reports.period import parse_period
from matrixwatch.reports.storage import save_sqlite
from matrixwatch.reports.verticals import load_extras
from matrixwatch.streams.normalize import normalize
from matrixwatch.streams.sinks.sqlite import SQLiteStore

START = datetime(2026, 9, 2, tzinfo=TZ)
MATRIX = {"seed": 1, "cities": 14, "counties_per_city": 18, "departments_per_city": 4}


async def _fill(store: SQLiteStore, sim: Simulator, until: datetime) -> int:
    await store.open()
    n, batch = 0, []
    for obj in sim.events(until=until):
        batch.append(normalize(obj, collected_at=until))
        if len(batch) >= 5000:
            await store.write_events(batch)
            n += len(batch)
            batch = []
    if batch:
        await store.write_events(batch)
        n += len(batch)
    await store.close()
    return n


def setup(workdir: Path, days: int) -> tuple[Path, Path, int]:
    matrix = build_matrix(**MATRIX)
    reg_path, db = workdir / "matrix.yaml", workdir / "store.sqlite"
    write_registry(reg_path, matrix)
    if db.exists():
        return reg_path, db, -1
    sim = Simulator(matrix, seed=MATRIX["seed"], start=START)
    n = asyncio.run(_fill(SQLiteStore(db), sim, START + timedelta(days=days)))
    return reg_path, db, n


def report(reg_path: Path, db: Path, period: str) -> tuple[float, str, dict[str, int]]:
    t0 = time.perf_counter()
    cfg = report_config(None)
    reg = Registry.load(reg_path)
    per = parse_period(period)
    store = SQLiteStore(db)
    reps = build(reg, store, per, cfg, extras=load_extras(reg_path))
    store.close_sync()
    w = cfg.index.weights
    outputs = [render.index_json(per.label, reps.index, w), render.index_csv(reps.index),
               render.index_markdown(per.label, reps.index, w),
               render.compliance_json(per.label, reps.compliance),
               render.compliance_csv(reps.compliance),
               render.compliance_markdown(per.label, reps.compliance)]
    save_sqlite(db, reps.index, reps.compliance)
    dt = time.perf_counter() - t0
    h = hashlib.sha256()
    for text in outputs:
        h.update(text.encode("utf-8"))
        h.update(b"\x00")
    stats = {"accounts": len(reps.index), "events_read": reps.events_read,
             "vetoed": sum(1 for r in reps.compliance if r.status == "veto"),
             "failed": sum(1 for r in reps.compliance if r.status == "fail"),
             "bytes": sum(len(t.encode("utf-8")) for t in outputs)}
    return dt, h.hexdigest(), stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--store", type=Path, default=None, help="keep/reuse the store here")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="mw-index-bench-")
        workdir = Path(tmp.name)
    else:
        workdir = args.store
        workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    reg_path, db, n = setup(workdir, args.days)
    setup_s = time.perf_counter() - t
    what = f"{n:,} events simulated and stored" if n >= 0 else "existing store reused"
    print(f"setup: {what} in {setup_s:.1f}s ({db})")
    for i in range(args.runs):
        dt, digest, stats = report(reg_path, db, args.period)
        print(f"run {i + 1}: report {args.period} in {dt:.2f}s  sha256={digest}  {stats}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
