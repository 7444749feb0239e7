"""Load benchmark: the full pipeline against the bare Faust ceiling, same broker, same run.

    python bench/pipeline_bench.py --events 1000000 --matrix 10k          # issue #9 load run
    python bench/pipeline_bench.py --events 120000 --rate 1000 --realtime --no-bare  # #5
    python bench/pipeline_bench.py --events 20000                           # quick look
    python bench/pipeline_bench.py --events 1000000 --matrix 10k --no-bare --restart 2000

Simulated Weibo objects go to mw-raw in live mode (each message's collection time is the
moment it was produced). With ``--rate 0`` (the default) all of them are produced first and
a worker then drains the backlog: events/s is then the pipeline's capacity, and latency is
mostly time spent in the backlog. With ``--rate R`` a worker runs while the feed is paced
at R events/s: latency is then what a duty officer would see at that load.

Prints events/s (first committed progress → drained), p50/p99 event-to-store,
event-to-alert (stored) and event-to-notification latency (the worker's histogram, plus
exact figures from a local webhook receiver that every alert is routed to), consumer lag
over time, peak RSS per process, and the bare Faust consume→produce rate on the same lines
and broker with the ratio between the two.

Uncompressed, the bare ceiling was latency-bound and rose with worker processes (300k lines
of the 10k-account feed, 4 partitions: 5,126 / 7,134 / 7,874 / 11,350 events/s with 1 / 2 /
3 / 4 workers). With the pipeline's codec (zstd by default; the bare agent and its input
use it too) the broker answers sooner and the bare agent is nearly CPU-bound: 10,483 /
10,844 events/s with 2 / 4 workers on 300k lines, 12,979 / 15,758 on 1M. The pipeline is
CPU-bound either way. So besides the ratio at the same worker count, the bare agent also
runs with one worker per partition (``--bare-workers``), and the ratio to that best ceiling
is printed too. So is the CPU each costs per event (workers and broker): the one figure of
the two that does not depend on how latency-bound a run is.

``--restart N`` then crashes the drained pipeline (kill -9 every worker), feeds N new
events and starts the workers again: every table is recovered from its changelog before
they flow, so the time until the first of them is stored is how long alerting would be
dark after a crash at that state size. It prints that time, Faust's own recovery time
from the workers' logs, the changelog records there are to read, the restarted workers'
peak RSS, and whether the store holds every event exactly once afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from matrixwatch.broker import (
    EmbeddedBroker,
    ensure_topics,
    proc_status_kib,
    true_end_offsets,
)
from matrixwatch.collectors.simulator import (
    TZ,
    JsonlEncoder,
    Matrix,
    Simulator,
    build_matrix,
    write_registry,
)
from matrixwatch.pipeline import (
    FEEDER_BATCH_BYTES,
    Feeder,
    LagProbe,
    WorkerProcess,
    group_lag,
    pipeline_topics,
)
from matrixwatch.settings import Settings

HERE = Path(__file__).resolve().parent
MATRICES: dict[str, dict[str, int]] = {
    "default": {},  # 211 accounts
    "10k": {"cities": 110, "counties_per_city": 50, "departments_per_city": 5},  # 10,239
}


# --- measuring ---------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, MB."""
    kib = proc_status_kib(pid, "VmHWM")
    return float("nan") if kib is None else kib / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads), s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per process over a run: where the machine's cores went (the workers,
    the broker, and this process's feeding, lag probes and webhook receiver)."""

    def __init__(self, procs: dict[str, list[int]]) -> None:
        self.procs = procs
        self.t0 = time.monotonic()
        self.start = {name: [cpu_seconds(p) for p in pids] for name, pids in procs.items()}

    def used(self) -> dict[str, float]:
        """CPU seconds each group of processes used since the start."""
        return {name: sum(cpu_seconds(p) - s for p, s in zip(pids, self.start[name],
                                                              strict=True))
                for name, pids in self.procs.items()}

    def report(self, events: int) -> tuple[str, float]:
        """The table, and the workers' and broker's CPU per event (µs): what a pipeline
        costs the machine, which a latency-bound run's events/s does not show."""
        wall = time.monotonic() - self.t0
        used = self.used()
        rows = [f"  {name:<24} {u:8.1f} s  ({u / wall:5.0%} of one core, "
                f"{u / events * 1e6:5.0f} µs per event)" for name, u in used.items()]
        per_event = (used["workers"] + used.get("broker", 0.0)) / events * 1e6
        return (f"CPU time per process over the run ({wall:.0f} s wall, "
                f"{os.cpu_count()} cores):\n" + "\n".join(rows)), per_event


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def scraped_samples(texts: list[str]) -> list[Sample]:
    """Every sample of the workers' /metrics pages, parsed once for all the figures."""
    return [s for text in texts for fam in text_string_to_metric_families(text)
            for s in fam.samples]


def histogram_quantiles(samples: list[Sample], name: str, stage: str
                        ) -> tuple[int, float, float]:
    """(count, p50, p99) of one stage of a Prometheus histogram summed over workers,
    interpolated within buckets."""
    counts: dict[float, float] = {}
    for s in samples:
        if s.name == f"{name}_bucket" and s.labels.get("stage") == stage:
            le = float(s.labels["le"])
            counts[le] = counts.get(le, 0.0) + s.value
    buckets = sorted(counts.items())
    total = buckets[-1][1] if buckets else 0.0

    def q(p: float) -> float:
        rank, prev_le, prev_n = p * total, 0.0, 0.0
        for le, n in buckets:
            if n >= rank:
                if le == float("inf"):
                    return prev_le
                return prev_le + (le - prev_le) * ((rank - prev_n) / max(n - prev_n, 1e-9))
            prev_le, prev_n = le, n
        return float("nan")

    return int(total), (q(0.50) if total else float("nan")), (q(0.99) if total else float("nan"))


def changelog_bytes(samples: list[Sample]) -> dict[str, float]:
    """Bytes written per write-behind table (key + value), summed over the workers."""
    out: dict[str, float] = {}
    for s in samples:
        if s.name == "matrixwatch_changelog_bytes_total":
            out[s.labels["table"]] = out.get(s.labels["table"], 0.0) + s.value
    return out


def kafka_messages(samples: list[Sample]) -> dict[str, tuple[float, float]]:
    """Per topic (received, sent) by the workers, from Faust's own counters and the
    write-behind tables' changelog counter (those records bypass Faust's send path)."""
    out: dict[str, list[float]] = {}
    for s in samples:
        if s.name == "faust_messages_received_per_topic_total":
            out.setdefault(s.labels["topic"], [0.0, 0.0])[0] += s.value
        elif s.name == "faust_topic_messages_sent_total":
            topic = s.labels["topic"].removeprefix("topic.")
            out.setdefault(topic, [0.0, 0.0])[1] += s.value
        elif s.name == "matrixwatch_changelog_records_total":  # write-behind
            topic = f"{s.labels['table']}-changelog (write-behind)"
            out.setdefault(topic, [0.0, 0.0])[1] += s.value
    return {t: (r, w) for t, (r, w) in out.items()}


def alert_decisions(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Per rule, the dispatcher's decisions by outcome (new, realert, duplicate…), summed
    over the workers: every alert the engine emits crosses mw-alerts and is decided,
    stored or not."""
    out: dict[str, dict[str, float]] = {}
    for s in samples:
        if s.name == "matrixwatch_alert_decisions_total":
            row = out.setdefault(s.labels["rule"], {})
            row[s.labels["outcome"]] = row.get(s.labels["outcome"], 0.0) + s.value
    return out


class LagSampler(threading.Thread):
    """Total consumer lag of a group every ``every`` seconds, in the background."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], partitions: int,
                 every: float) -> None:
        super().__init__(daemon=True)
        self.args = (bootstrap, group, topics, partitions)
        self.every = every
        self.samples: list[tuple[float, int, int]] = []
        self.unstored: Callable[[], int] | None = None  # events produced, not yet stored
        self.stop_flag = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        self.t0 = time.monotonic()  # t=0 is when the worker starts draining
        while not self.stop_flag.wait(self.every):
            try:
                lag = sum(group_lag(*self.args).values())
                unstored = self.unstored() if self.unstored else -1
                self.samples.append((time.monotonic() - self.t0, lag, unstored))
            except Exception:  # a probe during a rebalance; the next sample will do
                continue

    def table(self, rows: int = 24) -> str:
        step = max(1, len(self.samples) // rows)
        picked = self.samples[::step]
        if self.samples and picked[-1] != self.samples[-1]:
            picked.append(self.samples[-1])
        return "\n".join(f"  t={t:7.1f}s  broker lag={n:>9,}  not yet stored={u:>9,}"
                         for t, n, u in picked)


class HookReceiver:
    """A local webhook endpoint: arrival time and ``observed_at`` of every alert."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str | None, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the chat platforms' endpoints are: with HTTP/1.0 every
            # delivery paid a TCP connect (4 % of the worker's CPU).
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                try:
                    alert = json.loads(body).get("alert") or {}
                    outer.arrivals.append((now, alert.get("observed_at"), alert.get("rule", "")))
                finally:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def latencies(self) -> list[float]:
        return sorted(now - datetime.fromisoformat(obs).timestamp()
                      for now, obs, _ in self.arrivals if obs)

    def close(self) -> None:
        self.server.shutdown()


def timed_drain(bootstrap: str, group: str, topics: list[str], partitions: int, total: int,
                alive: Callable[[], bool], timeout: float,
                done: Callable[[], bool] | None = None) -> float:
    """Seconds from the first committed progress to drained.

    Drained = zero lag twice in a row, confirmed by a fetch from the committed offsets
    (Tansu's ListOffsets under-reports end offsets: on a 1M-record backlog lag read 0
    with 720k records unprocessed) and by ``done`` (the pipeline: every event stored).
    """
    probe = LagProbe(bootstrap)
    start: float | None = None
    zero = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("worker died")
            current = group_lag(bootstrap, group, topics, partitions)
            now = time.monotonic()
            if start is None and current[topics[0]] < total:
                start = now
            zero = zero + 1 if sum(current.values()) == 0 else 0
            if zero >= 2 and start is not None:
                if (done is None or done()) and not probe.has_pending(group, topics,
                                                                      partitions):
                    return time.monotonic() - start
                zero = 0
            time.sleep(0.25)
    finally:
        probe.close()
    raise TimeoutError(f"not drained in {timeout}s")


def stored_events(db: Path) -> int:
    """Events in the SQLite store (the worker writes it in WAL mode; reading is safe)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("select count(*) from events").fetchone()[0])
    except sqlite3.Error:
        return 0


# --- feeding -----------------------------------------------------------------------------


def simulated_lines(matrix: Matrix, n: int) -> Iterator[bytes]:
    """``n`` native objects; event time starts far enough back that the feed never runs
    into the future, where the normalizer would refuse them (measured: ~8k events per
    simulated day on the 211-account matrix, ~130k on the 10k one)."""
    days = 2 + n // (8 * len(matrix.accounts))
    start = (datetime.now(tz=TZ) - timedelta(days=days)).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
    enc = JsonlEncoder()
    for obj in Simulator(matrix, start=start).events(n):
        yield enc.encode(obj).encode()


def realtime_lines(matrix: Matrix, n: int, rate: float) -> Iterator[bytes]:
    """``n`` native objects whose event time runs with the wall clock at about ``rate``/s.

    The plain simulated feed compresses weeks into minutes, so paced at 1,000/s its
    time-driven rules (stale accounts, linkage deadlines) fire as if weeks passed, a
    notification storm no duty officer would see. Here the simulator starts now and its
    activity is scaled so that ``n`` events span ``n / rate`` seconds of event time: a
    very busy hour, at the same pace as the feed. The scale is calibrated on a dry run of
    the same window, since event volume is proportional to activity.
    """
    window = timedelta(seconds=n / rate)
    now = datetime.now(tz=TZ)
    cal = 1000.0 * 10_239 / len(matrix.accounts)
    count = sum(1 for _ in Simulator(matrix, start=now, activity=cal).events(
        until=now + window))
    activity = cal * n / max(count, 1)
    print(f"  real-time feed: activity ×{activity:,.0f} ({count:,} events in "
          f"{window.total_seconds():.0f}s at ×{cal:,.0f})", flush=True)
    enc = JsonlEncoder()
    for obj in Simulator(matrix, start=datetime.now(tz=TZ), activity=activity).events(n):
        yield enc.encode(obj).encode()


def feed(feeder: Feeder, lines: Iterator[bytes], rate: float, also: Callable[[bytes], None]
         | None = None) -> int:
    """Produce every line with its collection time; paced at ``rate``/s when rate > 0."""
    n, t0 = 0, time.monotonic()
    for line in lines:
        feeder.send_raw(line, as_of=datetime.now(tz=UTC).isoformat())
        if also is not None:
            also(line)
        n += 1
        if rate > 0 and n % 50 == 0:
            ahead = t0 + n / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        if n % 100_000 == 0:
            print(f"  produced {n:,} ({n / (time.monotonic() - t0):,.0f}/s)", flush=True)
    feeder.flush()
    return n


# --- the runs ----------------------------------------------------------------------------


def cpu_meter(broker: EmbeddedBroker, worker_pids: list[int]) -> CpuMeter:
    """The meter both runs use: their workers, the broker and this process."""
    return CpuMeter({"workers": worker_pids,
                     "broker": [broker.proc.pid] if broker.proc else [],
                     "bench (this process)": [os.getpid()]})


def run_pipeline(args: argparse.Namespace, broker: EmbeddedBroker, work: Path, matrix: Matrix,
                 bare_producer: object | None) -> dict[str, float]:
    reg = work / "matrix.yaml"
    write_registry(reg, matrix)
    settings = Settings(kafka_url=broker.url, partitions=args.partitions, registry=reg,
                        data_dir=work / "pipe", sqlite_path=work / "pipe" / "store.sqlite",
                        app_id="bench-pipeline", topic_prefix="bench")
    topics = pipeline_topics(settings)
    ensure_topics(broker.bootstrap, topics, args.partitions)
    hook = HookReceiver()
    feeder = Feeder(settings, broker.url)
    also = None
    if bare_producer is not None:
        sent = [0]

        def also(line: bytes) -> None:
            bare_producer.send("bare-src", value=line)  # type: ignore[attr-defined]
            sent[0] += 1
            if sent[0] % 20_000 == 0:  # bounded, as the Feeder is: expired records are lost
                bare_producer.flush()  # type: ignore[attr-defined]

    workers: list[WorkerProcess] = []

    def start_workers(tag: str = "") -> None:
        for i in range(args.workers):
            workers.append(WorkerProcess.start(
                settings, broker.url, work / "pipe" / f"worker{i}{tag}.log",
                MW_ALERT_WEBHOOK_URL=hook.url, MW_ALERT_WEBHOOK_SECRET="bench-only-secret"))

    def alive() -> bool:
        return all(w.alive() for w in workers)

    sampler = LagSampler(broker.bootstrap, settings.app_id, topics, args.partitions,
                         args.sample)
    # The --restart events are the feed's continuation, fed only after the crash.
    lines = (realtime_lines(matrix, args.events, args.rate) if args.realtime
             else simulated_lines(matrix, args.events + args.restart))
    sampler.unstored = lambda: args.events - stored_events(settings.sqlite_path)
    out: dict[str, float] = {}
    if args.rate <= 0:
        t = time.monotonic()
        n = feed(feeder, itertools.islice(lines, args.events), 0, also)
        print(f"preloaded {n:,} events in {time.monotonic() - t:.0f}s", flush=True)
        start_workers()
        meter = cpu_meter(broker, [w.proc.pid for w in workers])
        sampler.start()
        secs = timed_drain(broker.bootstrap, settings.app_id, topics, args.partitions, n,
                           alive, args.timeout,
                           done=lambda: stored_events(settings.sqlite_path) >= n)
    else:
        start_workers()
        meter = cpu_meter(broker, [w.proc.pid for w in workers])
        warm = simulated_lines(build_matrix(seed=99), 200)
        feed(feeder, warm, 0)  # a worker that has joined and drained before the clock
        timed_drain(broker.bootstrap, settings.app_id, topics, args.partitions, 200,
                    alive, 300)
        # Generated before the clock starts: simulating and encoding on the feeding
        # thread starved the producer's I/O thread of the GIL, and records waited in
        # its buffer (measured: events reached the worker 1.5-2.9 s after send()).
        t = time.monotonic()
        lines = iter(list(lines))
        print(f"  generated {args.events:,} lines in {time.monotonic() - t:.0f}s", flush=True)
        sampler.start()
        t = time.monotonic()
        n = feed(feeder, lines, args.rate, also)
        while (sum(group_lag(broker.bootstrap, settings.app_id, topics,
                             args.partitions).values()) > 0
               or stored_events(settings.sqlite_path) < n):
            if not alive():
                raise RuntimeError("worker died")
            time.sleep(0.25)
        secs = time.monotonic() - t
    time.sleep(2)  # the last notifications
    sampler.stop_flag.set()
    metrics: list[str] = []
    for w in workers:
        try:
            metrics.append(urllib.request.urlopen(f"http://127.0.0.1:{w.web_port}/metrics",
                                                  timeout=10).read().decode())
        except OSError as e:
            print(f"  (no /metrics: {e})")
    out["worker_rss"] = max(peak_rss_mb(w.proc.pid) for w in workers)
    cpu, out["cpu_us"] = meter.report(n)
    restart = (crash_and_recover(args, broker, settings, feeder, lines, n, workers,
                                 start_workers) if args.restart else "")
    for w in workers:
        w.stop()
    feeder.close()
    hook.close()
    out["rate"] = n / secs
    how = f"paced at {args.rate:,.0f}/s" if args.rate > 0 else "backlog drained"
    print(f"\nfull pipeline: {n:,} events in {secs:.1f}s = {out['rate']:,.0f} events/s ({how})")
    print("latency from collection (worker histogram, interpolated within buckets, so "
          "coarse above 60 s):")
    scraped = scraped_samples(metrics)
    for stage, label in (("store", "event → store"), ("alert", "event → alert stored"),
                         ("notify", "event → notification sent")):
        c, p50, p99 = histogram_quantiles(scraped, "matrixwatch_end_to_end_seconds", stage)
        print(f"  {label:<27} n={c:>9,}  p50={p50:8.2f}s  p99={p99:8.2f}s")
    lat = hook.latencies()
    print(f"  {'event → webhook received':<27} n={len(lat):>9,}  p50={quantile(lat, .5):8.2f}s"
          f"  p99={quantile(lat, .99):8.2f}s  (exact, local receiver; "
          f"{len(hook.arrivals):,} deliveries incl. time-driven and digests)")
    if decisions := alert_decisions(scraped):
        print("alert decisions per 1,000 input events, by rule (dispatcher outcome):")
        for rule, row in sorted(decisions.items(), key=lambda kv: -sum(kv[1].values())):
            parts = ", ".join(f"{o} {1000 * v / n:.2f}" for o, v in sorted(row.items()))
            print(f"  {rule:<22} {1000 * sum(row.values()) / n:7.2f}  ({parts})")
    msgs = kafka_messages(scraped)
    if msgs:
        print("Kafka messages per input event, received / sent by the workers "
              "(Faust's counters):")
        for topic, (r, w) in sorted(msgs.items()):
            print(f"  {topic:<40} {r / n:6.3f} / {w / n:6.3f}")
        print(f"  {'all':<40} {sum(r for r, _ in msgs.values()) / n:6.3f} / "
              f"{sum(w for _, w in msgs.values()) / n:6.3f}")
    if sizes := changelog_bytes(scraped):
        print("changelog bytes per input event (key + value): " + ", ".join(
            f"{table} {b / n:,.0f}" for table, b in sorted(sizes.items())))
    print(f"consumer lag over time, every {args.sample:g}s (broker lag: all pipeline topics, "
          "from ListOffsets, which Tansu under-reports on big backlogs; not yet stored: "
          "input events minus events in the store):")
    print(sampler.table())
    print(cpu)
    print(restart, end="")
    return out


def changelog_records(bootstrap: str, app_id: str) -> dict[str, int]:
    """Records in each changelog topic of ``app_id``: what a recovery reads (Tansu does
    not compact them)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="mw-bench-changelogs")
    try:
        tps = [TopicPartition(t, p) for t in sorted(consumer.topics())
               if t.startswith(f"{app_id}-") and t.endswith("-changelog")
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = true_end_offsets(bootstrap, consumer.end_offsets(tps)) if tps else {}
    finally:
        consumer.close()
    out: dict[str, int] = {}
    for tp, end in ends.items():
        name = tp.topic.removeprefix(f"{app_id}-")
        out[name] = out.get(name, 0) + end
    return out


def faust_recovery_seconds(log: Path) -> float:
    """Seconds a worker spent reading changelogs, from Faust's recovery log lines
    ("Restoring state from changelog topics..." → "Done reading from changelog topics"),
    summed over its rebalances."""
    def stamp(line: str) -> datetime:  # "[2026-12-05 23:32:22,542] [pid] [INFO] ..."
        return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")

    total, began = 0.0, None
    for line in log.read_text(errors="replace").splitlines():
        if "Restoring state from changelog topics" in line:
            began = stamp(line)
        elif "Done reading from changelog topics" in line and began is not None:
            total += (stamp(line) - began).total_seconds()
            began = None
    return total


def crash_and_recover(args: argparse.Namespace, broker: EmbeddedBroker, settings: Settings,
                      feeder: Feeder, lines: Iterator[bytes], stored_before: int,
                      workers: list[WorkerProcess], start_workers: Callable[[str], None]
                      ) -> str:
    """kill -9 every worker of the drained pipeline, feed ``args.restart`` new events and
    start the workers again; the report of how long alerting stayed dark."""
    assert settings.sqlite_path is not None
    records = changelog_records(broker.bootstrap, settings.app_id)
    for w in workers:
        w.kill()
    workers.clear()
    probe = feed(feeder, lines, 0)
    expected = stored_before + probe
    t0 = time.monotonic()
    start_workers("-restart")
    meter = cpu_meter(broker, [w.proc.pid for w in workers])
    first, dark_cpu = None, meter.used()
    while (stored := stored_events(settings.sqlite_path)) < expected:
        now = time.monotonic()
        if first is None and stored > stored_before:
            first, dark_cpu = now - t0, meter.used()
        if not all(w.alive() for w in workers):
            raise RuntimeError("a restarted worker died:\n" + workers[0].tail())
        if now - t0 > args.timeout:
            raise TimeoutError(f"{expected - stored:,} events not stored after the restart")
        time.sleep(0.1)
    done = time.monotonic() - t0
    if first is None:
        first, dark_cpu = done, meter.used()
    time.sleep(1)  # a last look: nothing more may arrive
    final = stored_events(settings.sqlite_path)
    rss = max(peak_rss_mb(w.proc.pid) for w in workers)
    restore = max(faust_recovery_seconds(w.log_path) for w in workers)
    return (
        f"\ncrash and restart (kill -9 of all {len(workers)} workers, {probe:,} new events "
        f"fed while they were down):\n"
        f"  changelog records to recover: " + ", ".join(
            f"{t} {c:,}" for t, c in sorted(records.items())) + "\n"
        f"  restart -> first new event stored  {first:7.1f} s\n"
        f"  restart -> all {probe:,} stored{'':<9}{done:7.1f} s\n"
        f"  Faust reading changelogs           {restore:7.1f} s  (slowest worker)\n"
        f"  CPU until the first was stored     " + ", ".join(
            f"{k} {v:.1f} s" for k, v in dark_cpu.items()) + "\n"
        f"  peak RSS of a restarted worker     {rss:7.0f} MB\n"
        f"  store: {final:,} events, expected {expected:,}"
        f" ({'exact' if final == expected else 'MISMATCH'})\n")


def run_bare(args: argparse.Namespace, broker: EmbeddedBroker, work: Path,
             n: int, stock: bool = False, workers: int | None = None) -> dict[str, float]:
    """The bare ceiling, with the pipeline's Faust patch (fastpath) unless ``stock``, on
    ``workers`` processes (default: as many as the pipeline's)."""
    workers = workers or args.workers
    group = ("bare-stock" if stock else "bare-bench") + (
        "" if workers == args.workers else f"-{workers}w")
    pipeline = Settings()  # the workers' loop (MW_EVENT_LOOP) and codec (MW_COMPRESSION)
    env = {**os.environ, "BARE_KAFKA_URL": broker.url, "BARE_APP_ID": group,
           "BARE_STOCK": "1" if stock else "0", "BARE_PARTITIONS": str(args.partitions),
           "BARE_LOOP": pipeline.event_loop, "BARE_COMPRESSION": pipeline.compression}
    procs = []
    for i in range(workers):
        with open(work / f"{group}{i}.log", "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(HERE / "bare_faust.py"), "worker", "-l", "warn",
                 "--without-web"],  # else the second worker fails to bind 6066
                stdout=log, stderr=subprocess.STDOUT,
                env={**env, "BARE_DATADIR": str(work / f"{group}{i}")}))
    meter = cpu_meter(broker, [p.pid for p in procs])
    try:
        secs = timed_drain(broker.bootstrap, group, ["bare-src"], args.partitions, n,
                           lambda: all(p.poll() is None for p in procs), args.timeout)
        rss = max(peak_rss_mb(p.pid) for p in procs)
        cpu, cpu_us = meter.report(n)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
    rate = n / secs
    what = "stock Faust" if stock else "Faust with the pipeline's fastpath patch"
    print(f"\nbare Faust consume→produce ({what}, {workers} worker(s)): {n:,} in "
          f"{secs:.1f}s = {rate:,.0f} events/s")
    print(cpu)
    return {"rate": rate, "rss": rss, "cpu_us": cpu_us}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--matrix", choices=sorted(MATRICES), default="default")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="Paced feed, events/s (0: preload, then drain the backlog).")
    ap.add_argument("--realtime", action="store_true",
                    help="With --rate: event time runs with the wall clock (see "
                         "realtime_lines) instead of weeks compressed into minutes.")
    ap.add_argument("--no-bare", action="store_true", help="Skip the bare Faust run.")
    ap.add_argument("--stock-bare", action="store_true",
                    help="Also run the bare ceiling on stock Faust (without the fastpath "
                         "patch the pipeline and the default bare run use).")
    ap.add_argument("--workers", type=int, default=1,
                    help="Worker processes, for the pipeline and for the bare ceiling alike.")
    ap.add_argument("--bare-workers", type=int, default=None,
                    help="Also run the bare ceiling on this many workers (default: one per "
                         "partition; 0: skip).")
    ap.add_argument("--restart", type=int, default=0, metavar="N",
                    help="After the drain, kill -9 the workers, feed N new events and time "
                         "the restart until they are stored (backlog mode only).")
    ap.add_argument("--sample", type=float, default=10.0, help="Lag sampling period, s.")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    if args.realtime and args.rate <= 0:
        ap.error("--realtime needs --rate")
    if args.restart and args.rate > 0:
        ap.error("--restart needs the backlog mode (--rate 0)")
    if args.bare_workers is None:
        args.bare_workers = args.partitions
    work = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    matrix = build_matrix(**MATRICES[args.matrix])
    print(f"{args.events:,} simulated objects, {len(matrix.accounts):,} accounts, "
          f"{args.partitions} partitions, {args.workers} worker(s), work dir {work}", flush=True)

    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        bare_producer = None
        if not args.no_bare:
            from kafka import KafkaProducer

            ensure_topics(broker.bootstrap, ["bare-src", "bare-dst"], args.partitions)
            bare_producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20,
                                          batch_size=FEEDER_BATCH_BYTES,  # as the Feeder
                                          max_request_size=5 * 1024 * 1024,
                                          compression_type=Settings().compression_type)
        pipe = run_pipeline(args, broker, work, matrix, bare_producer)
        bare: dict[str, float] = {}
        if bare_producer is not None:
            bare_producer.flush()
            bare_producer.close()
            bare = run_bare(args, broker, work, args.events)
            if args.bare_workers and args.bare_workers != args.workers:
                best = run_bare(args, broker, work, args.events, workers=args.bare_workers)
                bare["best"], bare["best_cpu_us"] = best["rate"], best["cpu_us"]
            if args.stock_bare:
                bare["stock"] = run_bare(args, broker, work, args.events, stock=True)["rate"]
        broker_rss = peak_rss_mb(broker.proc.pid) if broker.proc else float("nan")
    print("\npeak RSS per process:")
    print(f"  worker (full pipeline)  {pipe['worker_rss']:8.0f} MB  (largest of {args.workers})")
    if bare:
        print(f"  worker (bare Faust)     {bare['rss']:8.0f} MB")
    held = ("every topic in memory, the bare runs' input and output included: --no-bare "
            "for the pipeline's own" if bare else "every topic in memory")
    print(f"  broker (tansu, memory)  {broker_rss:8.0f} MB  (holds {held})")
    print(f"  this bench process      "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MB")
    if bare:
        print(f"\nratio full/bare: {pipe['rate'] / bare['rate']:.2f}  (same worker count)")
    if "best" in bare:
        print(f"ratio full/bare with {args.bare_workers} bare workers: "
              f"{pipe['rate'] / bare['best']:.2f}")
    if "stock" in bare:
        print(f"ratio full/bare on stock Faust: {pipe['rate'] / bare['stock']:.2f}")
    if bare:
        print(f"CPU per event, workers + broker: full {pipe['cpu_us']:,.0f} µs, bare "
              f"{bare['cpu_us']:,.0f} µs (ratio {bare['cpu_us'] / pipe['cpu_us']:.2f})"
              + (f", bare with {args.bare_workers} workers {bare['best_cpu_us']:,.0f} µs "
                 f"(ratio {bare['best_cpu_us'] / pipe['cpu_us']:.2f})"
                 if "best_cpu_us" in bare else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
