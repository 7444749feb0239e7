"""Collector faults surface as collector_health alerts in the store.

The collectors' own path, end to end: a real RSS collector polls a loopback server
whose feed is broken and reports through ``HealthTracker`` and ``KafkaSink`` to the
health topic; a Weibo-style collector reports an expired login the same way. The
worker's health agent turns them into ``collector_health`` alerts; the recovery fires
nothing. A malformed health record is dead-lettered with its reason and does not stop
the ones after it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from matrixwatch.collectors.base import AuthExpired, HealthTracker, KafkaSink
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.rss import FeedSpec, RssCollector
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FakeWeibo
from tests.faults.harness import Cluster, simulated_feed, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.faults]


async def _collect(c: Cluster, tmp: Path, account: str) -> list[dict[str, Any]]:
    """Three failing RSS polls, a recovery, and an expired Weibo login."""
    fw = FakeWeibo()
    fw.feeds["broken.xml"] = ("text/html", "<html><body>系统维护中</body></html>")
    sink = KafkaSink.from_settings(c.settings, c.url)
    await sink.start()
    polls = []
    try:
        async with fw.serve() as base:
            settings = make_settings(tmp, base, failure_threshold=3)
            spec = FeedSpec(f"{base}/feed/broken.xml", "web", account)
            col = RssCollector(settings, sink, CursorStore(tmp / "cursors.sqlite"), [spec])
            for _ in range(3):
                polls.append(await col.poll_all())
            fw.feeds["broken.xml"] = ("application/rss+xml", (
                Path(__file__).resolve().parents[1] / "fixtures" / "collectors"
                / "feed_gov_rss.xml").read_text(encoding="utf-8"))
            polls.append(await col.poll_all())  # recovered: an "ok" record, no alert
            await col.close()
        weibo = HealthTracker(sink, "weibo_api", threshold=3)
        await weibo.failure(AuthExpired("21327 expired_token"), account)
    finally:
        await sink.close()
    return polls


def _county(registry: Path) -> str:
    accounts = yaml.safe_load(registry.read_text(encoding="utf-8"))["accounts"]
    return str(next(a["id"] for a in accounts if a["level"] == "county"))


def test_collector_faults_become_collector_health_alerts(tmp_path: Path) -> None:
    registry, _ = simulated_feed(tmp_path / "sim", 1)
    account = _county(registry)
    with Cluster(tmp_path, registry) as c:
        c.start_worker("w")
        polls = asyncio.run(_collect(c, tmp_path, account))
        wait_for(lambda: c.counts()["alerts"] >= 2, 60, "two collector_health alerts")
        c.drain(60)
        alerts = [a for a in c.rows("alerts") if a["rule"] == "collector_health"]
        alive = c.workers["w"].alive()
    assert all("not a feed" in str(next(iter(p.values()))) for p in polls[:3])
    assert list(polls[3].values()) == [2]  # the feed is back: its two items published
    by_source = {a["title"].split()[1]: a for a in alerts}
    assert set(by_source) == {"rss", "weibo_api"}, alerts
    rss, weibo = by_source["rss"], by_source["weibo_api"]
    assert rss["severity"] == "orange" and "连续失败 3 次" in rss["title"]
    assert rss["account_id"] == account and "not a feed" in rss["message"]
    assert rss["values"]["consecutive_failures"] == 3
    assert weibo["severity"] == "orange" and "登录凭据失效" in weibo["title"]
    assert weibo["account_id"] == account
    assert len(alerts) == 2  # the recovery ("ok") fires nothing
    assert alive


def test_a_malformed_health_record_does_not_stop_health_alerts(tmp_path: Path) -> None:
    """consecutive_failures "three" raised TypeError in RuleEngine.on_health; the agent had
    no quarantine, and once Faust restarted it no later record was processed."""
    registry, _ = simulated_feed(tmp_path / "sim", 1)
    account = _county(registry)
    with Cluster(tmp_path, registry) as c:
        c.start_worker("w")
        c.wait_ready("w")
        c.feeder.producer.send(c.settings.topic("health"), key=b"bad", value=(
            b'{"source": "x", "status": "failing", "at": "2026-11-22T10:00:00+08:00", '
            b'"consecutive_failures": "three"}'))
        c.feeder.flush()

        async def report() -> None:
            async with KafkaSink.from_settings(c.settings, c.url) as sink:
                await HealthTracker(sink, "weibo_api").failure(AuthExpired("expired"), account)

        asyncio.run(report())
        try:
            # Both: the alerts hop batches for 0.05 s and the dead-letter hop for 0.2 s,
            # so the alert is usually stored first.
            wait_for(lambda: c.counts()["alerts"] >= 1 and c.counts()["dead_letters"] >= 1,
                     8, "the auth_expired alert and the dead letter")
        finally:
            letters = c.rows("dead_letters") if c.store_path.exists() else []
        bad = [d for d in letters if "three" in d["payload"]]
        assert [d["reason"] for d in bad] == [
            "health error: ValueError: bad health record: consecutive_failures: "
            "not a count: 'three'"], letters
        assert bad[0]["source"].startswith(f"{c.settings.topic('health')}/")
        alerts = [a for a in c.rows("alerts") if a["rule"] == "collector_health"]
        assert [a["title"].split()[1] for a in alerts] == ["weibo_api"]
        assert c.workers["w"].alive()
