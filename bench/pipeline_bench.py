"""Full-pipeline throughput against the bare Faust ceiling, on one embedded broker.

Both runs pre-load N simulated native objects into their input topic, then start a
worker process and time from the first committed progress to fully drained, read
from the broker's committed offsets. Prints events/s for each and the ratio.

    python bench/pipeline_bench.py --events 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from matrixwatch.broker import EmbeddedBroker, ensure_topics
from matrixwatch.collectors.simulator import Simulator, build_matrix, write_registry
from matrixwatch.pipeline import Feeder, WorkerProcess, group_lag, pipeline_topics
from matrixwatch.settings import Settings

HERE = Path(__file__).resolve().parent


def timed_drain(bootstrap: str, group: str, topics: list[str], partitions: int, total: int,
                alive: object, timeout: float) -> float:
    """Seconds from the first committed progress to zero lag (twice in a row)."""
    start: float | None = None
    zero = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert callable(alive) and alive(), "worker died"
        current = group_lag(bootstrap, group, topics, partitions)
        now = time.monotonic()
        if start is None and current[topics[0]] < total:
            start = now
        zero = zero + 1 if sum(current.values()) == 0 else 0
        if zero >= 2 and start is not None:
            return now - start
        time.sleep(0.25)
    raise TimeoutError(f"not drained in {timeout}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    matrix = build_matrix()
    reg = work / "matrix.yaml"
    write_registry(reg, matrix)
    sim = Simulator(matrix)
    lines = [json.dumps(o, ensure_ascii=False).encode() for o in sim.events(args.events)]
    print(f"{len(lines):,} simulated objects, {len(matrix.accounts)} accounts, "
          f"{args.partitions} partitions", flush=True)

    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        # --- full pipeline ---------------------------------------------------------
        settings = Settings(kafka_url=broker.url, partitions=args.partitions, registry=reg,
                            data_dir=work / "pipe", sqlite_path=work / "pipe" / "store.sqlite",
                            app_id="bench-pipeline", topic_prefix="bench")
        ensure_topics(broker.bootstrap, pipeline_topics(settings), args.partitions)
        feeder = Feeder(settings, broker.url)
        for line in lines:
            feeder.send_raw(line, replay=True)
        feeder.close()
        w = WorkerProcess.start(settings, broker.url, work / "pipe" / "worker.log")
        try:
            secs = timed_drain(broker.bootstrap, settings.app_id, pipeline_topics(settings),
                               args.partitions, len(lines), w.alive, args.timeout)
        finally:
            w.stop()
        pipe_rate = len(lines) / secs
        print(f"full pipeline: {len(lines):,} events in {secs:.1f}s = {pipe_rate:,.0f} events/s",
              flush=True)

        # --- bare Faust consume→produce ------------------------------------------
        ensure_topics(broker.bootstrap, ["bare-src", "bare-dst"], args.partitions)
        from kafka import KafkaProducer

        prod = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20,
                             max_request_size=5 * 1024 * 1024)
        for line in lines:
            prod.send("bare-src", value=line)
        prod.flush()
        prod.close()
        env = {**os.environ, "BARE_KAFKA_URL": broker.url,
               "BARE_PARTITIONS": str(args.partitions), "BARE_DATADIR": str(work / "bare")}
        with open(work / "bare.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, str(HERE / "bare_faust.py"), "worker",
                                     "-l", "warn"], stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
        try:
            secs_bare = timed_drain(broker.bootstrap, "bare-bench", ["bare-src"],
                                    args.partitions, len(lines), lambda: proc.poll() is None,
                                    args.timeout)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        bare_rate = len(lines) / secs_bare
        print(f"bare Faust consume→produce: {len(lines):,} in {secs_bare:.1f}s = "
              f"{bare_rate:,.0f} events/s")
        print(f"ratio full/bare: {pipe_rate / bare_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
