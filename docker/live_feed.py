"""The demo feed of ``docker compose up``: the simulated matrix, backfilled, then live.

Why it exists: the compose stack should fill both dashboards without Weibo credentials.
The feed reads the registry the workers use (``MW_REGISTRY``), replays the simulated
matrix from ``MW_SIM_BACKFILL_DAYS`` ago up to now as fast as Kafka takes it (so the
matrix manager has days of linkage tasks at once), then keeps publishing in real time:
each object when wall-clock time reaches its delivery time. ``MW_SIM_ACTIVITY`` scales
how busy the accounts are. Objects go to ``<prefix>-raw`` exactly as a collector sends
them (native Weibo JSON, keyed by the account they are about).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any


def feed(sim: Any, send: Callable[[bytes], None], *, now: Callable[[], datetime],
         sleep: Callable[[float], None], stopped: Callable[[], bool],
         flush: Callable[[], None] = lambda: None, tick: float = 1.0,
         duration: float = 0.0, log: Callable[[str], None] = print) -> int:
    """Send everything due by ``now()``, then every ``tick`` seconds what became due."""
    sent, started, backfilled = 0, now(), False
    while not stopped():
        for obj in sim.events(until=now()):
            send(json.dumps(obj, ensure_ascii=False).encode())
            sent += 1
        flush()
        if not backfilled:
            backfilled = True
            log(f"backfill done: {sent:,} objects; now live")
        if duration and (now() - started).total_seconds() >= duration:
            break
        sleep(tick)
    return sent


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--backfill-days", type=float, default=float(env("MW_SIM_BACKFILL_DAYS", "7")))
    ap.add_argument("--activity", type=float, default=float(env("MW_SIM_ACTIVITY", "3")))
    ap.add_argument("--seed", type=int, default=int(env("MW_SIM_SEED", "7")))
    ap.add_argument("--tick", type=float, default=1.0, help="Seconds between live sends.")
    ap.add_argument("--duration", type=float, default=0.0, help="Stop after (0: never).")
    args = ap.parse_args(argv)

    from matrixwatch.collectors.simulator import TZ, Matrix, Simulator, build_matrix
    from matrixwatch.pipeline import Feeder, prepare_topics
    from matrixwatch.settings import get_settings

    s = get_settings()
    if not s.kafka_url:
        print("MW_KAFKA_URL is not set", file=sys.stderr)
        return 2
    if s.registry and Path(s.registry).is_file():
        matrix = Matrix.from_yaml(Path(s.registry).read_text(encoding="utf-8"))
    else:
        matrix = build_matrix(seed=args.seed)
    start = datetime.now(TZ) - timedelta(days=args.backfill_days)
    sim = Simulator(matrix, seed=args.seed, start=start, activity=args.activity)
    prepare_topics(s, s.kafka_url)
    feeder = Feeder(s, s.kafka_url)
    stop = {"flag": False}
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(flag=True))
    print(f"feeding {len(matrix.accounts)} simulated accounts to {s.topic('raw')} "
          f"from {start.isoformat()} (activity x{args.activity})", flush=True)
    try:
        n = feed(sim, feeder.send_raw, now=lambda: datetime.now(TZ), sleep=time.sleep,
                 stopped=lambda: stop["flag"], flush=feeder.flush, tick=args.tick,
                 duration=args.duration, log=lambda m: print(m, flush=True))
    finally:
        feeder.close()
    print(f"sent {n:,} objects", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
