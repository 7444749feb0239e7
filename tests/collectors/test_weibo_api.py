"""Open API v2 collector against the fake server: max_id paging, comments, reposts, token."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
from aiohttp import web

from matrixwatch.collectors.base import MemorySink
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.weibo_api import WeiboApiCollector
from matrixwatch.streams.normalize import normalize_line
from matrixwatch.streams.weibo_time import CST
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FakeWeibo

CITY, DISTRICT, NETIZEN = 9000000001, 9000000002, 9000000101
TIMELINE = "/2/statuses/user_timeline.json"
AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=CST)


def world(n: int) -> FakeWeibo:
    fw = FakeWeibo()
    for uid, name in ((CITY, "某某市发布"), (DISTRICT, "某某区发布"), (NETIZEN, "测试网友A")):
        fw.add_user(uid, name)
    for _ in range(n):
        fw.add_post(CITY)
    return fw


def make(tmp_path: Path, base: str, sink: MemorySink, token: str = "test-token",
         **kw: object) -> WeiboApiCollector:
    s = make_settings(tmp_path, base, **kw)
    return WeiboApiCollector(s, sink, CursorStore(tmp_path / "s.sqlite"), token=token)


async def test_timeline_comments_reposts(tmp_path: Path, monkeypatch: object) -> None:
    import matrixwatch.collectors.weibo_api as api

    monkeypatch.setattr(api, "PAGE_SIZE", 7)  # type: ignore[attr-defined]
    fw = world(16)
    post = fw.by_user[CITY][-1]
    comments = [fw.add_comment(post, NETIZEN, f"评论{i}") for i in range(9)]
    reposts = [fw.add_repost(post, DISTRICT)] + [fw.add_repost(post, NETIZEN) for _ in range(8)]
    async with fw.serve() as base:
        sink = MemorySink()
        col = make(tmp_path, base, sink)
        r = await col.poll_account(str(CITY))
        assert r.error is None
        n_timeline = fw.hits[TIMELINE]
        more = [fw.add_comment(post, NETIZEN, "新评论") for _ in range(2)]
        r2 = await col.poll_account(str(CITY))
        await col.close()
    objs = sink.objects()
    got = [str(o["idstr"]) for o in objs]
    want = ({str(p.id) for p in fw.by_user[CITY]} | {str(c.id) for c in comments + more}
            | {str(x.id) for x in reposts})
    assert set(got) == want and len(got) == len(set(got))
    # 7 + 7 + 2, then an empty page ends it (short pages are normal: the API filters).
    assert n_timeline == 4
    assert r2.published == 2
    for o in objs:
        ev = normalize_line(orjson.dumps(o), collected_at=AS_OF)
        assert ev.owner_id == str(CITY)


async def test_expired_token_is_auth_expired(tmp_path: Path) -> None:
    fw = world(2)
    async with fw.serve() as base:
        sink = MemorySink()
        col = make(tmp_path, base, sink, token="old-token")
        r = await col.poll_account(str(CITY))
        await col.close()
    assert r.error and "21327" in r.error
    assert fw.hits[TIMELINE] == 1
    assert [h.status for h in sink.health_records] == ["auth_expired"]


async def test_rate_limit_error_code_is_retried(tmp_path: Path) -> None:
    fw = world(3)
    calls = {"n": 0}
    original = fw.api_timeline

    async def limited(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.json_response({"error": "User requests out of rate limit!",
                                      "error_code": 10023, "request": TIMELINE}, status=403)
        return await original(request)

    fw.api_timeline = limited  # type: ignore[method-assign]
    async with fw.serve() as base:
        sink = MemorySink()
        col = make(tmp_path, base, sink)
        r = await col.poll_account(str(CITY))
        await col.close()
    assert r.error is None and r.published == 3 and col.fetcher.retries == 1
