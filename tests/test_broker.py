"""The embedded Tansu broker: lifecycle, topic creation, and the end-offset correction."""

from __future__ import annotations

import asyncio
import socket

import pytest
from faust.types import TP
from kafka import KafkaAdminClient, KafkaProducer

from matrixwatch.broker import EmbeddedBroker, bootstrap_of, ensure_topics, true_end_offsets

pytestmark = pytest.mark.broker


def test_starts_on_loopback_creates_topics_and_stops() -> None:
    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, ["a", "b"], 3)
        ensure_topics(b.bootstrap, ["a"], 3)  # idempotent
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        parts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(["a", "b"])}
        admin.close()
        assert parts == {"a": 3, "b": 3}
        port = b.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_true_end_offsets_reads_past_tansus_short_highwater(codec: str | None) -> None:
    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, ["t"], 2)
        p = KafkaProducer(bootstrap_servers=b.bootstrap, linger_ms=50, compression_type=codec)
        for _ in range(25):
            p.send("t", b"x", partition=0)
        p.flush()
        for _ in range(7):
            p.send("t", b"x", partition=0)
        p.flush()
        p.close()
        # 32 records in two batches; Tansu reports the last batch's base + 1 (26).
        fixed = true_end_offsets(b.bootstrap, {TP("t", 0): 26, TP("t", 1): 0})
        assert fixed == {TP("t", 0): 32, TP("t", 1): 0}


def test_bootstrap_of() -> None:
    assert bootstrap_of("kafka://h1:9092;h2:9093") == "h1:9092,h2:9093"


def test_fetch_wait_patch_reaches_the_worker_consumer() -> None:
    """Faust hard-codes a 1.5 s fetch max wait; Tansu holds every fetch that long."""
    import faust
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from matrixwatch.broker import patch_faust_fetch_wait

    async def wait_ms() -> int:  # aiokafka objects must be made inside a running loop
        app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:9", store="memory://")
        consumer = AIOKafkaConsumerThread(app.consumer)._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    patch_faust_fetch_wait(0.05)
    assert asyncio.run(wait_ms()) == 50
    patch_faust_fetch_wait(0.2)  # patched once; the latest setting wins
    assert asyncio.run(wait_ms()) == 200


def _broker_growth_mb(compression: str, lines: list[bytes]) -> tuple[float, list[bytes]]:
    """Feed ``lines`` through the Feeder with ``compression``; the broker's memory growth
    and what an aiokafka consumer (the workers' client) reads back."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from matrixwatch.pipeline import Feeder
    from matrixwatch.settings import Settings

    settings = Settings(_env_file=None, partitions=1, compression=compression)  # type: ignore[call-arg]
    with EmbeddedBroker() as b:
        topic = settings.topic("raw")
        ensure_topics(b.bootstrap, [topic], 1)
        before = b.rss_mb() or 0.0
        feeder = Feeder(settings, b.url)
        for line in lines:
            feeder.send_raw(line)
        feeder.flush()
        feeder.close()
        grown = (b.rss_mb() or 0.0) - before

        async def read() -> list[bytes]:
            c = AIOKafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="earliest")
            await c.start()
            try:
                c.assign([TopicPartition(topic, 0)])
                out: list[bytes] = []
                while len(out) < len(lines):
                    batch = await c.getmany(timeout_ms=2000)
                    if not batch:
                        break
                    out += [m.value for msgs in batch.values() for m in msgs]
                return out
            finally:
                await c.stop()

        return grown, asyncio.run(read())


def test_compressed_batches_round_trip_and_stay_compressed_in_the_broker() -> None:
    """zstd (the default) is written by kafka-python (the feeder) and read by aiokafka
    (the workers), and the broker keeps the batches as sent: its memory grows by a
    fraction of what it grows uncompressed. That is the reason for the setting."""
    lines = [b'{"id": %d, "text": "%s", "user": {"id": 1}}' % (i, b"x" * 400)
             for i in range(40_000)]  # ~17 MB, very compressible
    grown_zstd, read_zstd = _broker_growth_mb("zstd", lines)
    grown_none, read_none = _broker_growth_mb("none", lines)
    assert read_zstd == lines and read_none == lines
    assert grown_none > 10, grown_none  # the payload itself
    assert grown_zstd < grown_none / 3, (grown_zstd, grown_none)
