"""The Faust app: its declarations (built, not started: no broker is contacted), and
one timer end to end on the embedded broker."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from matrixwatch.settings import Settings
from matrixwatch.streams.app import create_app


def test_changelogs_are_compacted_and_co_partitioned(tmp_path: Path) -> None:
    """Kafka then keeps about one record per key, which is what a restarted worker reads
    before it flows (Tansu keeps them all: README, embedded broker). The write-behind
    flush sends to the same topics, with the pipeline's partition count."""
    settings = Settings(_env_file=None, kafka_url="kafka://127.0.0.1:1",  # type: ignore[call-arg]
                        data_dir=tmp_path, sqlite_path=tmp_path / "store.sqlite", partitions=6)
    app = create_app(settings).app
    assert sorted(app.tables) == ["alert_dispatch", "linkage_tasks", "owner_state"]
    for name, table in app.tables.items():
        topic = table.changelog_topic
        assert topic.get_topic_name() == f"{settings.app_id}-{name}-changelog"
        assert topic.compacting is True and not topic.deleting
        assert topic.internal is True
        assert topic.partitions == 6


def test_producers_compress_with_the_configured_codec(tmp_path: Path) -> None:
    def codec(**kw: object) -> object:
        settings = Settings(_env_file=None, kafka_url="kafka://127.0.0.1:1",  # type: ignore[call-arg]
                            data_dir=tmp_path, sqlite_path=tmp_path / "store.sqlite", **kw)
        return create_app(settings).app.conf.producer_compression_type

    assert codec() == "zstd"
    assert codec(compression="lz4") == "lz4"
    assert codec(compression="none") is None


@pytest.mark.broker
def test_idle_alert_keys_are_deleted_by_the_watermark(tmp_path: Path) -> None:
    """A keyword alert's key (one per post) is deleted once the input watermark is past
    its last alert by ``alert_key_retention`` plus the rules' windows: a tombstone on the
    alert_dispatch changelog, so a restarted worker does not bring it back either."""
    from kafka import KafkaConsumer, TopicPartition

    from matrixwatch.alerts.dispatch import Dispatcher
    from matrixwatch.streams.records import Alert
    from tests.factories import REGISTRY_YAML, T0, status
    from tests.faults.harness import Cluster

    registry = tmp_path / "matrix.yaml"
    registry.write_text(REGISTRY_YAML, encoding="utf-8")
    county = "9100000112"
    hit = status(5000000001, county, T0, "西区今天全天停水，没人管吗")
    later = status(5000000002, county, T0 + timedelta(days=2), "今日天气晴")
    with Cluster(tmp_path, registry, partitions=1,
                 env={"MW_ALERT_KEY_EXPIRY_INTERVAL": "0.5",
                      "MW_ALERT_KEY_RETENTION": "3600"}) as c:
        c.start_worker("w")
        c.feed([json.dumps(hit).encode()])
        c.drain(90)
        [stored] = c.rows("alerts")
        key = Dispatcher.key(Alert(**stored))
        record_key = json.dumps(key).encode()  # as the write-behind encodes table keys
        assert stored["rule"] == "keyword_watchlist" and stored["post_id"] == "5000000001"
        c.feed([json.dumps(later).encode()])
        c.drain(90)
        consumer = KafkaConsumer(bootstrap_servers=c.broker.bootstrap,
                                 consumer_timeout_ms=2000)
        tp = TopicPartition(f"{c.settings.app_id}-alert_dispatch-changelog", 0)
        consumer.assign([tp])
        values: list[bytes | None] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not values or values[-1] is not None):
            consumer.seek_to_beginning(tp)
            values = [m.value for m in consumer if m.key == record_key]
            time.sleep(0.5)
        consumer.close()
    assert values and values[0] is not None, "the alert's dispatch state was written"
    assert values[-1] is None, f"no tombstone for {key!r}: {values}"
