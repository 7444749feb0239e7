"""m.weibo.cn collector against the local fake server: paging, faults, auth, restarts."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from matrixwatch.collectors.base import MemorySink
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.weibo_mobile import WeiboMobileCollector
from matrixwatch.streams.normalize import normalize_line
from matrixwatch.streams.weibo_time import CST
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FakeWeibo

CITY, DISTRICT, NETIZEN = 9000000001, 9000000002, 9000000101
GET_INDEX = "/api/container/getIndex"
AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=CST)


def world(n_posts: int = 25, **kw: object) -> FakeWeibo:
    fw = FakeWeibo(**kw)  # type: ignore[arg-type]
    fw.add_user(CITY, "某某市发布")
    fw.add_user(DISTRICT, "某某区发布")
    fw.add_user(NETIZEN, "测试网友A")
    for _ in range(n_posts):
        fw.add_post(CITY)
    return fw


def ids(sink: MemorySink) -> list[str]:
    return [str(o.get("idstr") or o["id"]) for o in sink.objects()]


def collector(tmp_path: Path, base: str, sink: MemorySink, store: CursorStore | None = None,
              cookie: str | None = None, **kw: object) -> WeiboMobileCollector:
    s = make_settings(tmp_path, base, **kw)
    st = store or CursorStore(tmp_path / "state.sqlite")
    return WeiboMobileCollector(s, sink, st, cookie=cookie)


async def test_pages_to_the_end_then_only_the_first_page(tmp_path: Path) -> None:
    fw = world(25)
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        r = await col.poll_account(str(CITY))
        assert r.error is None and r.published == 25
        assert sorted(ids(sink)) == sorted(str(p.id) for p in fw.by_user[CITY])
        assert fw.hits[GET_INDEX] == 3  # 10 + 10 + 5, the last page has no since_id
        r2 = await col.poll_account(str(CITY))
        assert r2.published == 0 and fw.hits[GET_INDEX] == 4  # page 1 reaches the watermark
        new = fw.add_post(CITY)
        r3 = await col.poll_account(str(CITY))
        assert r3.published == 1 and ids(sink)[-1] == str(new.id)
        await col.close()
    # What the pipeline will do with them: every object normalizes, owned by the author.
    for item in sink.items:
        ev = normalize_line(item.line, collected_at=AS_OF)
        assert ev.kind == "post" and ev.owner_id == str(CITY)
        assert item.key == f'"weibo:{CITY}"'.encode() and item.as_of


async def test_ok0_ends_paging_without_error(tmp_path: Path) -> None:
    fw = world(20, end_style="ok0")
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        r = await col.poll_account(str(CITY))
        await col.close()
    assert r.error is None and r.published == 20
    assert fw.hits[GET_INDEX] == 3  # two pages, then {"ok":0,"msg":"这里还没有内容"}
    assert col.health.state == "ok" and not sink.health_records


@pytest.mark.parametrize("faults", [("418", "429"), ("500", "timeout"), ("502",)])
async def test_backoff_and_retry_on_throttling(tmp_path: Path, faults: tuple[str, ...]) -> None:
    fw = world(5)
    fw.stall_seconds = 1.0  # > http_timeout 0.5
    fw.inject(GET_INDEX, *faults)
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        r = await col.poll_account(str(CITY))
        await col.close()
    assert r.error is None and r.published == 5
    assert col.fetcher.retries == len(faults)
    assert fw.hits[GET_INDEX] == len(faults) + 1
    assert sum(fw.faults_injected.values()) == len(faults)


async def test_retries_exhausted_is_a_failed_poll_and_a_health_event(tmp_path: Path) -> None:
    fw = world(5)
    fw.inject(GET_INDEX, *["418"] * 8)  # two polls x 4 attempts
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        r1 = await col.poll_account(str(CITY))
        r2 = await col.poll_account(str(CITY))
        assert r1.error and r2.error and not sink.items
        assert [h.status for h in sink.health_records] == ["failing"]  # threshold 2
        assert sink.health_records[0].consecutive_failures == 2
        assert "418" in (sink.health_records[0].last_error or "")
        r3 = await col.poll_account(str(CITY))  # the server recovered
        await col.close()
    assert r3.error is None and r3.published == 5
    assert [h.status for h in sink.health_records] == ["failing", "ok"]


@pytest.mark.parametrize("kind", ["malformed", "badshape"])
async def test_malformed_page_fails_the_poll_and_keeps_the_cursor(
    tmp_path: Path, kind: str
) -> None:
    fw = world(25)
    fw.inject(GET_INDEX, None, kind)  # page 1 fine, page 2 broken (not retried)
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        r1 = await col.poll_account(str(CITY))
        assert r1.error and "MalformedResponse" in r1.error and r1.published == 10
        r2 = await col.poll_account(str(CITY))  # resumes at page 2 from the pending cursor
        await col.close()
    assert r2.error is None and r2.published == 15
    got = ids(sink)
    assert len(got) == len(set(got)) == 25
    # poll 1: pages 1, 2(broken); poll 2: pages 2, 3 (the pending backfill), then page 1
    # again for anything newer than the backfill's top.
    assert fw.hits[GET_INDEX] == 2 + 3


@pytest.mark.parametrize("style", ["redirect", "ok-100"])
async def test_expired_cookie_is_detected_and_reported(tmp_path: Path, style: str) -> None:
    fw = world(3)
    fw.cookie = "SUB=fresh"
    fw.auth_style = style
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink, cookie="SUB=stale")
        r = await col.poll_account(str(CITY))
        assert r.error and "AuthExpired" in r.error
        assert fw.hits[GET_INDEX] == 1  # not retried: only a human can fix it
        assert [h.status for h in sink.health_records] == ["auth_expired"]
        assert sink.health_records[0].account_id == str(CITY)
        await col.poll_account(str(CITY))
        assert len(sink.health_records) == 1  # reported once, not per poll
        await col.close()
        fixed = collector(tmp_path, base, sink, store=col.store, cookie="SUB=fresh")
        fixed.health = col.health
        r2 = await fixed.poll_account(str(CITY))
        await fixed.close()
    assert r2.error is None and r2.published == 3
    assert [h.status for h in sink.health_records] == ["auth_expired", "ok"]


async def test_restart_resumes_from_the_cursor_without_gaps_or_duplicates(
    tmp_path: Path
) -> None:
    fw = world(30)
    db = tmp_path / "state.sqlite"
    async with fw.serve() as base:
        first = MemorySink()
        store = CursorStore(db)
        col = collector(tmp_path, base, first, store=store, max_pages=2)
        r = await col.poll_account(str(CITY))
        assert r.published == 20  # budget of 2 pages: the backfill is pending
        await col.close()
        store.close()  # "process exit"
        newer = [fw.add_post(CITY) for _ in range(3)]

        second = MemorySink()
        store2 = CursorStore(db)
        col2 = collector(tmp_path, base, second, store=store2, max_pages=5)
        r2 = await col2.poll_account(str(CITY))
        r3 = await col2.poll_account(str(CITY))
        await col2.close()
        store2.close()
    assert r2.published == 10 + 3 and r3.published == 0
    got = ids(first) + ids(second)
    assert Counter(got).most_common(1)[0][1] == 1, "duplicates across the restart"
    assert set(got) == {str(p.id) for p in fw.by_user[CITY]}, "gap across the restart"
    assert {str(p.id) for p in newer} <= set(ids(second))


async def test_pinned_old_post_neither_stops_paging_nor_repeats(tmp_path: Path) -> None:
    fw = world(0)
    pinned = fw.add_post(CITY, "置顶：政务服务热线12345", pinned=True)
    for _ in range(5):
        fw.add_post(CITY)
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        await col.poll_account(str(CITY))
        burst = [fw.add_post(CITY) for _ in range(12)]  # more than a page of new posts
        r = await col.poll_account(str(CITY))
        await col.close()
    assert r.published == 12
    got = ids(sink)
    assert got.count(str(pinned.id)) == 1
    assert {str(p.id) for p in burst} <= set(got) and len(got) == len(set(got)) == 18


async def test_long_text_comments_and_repost_list(tmp_path: Path) -> None:
    fw = world(0)
    post = fw.add_post(CITY, "关于今冬明春供暖保障工作的通知，全文较长" * 3, long=True)
    c1 = fw.add_comment(post, NETIZEN, "请问什么时候开始供暖？")
    reply = fw.add_comment(post, CITY, "回复@测试网友A:12月1日起", reply_to=c1)
    more = [fw.add_comment(post, NETIZEN, f"第{i}条评论") for i in range(7)]
    district_repost = fw.add_repost(post, DISTRICT)
    netizen_reposts = [fw.add_repost(post, NETIZEN) for _ in range(6)]
    chain = fw.add_repost(district_repost, NETIZEN)  # a repost of the district's repost
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink)
        await col.poll_account(str(CITY))
        await col.poll_account(str(DISTRICT))
        await col.close()
    objs = sink.objects()
    by_id = {str(o.get("idstr") or o["id"]): o for o in objs}
    assert by_id[str(post.id)]["longTextContent"].endswith("（全文）")
    comment_ids = {str(c.id) for c in (c1, reply, *more)}
    assert comment_ids <= set(by_id)
    for cid in comment_ids:
        ev = normalize_line(orjson.dumps(by_id[cid]), collected_at=AS_OF)
        assert ev.kind == "comment" and ev.post_id == str(post.id) and ev.owner_id == str(CITY)
    assert normalize_line(orjson.dumps(by_id[str(reply.id)]),
                          collected_at=AS_OF).reply_to_id == str(c1.id)
    repost_ids = {str(r.id) for r in (district_repost, *netizen_reposts, chain)}
    assert repost_ids <= set(by_id)
    ev = normalize_line(orjson.dumps(by_id[str(chain.id)]), collected_at=AS_OF)
    assert ev.kind == "repost" and ev.root_id == str(post.id) and ev.owner_id == str(CITY)
    assert len(objs) == len(by_id)  # no duplicates although the district's poll saw them too
    assert fw.hits["/statuses/extend"] == 1


async def test_sink_failure_commits_nothing(tmp_path: Path) -> None:
    fw = world(12)
    async with fw.serve() as base:
        sink = MemorySink()
        sink.fail_next = 1
        col = collector(tmp_path, base, sink)
        r1 = await col.poll_account(str(CITY))
        assert r1.error and "ConnectionError" in r1.error and not sink.items
        r2 = await col.poll_account(str(CITY))
        await col.close()
    assert r2.published == 12 and len(set(ids(sink))) == 12


async def test_comments_are_followed_when_counts_grow(tmp_path: Path) -> None:
    fw = world(0)
    post = fw.add_post(CITY)
    async with fw.serve() as base:
        sink = MemorySink()
        col = collector(tmp_path, base, sink, refresh_pages=2)
        await col.poll_account(str(CITY))
        assert fw.hits["/comments/hotflow"] == 0  # no comments yet: no request
        for _ in range(12):  # hot order shifts pages while we read: seen ids absorb it
            fw.add_comment(post, NETIZEN)
        for _ in range(15):  # the post falls to page 2; refresh pages still see it
            fw.add_post(CITY)
        fw.add_comment(post, NETIZEN)
        await col.poll_account(str(CITY))
        await col.poll_account(str(CITY))
        await col.close()
    comments = [o for o in sink.objects() if "status" in o]
    assert {c["id"] for c in comments} == {str(c.id) for c in post.comments}
    assert len(comments) == 13
