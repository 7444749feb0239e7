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


@pytest.mark.broker
def test_a_burst_of_alerts_stays_within_the_channels_send_budget(tmp_path: Path) -> None:
    """40 keyword alerts at once to a webhook channel with ``max_per_minute: 10``: the
    receiver gets 9 of them and one summary of the other 31 (no more than 10 requests
    in any minute), and all 40 are stored. The 5 orange ones come last in the input
    and are still among those sent on their own when the burst is decided in one
    batch (the usual case; a burst split over two batches gets a second summary once
    the minute is over)."""
    import shutil
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from matrixwatch.alerts.notifiers.render import RATE_DIGEST
    from matrixwatch.alerts.text import alert_id
    from tests.factories import REGISTRY_YAML, T0, status
    from tests.faults.harness import Cluster, wait_for

    got: list[tuple[float, str, dict]] = []  # (arrival, X-Matrixwatch-Event, payload)

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append((time.monotonic(), self.headers.get("X-Matrixwatch-Event", ""),
                        json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    registry = tmp_path / "matrix.yaml"
    registry.write_text(REGISTRY_YAML, encoding="utf-8")
    rules = tmp_path / "rules"  # the keyword rule only: 40 posts would also be a spike
    rules.mkdir()
    shutil.copy(Path(__file__).parents[2] / "matrixwatch/alerts/rules/keyword_watchlist.yaml",
                rules)
    channels = tmp_path / "channels.yaml"
    channels.write_text(f"""
channels:
  hook:
    type: webhook
    url: http://127.0.0.1:{server.server_address[1]}/hook
    trust_env: false
    max_per_minute: 10
    retry: {{attempts: 2, initial: 0.1, max_wait: 0.2, timeout: 5}}
routes:
  - channels: [hook]
""", encoding="utf-8")
    county = "9100000112"
    lines = [status(5100000000 + i, county, T0 + timedelta(seconds=i), "西区今天全天停水，没人管吗")
             for i in range(35)]
    lines += [status(5100000100 + i, county, T0 + timedelta(seconds=40 + i), "化工厂发生爆炸")
              for i in range(5)]
    try:
        with Cluster(tmp_path / "c", registry, partitions=1,
                     env={"MW_ALERT_CHANNELS": str(channels), "MW_RULES_DIR": str(rules),
                          "MW_SWEEP_INTERVAL": "1"}) as c:
            w = c.start_worker("w")
            c.feed([json.dumps(x).encode() for x in lines])
            c.drain(120)
            stored = {a["id"]: a for a in c.rows("alerts")}
            assert len(stored) == 40 and {a["rule"] for a in stored.values()} == \
                {"keyword_watchlist"}

            def summarised() -> int:
                return sum(p["digest"]["total"] for _, ev, p in list(got) if ev == "digest")

            wait_for(lambda: summarised() >= 31, 100, "summaries of all 31 overflowed alerts")
            with urllib.request.urlopen(f"http://127.0.0.1:{w.web_port}/metrics",
                                        timeout=5) as r:
                text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    singles = [p["alert"] for _, ev, p in got if ev == "alert"]
    summaries = [p for _, ev, p in got if ev == "digest"]
    assert len(singles) == 9 and len({a["id"] for a in singles}) == 9
    assert {a["id"] for a in singles} <= set(stored)
    assert summarised() == 31 and all(p["alert"]["type"] == RATE_DIGEST for p in summaries)
    arrivals = sorted(t for t, _, _ in got)
    assert all(sum(1 for u in arrivals if t <= u < t + 60) <= 10 for t in arrivals)
    assert ('matrixwatch_alert_notifications_overflowed_total{channel="hook"} 31.0'
            in text)
    if len(summaries) == 1:  # decided in one batch
        rest = sorted(set(stored) - {a["id"] for a in singles})
        [s] = summaries
        assert s["alert"]["id"] == alert_id(RATE_DIGEST, "hook", ",".join(rest))
        assert sorted(a["severity"] for a in singles) == ["orange"] * 5 + ["yellow"] * 4
        assert s["alert"]["severity"] == "yellow"
        assert s["alert"]["title"] == "另有 31 条告警未单独推送（红 0 · 橙 0 · 黄 31 · 蓝 0）"
