"""Driving the pipeline from outside the worker: start it, feed it, wait, export.

`replay` and `run` both go through the same path as production: raw lines are
produced to ``mw-raw`` on a Kafka-protocol broker and consumed by a Faust worker
process. "Drained" is read from the broker, not guessed: every partition of every
pipeline topic has a committed offset equal to its end offset. Faust flushes its
producer before it commits, so once the upstream offsets are committed the downstream
messages are already in their topics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from matrixwatch.broker import bootstrap_of, ensure_topics, free_port
from matrixwatch.settings import Settings

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
FEEDER_BATCH_BYTES = 1024 * 1024  # per partition; see Feeder
log = logging.getLogger(__name__)


def worker_env(settings: Settings, kafka_url: str, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess: the settings that must agree with ours."""
    env = dict(os.environ)
    env.update(
        MW_KAFKA_URL=kafka_url,
        MW_APP_ID=settings.app_id,
        MW_TOPIC_PREFIX=settings.topic_prefix,
        MW_PARTITIONS=str(settings.partitions),
        MW_DATA_DIR=str(settings.data_dir),
        MW_ALLOWED_LATENESS=str(settings.allowed_lateness),
        MW_SENTIMENT_MODEL=settings.sentiment_model,
        MW_BROKER_COMMIT_INTERVAL=str(settings.broker_commit_interval),
        MW_EVENT_LOOP=settings.event_loop,
    )
    if settings.sqlite_path:
        env["MW_SQLITE_PATH"] = str(settings.sqlite_path)
    if settings.registry:
        env["MW_REGISTRY"] = str(settings.registry)
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    """One `matrixwatch worker` subprocess with its own log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    web_port: int = 0

    @classmethod
    def start(
        cls, settings: Settings, kafka_url: str, log_path: Path, **extra: str
    ) -> WorkerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        port = int(extra.pop("MW_WEB_PORT", "") or free_port())
        env = worker_env(settings, kafka_url, MW_WEB_PORT=str(port), **extra)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "matrixwatch", "worker"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        return cls(proc, log_path, port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode or 0)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def owner_key(line: bytes) -> bytes | None:
    """Partition key for a raw line: the account the object is about, as the worker's
    tables key it (JSON string ``"platform:owner_id"``).

    Everything about one account then travels through one partition in input order,
    which keeps per-account state deterministic, and the worker can fold a raw line
    into that account's state without a repartition hop. Unparseable lines get no key
    (they only go to the DLQ); a wrong key only costs a hop, never correctness.
    """
    try:
        obj = orjson.loads(line)
        if isinstance(obj.get("owner_id"), str) and isinstance(obj.get("platform"), str):
            return orjson.dumps(f"{obj['platform']}:{obj['owner_id']}")  # normalized event
        if isinstance(obj.get("mblog"), dict) and "user" not in obj:
            obj = obj["mblog"]
        for holder in (obj.get("retweeted_status"), obj.get("status"), obj):
            user = holder.get("user") if isinstance(holder, dict) else None
            if isinstance(user, dict) and user.get("id") is not None:
                return orjson.dumps(f"weibo:{user['id']}")
        return None
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None


class Interrupted(Exception):
    """A stop signal (SIGTERM, SIGINT, SIGHUP) turned into an exception: see
    :func:`stop_on_signals`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(
    signums: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
) -> Iterator[None]:
    """Raise :class:`Interrupted` on the first stop signal, so that the ``with`` blocks
    inside stop the broker and worker they started; further signals are ignored while
    they do (a second SIGTERM would otherwise cut that short and orphan them).

    SIGTERM's default kills the process without running any cleanup: a `replay`
    stopped by `timeout` or a job scheduler left 3 GB of broker and worker behind.
    """
    previous = {s: signal.getsignal(s) for s in signums}

    def handler(signum: int, _frame: object) -> None:
        for s in signums:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in signums:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class SendFailed(RuntimeError):
    """Records the broker never acknowledged: the input they came from must be resent."""


class Feeder:
    """Produces raw lines to mw-raw (and punctuation to mw-linkage) with kafka-python.

    kafka-python reports a failed send only on its future; unchecked, a record that
    timed out in the producer's buffer would vanish without a trace. Every send is
    therefore counted, and :meth:`flush` raises :class:`SendFailed` if any failed.
    """

    def __init__(self, settings: Settings, kafka_url: str, producer: Any = None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap_of(kafka_url)
        if producer is None:
            from kafka import KafkaProducer

            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                linger_ms=20,
                # Big batches for backlogs: Tansu's memory engine lists every batch of a
                # partition on each fetch, so at kafka-python's 16 KB a 1M-line replay
                # (about 21k batches per partition) made every fetch cost milliseconds
                # of broker CPU (measured: 1.3 ms per fetch on an empty partition, 9.5 ms
                # with 20k batches). Kafka itself also prefers them.
                batch_size=FEEDER_BATCH_BYTES,
                max_request_size=MAX_MESSAGE_BYTES + 65536,
                client_id="matrixwatch-feeder",
                compression_type=settings.compression_type,
            )
        self.producer = producer
        self.max_in_flight = 20_000
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.first_error: BaseException | None = None

    def _send(self, topic: str, **kwargs: Any) -> None:
        if self.sent - self.acked - self.failed >= self.max_in_flight:
            # Back-pressure: kafka-python buffers far more than a slow broker takes in a
            # delivery timeout (2 min), and an expired record is lost. Measured: a 1M-line
            # preload had about 755k records unacknowledged in the buffer.
            self.producer.flush()
        fut = self.producer.send(topic, **kwargs)
        self.sent += 1
        fut.add_callback(self._on_ack)
        fut.add_errback(self._on_error)

    def _on_ack(self, _metadata: Any) -> None:
        self.acked += 1

    def _on_error(self, exc: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = exc
            log.error("send to the broker failed (%s: %s); counting further failures",
                      type(exc).__name__, exc)

    def send_raw(self, line: bytes, *, as_of: str | None = None, replay: bool = False) -> None:
        # A line over the cap is cut here, so the worker dead-letters it as too large
        # instead of the broker refusing it.
        from matrixwatch.streams.app import HEADER_AS_OF, HEADER_MODE

        cap = self.settings.max_line_bytes + 1
        key = owner_key(line) if len(line) < cap else None
        headers = []
        if as_of:
            headers.append((HEADER_AS_OF, as_of.encode()))
        if replay:
            headers.append((HEADER_MODE, b"replay"))
        self._send(self.settings.topic("raw"), key=key, value=line[:cap], headers=headers)

    def punctuate(self, created_at: str) -> None:
        """Advance event time on every linkage and events partition.

        At the end of input this closes every linkage task and runs the time-driven
        rules once more at the last event time.
        """
        from matrixwatch.streams import packs
        from matrixwatch.streams.app import watermark_event

        for p in range(self.settings.partitions):
            ev = watermark_event(p, created_at)
            self._send(self.settings.topic("linkage"), key=f"pack:{p}".encode(),
                       value=packs.encode([ev]), partition=p)
            self._send(self.settings.topic("events"), key=json.dumps(ev.id).encode(),
                       value=ev.dumps(), partition=p)
        self.flush()

    def flush(self) -> None:
        """Wait for every record sent so far; raise if the broker refused or lost any."""
        self.producer.flush()
        if self.failed:
            raise SendFailed(
                f"{self.failed:,} of {self.sent:,} records were not acknowledged by the "
                f"broker (first error: {type(self.first_error).__name__}: "
                f"{self.first_error})")

    def close(self) -> None:
        self.producer.close()


def pipeline_topics(settings: Settings) -> list[str]:
    from matrixwatch.streams.app import topic_names

    return topic_names(settings)


class LagProbe:
    """Reads a group's lag from the broker, reusing one admin and one consumer client."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        logging.getLogger("kafka").setLevel(logging.ERROR)
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="matrixwatch-lag")
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="matrixwatch-lag",
                                      enable_auto_commit=False)

    def lag(self, group: str, topics: list[str], partitions: int) -> dict[str, int]:
        """Messages not yet committed by ``group``, per topic (end offset − committed)."""
        from kafka import TopicPartition

        committed = self.admin.list_group_offsets({group: None}).get(group) or {}
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = self.consumer.end_offsets(tps)
        out: dict[str, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = getattr(meta, "offset", meta) if meta is not None else -1
            done = offset if isinstance(offset, int) and offset >= 0 else 0
            out[tp.topic] = out.get(tp.topic, 0) + max(ends[tp] - done, 0)
        return out

    def committed(self, group: str, topic: str) -> int:
        """Sum of ``group``'s committed offsets on ``topic`` (0 where none)."""
        offsets = self.admin.list_group_offsets({group: None}).get(group) or {}
        return sum(max(getattr(m, "offset", -1), 0) for tp, m in offsets.items()
                   if tp.topic == topic)

    def has_pending(self, group: str, topics: list[str], partitions: int) -> bool:
        """True if any record exists at or after the group's committed offsets.

        Tansu's ListOffsets can report a high watermark one or two below the real end
        (seen after batched produces), so "lag == 0" alone could finish a replay with
        its last records unprocessed. A fetch from the committed offsets cannot.
        """
        from kafka import TopicPartition

        committed = self.admin.list_group_offsets({group: None}).get(group) or {}
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self.consumer.assign(tps)
        for tp in tps:
            meta = committed.get(tp)
            offset = getattr(meta, "offset", -1) if meta is not None else -1
            self.consumer.seek(tp, max(offset, 0))
        found = self.consumer.poll(timeout_ms=1000, max_records=1)
        return any(found.values())

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


_PROBES: dict[str, LagProbe] = {}


def group_lag(bootstrap: str, group: str, topics: list[str], partitions: int) -> dict[str, int]:
    return probe_for(bootstrap).lag(group, topics, partitions)


def probe_for(bootstrap: str) -> LagProbe:
    """One shared probe per broker (closed by :func:`close_probes`)."""
    probe = _PROBES.get(bootstrap)
    if probe is None:
        probe = _PROBES[bootstrap] = LagProbe(bootstrap)
    return probe


def close_probes() -> None:
    while _PROBES:
        _PROBES.popitem()[1].close()


def pending(settings: Settings, kafka_url: str) -> bool:
    bootstrap = bootstrap_of(kafka_url)
    probe = _PROBES.get(bootstrap)
    if probe is None:
        probe = _PROBES[bootstrap] = LagProbe(bootstrap)
    return probe.has_pending(settings.app_id, pipeline_topics(settings), settings.partitions)


def lag(settings: Settings, kafka_url: str) -> dict[str, int]:
    """The pipeline group's lag on every pipeline topic."""
    return group_lag(bootstrap_of(kafka_url), settings.app_id, pipeline_topics(settings),
                     settings.partitions)


def wait_drained(
    settings: Settings,
    kafka_url: str,
    worker: Callable[[], bool],
    *,
    timeout: float,
    on_lag: Callable[[dict[str, int]], None] | None = None,
    poll: float = 0.5,
    on_stall: Callable[[], None] | None = None,
    stall_after: float = 90.0,
) -> None:
    """Block until nothing is left to consume (twice in a row), or raise.

    ``on_stall`` is called when the lag has not moved for ``stall_after`` seconds.
    """
    deadline = time.monotonic() + timeout
    zero_streak = 0
    last: dict[str, int] | None = None
    moved = time.monotonic()
    while True:
        if not worker():
            raise RuntimeError("the worker exited before the input was consumed")
        current = lag(settings, kafka_url)
        if on_lag:
            on_lag(current)
        idle = sum(current.values()) == 0 and not pending(settings, kafka_url)
        zero_streak = zero_streak + 1 if idle else 0
        if zero_streak >= 2:
            return
        if current != last:
            last, moved = current, time.monotonic()
        elif on_stall is not None and time.monotonic() - moved > stall_after:
            on_stall()
            moved = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline not drained after {timeout:.0f}s: lag {current}")
        time.sleep(poll)


def iter_lines(paths: Iterable[Path]) -> Iterator[tuple[Path, bytes]]:
    """Raw lines, bytes as they are (invalid UTF-8 must reach the DLQ, not crash here)."""
    for p in paths:
        with open(p, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield p, line


def file_as_of(path: Path) -> str:
    """Reference time for relative Weibo times in an archive: the file's mtime."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(path.stat().st_mtime), tz=UTC).isoformat()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def export_outputs(store: Any, out_dir: Path) -> dict[str, int]:
    """DIR/events.jsonl, alerts.jsonl, linkage.jsonl (DESIGN.md contract), ordered."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "events": write_jsonl(out_dir / "events.jsonl", store.iter_events()),
        "alerts": write_jsonl(out_dir / "alerts.jsonl", store.iter_alerts()),
        "linkage": write_jsonl(out_dir / "linkage.jsonl", store.iter_linkage()),
        "dead_letters": sum(1 for _ in store.iter_dead_letters()),
    }


def prepare_topics(settings: Settings, kafka_url: str) -> None:
    ensure_topics(bootstrap_of(kafka_url), pipeline_topics(settings), settings.partitions)


@dataclass
class ReplayResult:
    lines: int
    counts: dict[str, int]
    seconds: float


class ReplaySession:
    """Broker + worker + feeder for one finite replay, with its own fresh SQLite store.

    ``replay()`` is the plain use; fault tests use the same session to kill and restart
    the worker between feeding and finishing.
    """

    def __init__(self, registry: Path, out_dir: Path, settings: Settings,
                 progress: Callable[[str, int, int | None], None] | None = None) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.store_path = out_dir / "store.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.store_path}{suffix}").unlink(missing_ok=True)
        settings = settings.model_copy(update={
            "registry": registry, "sqlite_path": self.store_path, "es_url": None,
            "data_dir": out_dir / "work",
            # A finite input needs no guess about lateness: linkage deadlines and
            # checkpoints are decided at the end of input, with everything read, so
            # the result cannot depend on how partitions interleaved.
            "allowed_lateness": math.inf,
        })
        if settings.kafka_url:  # a shared cluster: topics and group of our own
            tag = f"replay-{os.getpid()}-{int(time.time())}"
            settings = settings.model_copy(update={"topic_prefix": tag, "app_id": tag})
        self.settings = settings
        self.notify = progress or (lambda stage, done, total: None)
        self.lines = 0
        self.stall_restarts = 0  # watchdog restarts (see drain); reported, not hidden
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ReplaySession:
        from matrixwatch.broker import broker_for

        work = self.out_dir / "work"
        # Each part is registered for stopping as soon as it runs: `with` calls __exit__
        # only once __enter__ has returned, and a Ctrl-C during the seconds of start-up
        # left the broker and the worker running (their own sessions: no signal of ours
        # reaches them).
        with contextlib.ExitStack() as stack:
            self.url = stack.enter_context(broker_for(self.settings.kafka_url,
                                                      work / "broker.log"))
            stack.callback(close_probes)
            prepare_topics(self.settings, self.url)
            self.worker = WorkerProcess.start(self.settings, self.url, work / "worker.log")
            stack.callback(lambda: self.worker.stop())  # the current one (restart_worker)
            self.feeder = Feeder(self.settings, self.url)
            stack.callback(self.feeder.close)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()  # feeder, worker, probes, then the broker

    def feed(self, lines: Iterable[tuple[str, bytes]]) -> int:
        """Produce (as_of, line) pairs to mw-raw; returns how many."""
        n = 0
        for as_of, line in lines:
            self.feeder.send_raw(line, as_of=as_of, replay=True)
            n += 1
            if n % 1000 == 0:
                self.notify("produce", self.lines + n, None)
        self.feeder.flush()
        self.lines += n
        self.notify("produce", self.lines, self.lines)
        return n

    def drain(self, timeout: float) -> None:
        def on_lag(current: dict[str, int]) -> None:
            self.notify("consume", sum(current.values()), None)

        def on_stall() -> None:
            # Tansu sometimes leaves a group with every partition idle after a member
            # change (its known gap with rebalances). A fresh member unsticks it; the
            # idempotent sinks and changelogged state make the restart harmless.
            self.stall_restarts += 1
            log.warning("pipeline stalled with lag %s; restarting the worker",
                        lag(self.settings, self.url))
            self.restart_worker(kill=False)

        try:
            wait_drained(self.settings, self.url, lambda: self.worker.alive(),
                         timeout=timeout, on_lag=on_lag, on_stall=on_stall)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"{e}\n--- worker log ---\n{self.worker.tail()}") from e

    def finish(self, timeout: float) -> None:
        """Drain, then the end-of-input watermark closes every task, then drain again."""
        from matrixwatch.streams.app import END_OF_INPUT

        self.drain(timeout)
        self.feeder.punctuate(END_OF_INPUT)
        self.drain(timeout)

    def restart_worker(self, *, kill: bool = True) -> None:
        """kill -9 (or SIGTERM) the worker and start a new one on the same group.

        On the embedded broker the new worker waits until the dead member's session has
        expired: Tansu does not handle a join that overlaps the dead member's eviction
        (a concurrent rebalance), and the group then stalls with every partition idle.
        """
        if kill:
            self.worker.kill()
        else:
            self.worker.stop()
        if not self.settings.kafka_url:
            time.sleep(self.settings.broker_session_timeout + 2.0)
        self.worker = WorkerProcess.start(self.settings, self.url, self.worker.log_path)

    def export(self) -> dict[str, int]:
        from matrixwatch.streams.sinks.sqlite import SQLiteStore

        store = SQLiteStore(self.store_path)
        try:
            return export_outputs(store, self.out_dir)
        finally:
            store.close_sync()


def replay(
    files: list[Path],
    registry: Path,
    out_dir: Path,
    settings: Settings,
    *,
    timeout: float = 3600.0,
    as_of: str | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> ReplayResult:
    """Run the files through broker + worker + sinks and write the three JSONL outputs.

    The store is a fresh SQLite file in ``out_dir`` so the outputs hold this replay
    only. A finite replay ends with an end-of-input watermark: every task closes.
    ``as_of`` resolves relative times ("3分钟前"); default: each file's mtime.
    """
    started = time.monotonic()
    as_of_by_file = {f: as_of or file_as_of(f) for f in files}
    with ReplaySession(registry, out_dir, settings, progress) as session:
        session.feed((as_of_by_file[p], line) for p, line in iter_lines(files))
        session.finish(timeout)
    counts = session.export()
    return ReplayResult(lines=session.lines, counts=counts, seconds=time.monotonic() - started)
