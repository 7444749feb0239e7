"""A ReplaySession-like harness for fault tests: one embedded broker, any number of
workers on the same consumer group, a feeder and one fresh SQLite store.

``ReplaySession`` owns exactly one worker; the fault tests need several (to watch a
killed member's partitions move), per-worker environments (secrets, an ES URL) and
direct access to the group's assignment, so they get their own small harness built
from the same pieces (``WorkerProcess``, ``Feeder``, ``wait_drained``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrixwatch.broker import EmbeddedBroker, free_port
from matrixwatch.pipeline import (
    Feeder,
    WorkerProcess,
    close_probes,
    pipeline_topics,
    prepare_topics,
    wait_drained,
    worker_env,
)
from matrixwatch.settings import Settings
from matrixwatch.streams.app import END_OF_INPUT

AS_OF = "2026-12-31T00:00:00+08:00"

# Variables that would point a worker at something other than this harness's broker
# and store, or enable outbound notifications: never inherited from the caller's env.
_SCRUBBED = ("MW_ES_URL", "MW_ES_USERNAME", "MW_ES_PASSWORD", "MW_ALERT_CHANNELS",
             "MW_KAFKA_URL", "MW_RULES_DIR", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
             "http_proxy", "https_proxy", "all_proxy")


def wait_for(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> float:
    """Poll ``cond`` until true; return the seconds it took, or fail naming ``what``."""
    started = time.monotonic()
    while not cond():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(poll)
    return time.monotonic() - started


def read_log(path: Path, start: int = 0) -> str:
    """A log file from byte ``start`` on ("" if it does not exist yet)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


_ASSIGNED = "Setting newly assigned partitions"
_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*\{([^}]*)\}\s*\|", re.M)


def _partitions(spec: str) -> set[int]:
    """Faust's compact partition sets: "0-3", "0, 2", "1-2, 5"."""
    out: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        elif part:
            out.add(int(part))
    return out


def last_assignment(log: str, topics: set[str]) -> set[tuple[str, int]]:
    """The partitions of ``topics`` in the last assignment table of a Faust worker log."""
    at = log.rfind(_ASSIGNED)
    if at < 0:
        return set()
    table = log[at:]
    end = table.find("for group")
    table = table[: end if end >= 0 else len(table)]
    return {(t, p) for t, spec in _ROW.findall(table) if t in topics for p in _partitions(spec)}


class Cluster:
    """Broker + workers (one group) + feeder + store, all under ``root``."""

    def __init__(self, root: Path, registry: Path, *, partitions: int = 4,
                 env: dict[str, str] | None = None, **settings: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.store_path = root / "store.sqlite"
        # Commits every second rather than every five: more commits (and changelog
        # flushes) per test, and the tests' waits for committed progress stay short.
        settings.setdefault("broker_commit_interval", 1.0)
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            partitions=partitions, registry=registry, sqlite_path=self.store_path,
            es_url=None, kafka_url=None, data_dir=root / "work", **settings,
        )
        self.env = dict(env or {})
        self.workers: dict[str, WorkerProcess] = {}
        self.lines = 0
        self._saved_env: dict[str, str] = {}
        self._log_start: dict[str, int] = {}  # a restarted worker appends to its log

    # --- lifecycle ----------------------------------------------------------------
    def __enter__(self) -> Cluster:
        for k in _SCRUBBED:  # WorkerProcess copies os.environ: keep the workers hermetic
            if k in os.environ:
                self._saved_env[k] = os.environ.pop(k)
        self.broker = EmbeddedBroker(log_path=self.root / "broker.log").start()
        self.url = self.broker.url
        prepare_topics(self.settings, self.url)
        self.feeder = Feeder(self.settings, self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            with contextlib.suppress(Exception):
                self.feeder.close()
            for w in self.workers.values():
                w.stop(timeout=20)
            close_probes()
        finally:
            self.broker.stop()
            os.environ.update(self._saved_env)

    def start_worker(self, name: str, *, loglevel: str | None = None,
                     **env: str) -> WorkerProcess:
        """A worker with its own Faust data dir and log file, on the shared group."""
        data_dir = self.root / "work" / name
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.root / f"{name}.log"
        self._log_start[name] = log_path.stat().st_size if log_path.exists() else 0
        extra = {**self.env, **env, "MW_DATA_DIR": str(data_dir)}
        if loglevel is None:
            w = WorkerProcess.start(self.settings, self.url, log_path, **extra)
        else:  # WorkerProcess.start has no log level; same command with --loglevel
            port = free_port()
            full = worker_env(self.settings, self.url, MW_WEB_PORT=str(port), **extra)
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "matrixwatch", "worker", "--loglevel", loglevel],
                    stdout=out, stderr=subprocess.STDOUT, env=full, start_new_session=True)
            w = WorkerProcess(proc, log_path, port)
        self.workers[name] = w
        return w

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.alive()]

    def log(self, name: str) -> str:
        """What the current process named ``name`` has logged so far."""
        return read_log(self.workers[name].log_path, self._log_start.get(name, 0))

    def wait_ready(self, name: str, timeout: float = 60.0) -> float:
        """Seconds until the worker logged Faust's "Worker ready" (assignment done)."""
        w = self.workers[name]

        def ready() -> bool:
            if not w.alive():
                raise RuntimeError(f"worker {name} exited:\n{w.tail()}")
            return "[^Worker]: Ready" in self.log(name)

        return wait_for(ready, timeout, f"worker {name} ready")

    # --- input ----------------------------------------------------------------------
    def feed(self, lines: Iterable[bytes], as_of: str = AS_OF) -> int:
        n = 0
        for line in lines:
            self.feeder.send_raw(line, as_of=as_of, replay=True)
            n += 1
        self.feeder.flush()
        self.lines += n
        return n

    def send(self, line: bytes, partition: int, as_of: str = AS_OF) -> Any:
        """One raw line to an explicit mw-raw partition; returns the delivery future."""
        from matrixwatch.pipeline import owner_key
        from matrixwatch.streams.app import HEADER_AS_OF, HEADER_MODE

        self.lines += 1
        return self.feeder.producer.send(
            self.settings.topic("raw"), key=owner_key(line), value=line, partition=partition,
            headers=[(HEADER_AS_OF, as_of.encode()), (HEADER_MODE, b"replay")])

    def drain(self, timeout: float = 300.0, *, on_stall: Callable[[], None] | None = None,
              stall_after: float = 90.0) -> float:
        """Wait until the group has consumed everything; ``on_stall`` as in wait_drained."""
        started = time.monotonic()
        try:
            wait_drained(self.settings, self.url, lambda: bool(self.live()), timeout=timeout,
                         on_stall=on_stall, stall_after=stall_after)
        except (RuntimeError, TimeoutError) as e:
            tails = "\n".join(f"--- {n} ---\n{w.tail(40)}" for n, w in self.workers.items())
            raise RuntimeError(f"{e}\n{tails}") from e
        return time.monotonic() - started

    def finish(self, timeout: float = 300.0, **kw: Any) -> None:
        """Drain, close every linkage task with the end-of-input watermark, drain again."""
        self.drain(timeout, **kw)
        self.feeder.punctuate(END_OF_INPUT)
        self.drain(timeout, **kw)

    # --- the group and the store ------------------------------------------------------
    def members(self) -> list[str]:
        """Member ids the broker currently lists in the group (DescribeGroups).

        Tansu answers DescribeGroups with the members but an empty assignment, so who
        owns what is read from the workers' own logs (:meth:`assigned`).
        """
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.broker.bootstrap,
                                 client_id="mw-fault-probe")
        # Tansu sets authorized-operation bits kafka-python has no enum for.
        admin._process_acl_operations = lambda obj: obj  # type: ignore[method-assign]
        try:
            groups = admin.describe_groups([self.settings.app_id])
        finally:
            admin.close()
        return [m["member_id"] for g in groups.values() for m in g.get("members") or []]

    def assigned(self, name: str) -> set[tuple[str, int]]:
        """Pipeline-topic partitions the worker ``name`` last reported as assigned."""
        return last_assignment(self.log(name), set(pipeline_topics(self.settings)))

    def start_split(self, *names: str, timeout: float = 60.0) -> None:
        """Start the workers ``names`` one after another and wait until each has
        partitions and together they hold every pipeline partition."""
        for name in names:
            self.start_worker(name)
            self.wait_ready(name)
        every = len(pipeline_topics(self.settings)) * self.settings.partitions

        def split() -> bool:
            held = [self.assigned(name) for name in names]
            return all(held) and len(set().union(*held)) == every

        wait_for(split, timeout, "a split")

    def stop_all(self) -> None:
        """Stop every live worker and wait out their session, so that no member of
        theirs is left in the group when the next worker joins (Tansu stalls on a join
        that overlaps an eviction)."""
        for w in self.live():
            w.stop()
        time.sleep(self.settings.broker_session_timeout + 2.0)

    def outputs(self) -> Outputs:
        """What the store holds, in the shape the offline references have."""
        return Outputs(
            events=[e["id"] for e in self.rows("events")],
            tasks={t["post_id"]: {"expected": t["expected"], "linked": t["linked"],
                                  "rate": t["rate"]} for t in self.rows("linkage")},
            alerts={a["id"]: (a["rule"], a["severity"]) for a in self.rows("alerts")},
            letters=self.rows("dead_letters"),
        )

    def counts(self) -> dict[str, int]:
        if not self.store_path.exists():
            return {"events": 0, "alerts": 0, "linkage": 0, "dead_letters": 0}
        conn = sqlite3.connect(self.store_path, timeout=30)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            return {t: (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                        if t in tables else 0)
                    for t in ("events", "alerts", "linkage", "dead_letters")}
        finally:
            conn.close()

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every stored document of ``table`` (events, alerts, linkage, dead_letters)."""
        conn = sqlite3.connect(self.store_path, timeout=30)
        try:
            return [json.loads(d) for (d,) in conn.execute(f"SELECT doc FROM {table}")]
        finally:
            conn.close()


class Watchdog:
    """``on_stall`` for :meth:`Cluster.drain`, as ReplaySession's drain watchdog does it:
    stop every worker, wait out their session, start a fresh one (named ``prefix`` and
    a count). ``restarts`` holds the seconds since construction of each restart."""

    def __init__(self, cluster: Cluster, prefix: str = "r") -> None:
        self.cluster, self.prefix = cluster, prefix
        self.started = time.monotonic()
        self.restarts: list[float] = []

    def __call__(self) -> None:
        self.restarts.append(round(time.monotonic() - self.started, 1))
        self.cluster.stop_all()
        self.cluster.start_worker(f"{self.prefix}{len(self.restarts)}")

    def warn(self, what: str = "Tansu stalled the group") -> None:
        """A warning with the restarts, if there were any (the test still passes)."""
        if self.restarts:
            warnings.warn(f"{what}; {len(self.restarts)} watchdog restart(s) at "
                          f"{self.restarts} s", stacklevel=2)


@dataclass
class Outputs:
    events: list[str]  # stored event ids, duplicates included
    tasks: dict[str, dict[str, Any]]  # post id → {expected, linked, rate}
    alerts: dict[str, tuple[str, str]]  # alert id → (rule, severity)
    letters: list[dict[str, Any]]

    def assert_exact(self, registry: Path, lines: list[bytes]) -> None:
        """Nothing lost, duplicated or corrupted: each distinct valid input stored once,
        every linkage task and alert equal to the offline reference, nothing
        dead-lettered."""
        assert len(self.events) == len(set(self.events))
        assert set(self.events) == valid_ids(lines)
        assert self.letters == []
        assert self.tasks == reference_tasks(registry, lines)
        assert self.alerts == reference_alerts(registry, lines)


def simulated_feed(root: Path, events: int, seed: int = 3) -> tuple[Path, list[bytes]]:
    """A simulated province→city→county matrix (registry file) and its native feed."""
    from matrixwatch.collectors.simulator import Simulator, build_matrix, write_registry

    root.mkdir(parents=True, exist_ok=True)
    matrix = build_matrix(seed=seed)
    registry = root / "matrix.yaml"
    write_registry(registry, matrix)
    sim = Simulator(matrix, seed=seed, activity=3.0)
    lines = [json.dumps(o, ensure_ascii=False).encode() for o in sim.events(events)]
    return registry, lines


def distinct_events(lines: Iterable[bytes]) -> list[Any]:
    """The events the normalizer accepts, first occurrence of each id, in input order."""
    from datetime import datetime

    from matrixwatch.streams.normalize import InvalidInput, normalize_line

    now = datetime.fromisoformat(AS_OF)
    events, seen = [], set()
    for line in lines:
        try:
            e = normalize_line(line, collected_at=now)
        except InvalidInput:
            continue
        if e.id not in seen:
            seen.add(e.id)
            events.append(e)
    return events


def valid_ids(lines: Iterable[bytes]) -> set[str]:
    """Native ids of the lines the normalizer accepts: what the store must hold."""
    return {e.id for e in distinct_events(lines)}


def partition_of(key: bytes | None, partitions: int) -> int:
    """The partition kafka-python's default partitioner gives a keyed record."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions if key else 0


def reference_alerts(registry: Path, lines: Iterable[bytes]) -> dict[str, tuple[str, str]]:
    """Alert id → (rule, severity) that the offline rule run stores for ``lines``.

    ``matrixwatch rules test``'s engine over the distinct valid events in input order,
    scored by the same model; on the simulated feed it equals an uninterrupted stream
    run id for id (499 of 499 on 2000 events), so a fault run can be checked against it
    without a second pipeline run.
    """
    from matrixwatch.alerts.channels import ChannelConfig
    from matrixwatch.alerts.cli import run_rules
    from matrixwatch.alerts.rules import load_rules
    from matrixwatch.registry import Registry
    from matrixwatch.streams.sentiment import get_model

    events = distinct_events(lines)
    model = get_model("default")
    scored = [e.derive(sentiment=round(s.score, 4), sentiment_label=s.label)
              for e, s in zip(events, model.score_batch([e.text for e in events]), strict=True)]
    rows = run_rules(load_rules(), scored, Registry.load(registry), ChannelConfig.load(env={}))
    return {r["id"]: (r["rule"], r["severity"]) for r in rows if r["decision"]["store"]}


def reference_tasks(registry: Path, lines: Iterable[bytes]) -> dict[str, dict[str, Any]]:
    """post id → {expected, linked, rate}: the offline linkage reference."""
    from matrixwatch.registry import Registry
    from matrixwatch.streams.linkage import reference_linkage

    return reference_linkage(Registry.load(registry), distinct_events(lines))
