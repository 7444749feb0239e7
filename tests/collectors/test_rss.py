"""RSS/Atom collector against local feeds: web and WeChat-bridge items → normalized events."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrixwatch.collectors.base import MemorySink
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.rss import FeedSpec, RssCollector, load_feeds
from matrixwatch.streams.normalized import event_from_dict
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FIXTURES, FakeWeibo


def feeds_world() -> FakeWeibo:
    fw = FakeWeibo()
    fw.feeds["gov.xml"] = ("application/rss+xml",
                           (FIXTURES / "feed_gov_rss.xml").read_text(encoding="utf-8"))
    fw.feeds["wx.atom"] = ("application/atom+xml",
                           (FIXTURES / "feed_wechat_atom.xml").read_text(encoding="utf-8"))
    fw.feeds["broken.xml"] = ("text/html", "<html><body>维护中</body></html>")
    fw.feed_etag["wx.atom"] = '"v1"'
    return fw


async def test_web_and_wechat_feeds(tmp_path: Path) -> None:
    fw = feeds_world()
    async with fw.serve() as base:
        specs = [FeedSpec(f"{base}/feed/gov.xml", "web", "example-gov", "某某市人民政府网站"),
                 FeedSpec(f"{base}/feed/wx.atom", "wechat")]
        sink = MemorySink()
        col = RssCollector(make_settings(tmp_path, base), sink,
                           CursorStore(tmp_path / "s.sqlite"), specs)
        first = await col.poll_all()
        second = await col.poll_all()
        await col.close()
    assert first == {specs[0].url: 2, specs[1].url: 2}
    assert second == {specs[0].url: 0, specs[1].url: 0}  # seen ids; 304 for the ETag feed
    evs = [event_from_dict(o) for o in sink.objects()]
    web_evs = [e for e in evs if e.platform == "web"]
    wx = [e for e in evs if e.platform == "wechat"]
    assert {e.account_id for e in web_evs} == {"example-gov"}
    assert web_evs[0].created_at == "2026-11-21T10:00:00+08:00"  # 02:00 GMT
    assert web_evs[0].text.startswith("某某市关于做好今冬明春供暖保障工作的通知\n各区人民政府")
    assert web_evs[0].url and web_evs[0].kind == "post"
    assert {e.id for e in wx} == {"2650000001_1", "2650000001_2"}
    assert {e.account_id for e in wx} == {"MzAwMDAwMDAwMQ=="}
    assert all(i.key == f'"{e.platform}:{e.owner_id}"'.encode()
               for i, e in zip(sink.items, evs, strict=True))


async def test_broken_feed_is_reported_others_continue(tmp_path: Path) -> None:
    fw = feeds_world()
    async with fw.serve() as base:
        specs = [FeedSpec(f"{base}/feed/broken.xml"), FeedSpec(f"{base}/feed/gov.xml"),
                 FeedSpec(f"{base}/feed/missing.xml")]
        sink = MemorySink()
        col = RssCollector(make_settings(tmp_path, base, failure_threshold=1), sink,
                           CursorStore(tmp_path / "s.sqlite"), specs)
        res = await col.poll_all()
        await col.close()
    assert isinstance(res[specs[0].url], str) and "not a feed" in str(res[specs[0].url])
    assert res[specs[1].url] == 2
    assert "404" in str(res[specs[2].url])
    assert sink.health_records and sink.health_records[0].status == "failing"


def test_feeds_yaml(tmp_path: Path) -> None:
    p = tmp_path / "feeds.yaml"
    p.write_text("feeds:\n  - url: https://www.example.gov.cn/rss.xml\n    platform: web\n"
                 "    account_id: example-gov\n  - url: https://bridge.example.test/wx\n"
                 "    platform: wechat\n", encoding="utf-8")
    specs = load_feeds(p)
    assert [s.platform for s in specs] == ["web", "wechat"]
    assert specs[0].account_id == "example-gov"


async def test_an_unexpected_error_is_a_failed_feed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug while reading one feed fails that feed (counted, reported), not the call:
    escaping, it skipped the other feeds and reached APScheduler as a traceback per run."""
    fw = feeds_world()
    async with fw.serve() as base:
        specs = [FeedSpec(f"{base}/feed/gov.xml"), FeedSpec(f"{base}/feed/wx.atom", "wechat")]
        sink = MemorySink()
        col = RssCollector(make_settings(tmp_path, base, failure_threshold=1), sink,
                           CursorStore(tmp_path / "s.sqlite"), specs)
        real = col.poll_feed

        async def poll_feed(spec: FeedSpec) -> int:
            if spec.platform == "web":
                raise ValueError("bug in a parser")
            return await real(spec)

        monkeypatch.setattr(col, "poll_feed", poll_feed)
        res = await col.poll_all()
        await col.close()
    assert res == {specs[0].url: "ValueError: bug in a parser", specs[1].url: 2}
    assert sink.health_records[0].status == "failing"
