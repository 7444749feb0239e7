"""The Faust app's declarations (built, not started: no broker is contacted)."""

from __future__ import annotations

from pathlib import Path

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
