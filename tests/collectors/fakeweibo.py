"""A local m.weibo.cn + open API v2 + feed server for collector tests (127.0.0.1 only).

It keeps a small synthetic world (accounts → posts → comments and reposts) and
serves it in the real response shapes: every page is built from the anonymised
templates in tests/fixtures/collectors with this world's ids, times, texts and
counts. Faults are injected on demand (a queue of one-shot faults per path) or at
random (soak test): 418, 429 with Retry-After, 500, a stalled response (timeout),
a slow but good response, a malformed page, an expired cookie (302 to passport /
``ok:-100``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import random
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from matrixwatch.streams.normalize import mid_to_bid
from matrixwatch.streams.weibo_time import CST

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "collectors"
_WD = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LOGIN_URL = "https://passport.weibo.cn/signin/welcome?entry=mweibo&r=https%3A%2F%2Fm.weibo.cn%2F"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def rfc(dt: datetime) -> str:
    dt = dt.astimezone(CST)
    return f"{_WD[dt.weekday()]} {_MON[dt.month - 1]} {dt.day:02d} {dt:%H:%M:%S} +0800 {dt.year}"


@dataclass
class FComment:
    id: int
    uid: int
    created: datetime
    text: str
    reply_to: int | None = None


@dataclass
class FPost:
    id: int
    uid: int
    created: datetime
    text: str
    long: bool = False
    pinned: bool = False
    root: FPost | None = None
    comments: list[FComment] = field(default_factory=list)
    reposts: list[FPost] = field(default_factory=list)


class FakeWeibo:
    """The world, the routes and the fault injector."""

    def __init__(self, *, page_size: int = 10, comment_page_size: int = 5,
                 repost_page_size: int = 5, end_style: str = "nosince",
                 seed: int = 1) -> None:
        self.page_size = page_size
        self.comment_page_size = comment_page_size
        self.repost_page_size = repost_page_size
        self.end_style = end_style  # "nosince" (last page has no since_id) | "ok0"
        self.rng = random.Random(seed)
        self.users: dict[int, str] = {}
        self.posts: dict[int, FPost] = {}
        self.by_user: dict[int, list[FPost]] = {}
        self.comments: dict[int, FComment] = {}
        self._next = 5_000_000_000_000_100
        self._next_comment = 4_000_000_000_000_100
        # The world's clock starts an hour before the real one: the collectors follow a
        # post's comments and reposts for a window measured on the wall clock
        # (track_window, 3 days), so a fixed date made these tests fail 3 days after it.
        self.clock = (datetime.now(tz=CST) - timedelta(hours=1)).replace(second=0,
                                                                         microsecond=0)
        self.faults: dict[str, deque[str | None]] = {}
        self.random_faults: tuple[float, tuple[str, ...]] | None = None
        self.faults_injected: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.cookie: str | None = None  # required cookie; None: anyone
        self.auth_style = "redirect"  # "redirect" | "ok-100"
        self.token = "test-token"
        self.stall_seconds = 2.0
        self.retry_after = "0"  # Retry-After of injected 429s
        self.feeds: dict[str, tuple[str, str]] = {}  # path → (content type, body)
        self.feed_etag: dict[str, str] = {}
        self._card = fixture("mweibo_getIndex_timeline.json")
        self._hot = fixture("mweibo_comments_hotflow.json")
        self._reposts = fixture("mweibo_repostTimeline.json")
        self._api_status = fixture("openapi_user_timeline.json")["statuses"][0]
        self._api_comment = fixture("openapi_comments_show.json")["comments"][0]

    # --- world ------------------------------------------------------------------------
    def add_user(self, uid: int, name: str) -> None:
        self.users[uid] = name
        self.by_user.setdefault(uid, [])

    def tick(self, seconds: float = 60.0) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def add_post(self, uid: int, text: str | None = None, *, long: bool = False,
                 pinned: bool = False, root: FPost | None = None) -> FPost:
        self._next += 1
        p = FPost(self._next, uid, self.tick(), text or f"第{self._next % 100000}号通知：某某事项",
                  long=long, pinned=pinned, root=root)
        self.posts[p.id] = p
        self.by_user.setdefault(uid, []).append(p)
        if root is not None:
            root.reposts.append(p)
        return p

    def add_comment(self, post: FPost, uid: int = 9000000101, text: str | None = None,
                    reply_to: FComment | None = None) -> FComment:
        self._next_comment += 1
        c = FComment(self._next_comment, uid, self.tick(5), text or "请问具体什么时候？",
                     reply_to.id if reply_to else None)
        post.comments.append(c)
        self.comments[c.id] = c
        return c

    def add_repost(self, post: FPost, uid: int) -> FPost:
        root = post.root or post
        r = self.add_post(uid, "转发微博", root=root)
        if post.root is not None:  # a repost of a repost: the chain is on the list of both
            post.reposts.append(r)
        return r

    def all_ids(self) -> dict[str, set[str]]:
        """Ground truth: every id the world holds, by kind."""
        return {
            "status": {str(p.id) for p in self.posts.values()},
            "comment": {str(c.id) for c in self.comments.values()},
        }

    # --- rendering --------------------------------------------------------------------
    def _user(self, uid: int) -> dict[str, Any]:
        u = copy.deepcopy(self._card["data"]["cards"][0]["mblog"]["user"])
        u["id"] = uid
        u["screen_name"] = self.users.get(uid, f"测试网友{uid % 1000}")
        return u

    def mblog(self, p: FPost, *, embed_root: bool = True) -> dict[str, Any]:
        m = copy.deepcopy(self._card["data"]["cards"][0]["mblog"])
        sid = str(p.id)
        m.update(id=sid, idstr=sid, mid=sid, bid=mid_to_bid(sid), created_at=rfc(p.created),
                 text=p.text[:20] + " ..." if p.long else p.text, isLongText=p.long,
                 user=self._user(p.uid), comments_count=len(p.comments),
                 reposts_count=len(p.reposts), attitudes_count=len(p.comments) * 2)
        if p.pinned:
            m["isTop"] = 1
            m["mblogtype"] = 2
        if p.root is not None and embed_root:
            m["retweeted_status"] = self.mblog(p.root, embed_root=False)
            m["raw_text"] = p.text
        return m

    def _comment(self, c: FComment) -> dict[str, Any]:
        t = copy.deepcopy(self._hot["data"]["data"][0])
        t.update(id=str(c.id), mid=str(c.id), rootid=str(c.reply_to or c.id),
                 created_at=rfc(c.created), text=c.text, user=self._user(c.uid),
                 comments=[], like_count=c.id % 50)
        return t

    # --- faults -------------------------------------------------------------------------
    def inject(self, path: str, *kinds: str | None) -> None:
        """Queue one-shot faults for the next requests to ``path`` (None: serve normally)."""
        self.faults.setdefault(path, deque()).extend(kinds)

    def _fault(self, path: str) -> str | None:
        q = self.faults.get(path)
        if q:
            return q.popleft()
        if self.random_faults is not None:
            rate, kinds = self.random_faults
            if self.rng.random() < rate:
                return self.rng.choice(kinds)
        return None

    async def _apply(self, kind: str, path: str) -> web.StreamResponse:
        self.faults_injected[kind] += 1
        if kind == "418":
            return web.Response(status=418, text="I'm a teapot")
        if kind == "429":
            return web.Response(status=429, text="too many",
                                headers={"Retry-After": self.retry_after})
        if kind == "500":
            return web.Response(status=500, text="internal error")
        if kind == "502":
            return web.Response(status=502, text="bad gateway")
        if kind == "timeout":
            await asyncio.sleep(self.stall_seconds)
            return web.Response(status=500, text="too late")
        if kind == "malformed":
            return web.Response(status=200, content_type="application/json",
                                text='{"ok":1,"data":{"cards":[{"card_type":9,"mblog":')
        if kind == "badshape":
            return web.json_response({"ok": 1, "data": {"cards": "nope"}})
        raise AssertionError(kind)

    def _auth_fail(self) -> web.StreamResponse:
        if self.auth_style == "redirect":
            raise web.HTTPFound(LOGIN_URL)
        return web.json_response(fixture("mweibo_ok_minus100_login.json"))

    # --- server ---------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        fault = self._fault(path)
        if fault == "slow":  # served normally, after stall_seconds
            self.faults_injected[fault] += 1
            await asyncio.sleep(self.stall_seconds)
        elif fault is not None:
            return await self._apply(fault, path)
        if self.cookie is not None and not path.startswith(("/2/", "/feed")) and \
                request.headers.get("Cookie") != self.cookie:
            return self._auth_fail()
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        r = app.router
        r.add_get("/api/container/getIndex", self.get_index)
        r.add_get("/statuses/extend", self.extend)
        r.add_get("/comments/hotflow", self.hotflow)
        r.add_get("/api/statuses/repostTimeline", self.repost_timeline)
        r.add_get("/2/statuses/user_timeline.json", self.api_timeline)
        r.add_get("/2/comments/show.json", self.api_comments)
        r.add_get("/2/statuses/repost_timeline.json", self.api_reposts)
        r.add_get("/feed/{name}", self.feed)
        return app

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

    # --- m.weibo.cn -----------------------------------------------------------------
    async def get_index(self, request: web.Request) -> web.Response:
        q = request.query
        cid = q.get("containerid", "")
        if not cid.startswith("107603"):
            return web.json_response({"ok": 0, "msg": "参数错误"})
        uid = int(cid[6:])
        posts = sorted(self.by_user.get(uid, []), key=lambda p: -p.id)
        pinned = [p for p in posts if p.pinned]
        regular = [p for p in posts if not p.pinned]
        since = q.get("since_id")
        if since:
            regular = [p for p in regular if p.id <= int(since)]
            pinned = []
        if not regular and not pinned:
            return web.json_response(fixture("mweibo_ok0_end.json"))
        page, rest = regular[: self.page_size], regular[self.page_size :]
        body = copy.deepcopy(self._card)
        tpl = body["data"]["cards"][0]
        cards = []
        for p in pinned + page:
            card = copy.deepcopy(tpl)
            card["itemid"] = f"{cid}_-_{p.id}"
            card["mblog"] = self.mblog(p)
            cards.append(card)
        body["data"]["cards"] = cards
        info = body["data"]["cardlistInfo"]
        info["containerid"] = cid
        info["total"] = len(posts)
        if rest:
            info["since_id"] = rest[0].id
        elif self.end_style == "ok0" and page:
            info["since_id"] = page[-1].id - 1
        else:
            info.pop("since_id", None)
        return web.json_response(body)

    async def extend(self, request: web.Request) -> web.Response:
        p = self.posts.get(int(request.query.get("id", "0")))
        if p is None:
            return web.json_response({"ok": 0, "msg": "不存在"})
        body = fixture("mweibo_statuses_extend.json")
        body["data"]["longTextContent"] = p.text + "（全文）"
        return web.json_response(body)

    def _hot_order(self, post: FPost) -> list[FComment]:
        top = [c for c in post.comments if c.reply_to is None]
        return sorted(top, key=lambda c: (c.id * 2654435761) % 1000003)  # "heat"

    async def hotflow(self, request: web.Request) -> web.Response:
        post = self.posts.get(int(request.query.get("id", "0")))
        if post is None or not post.comments:
            return web.json_response({"ok": 0, "msg": "还没有人评论哦~快来抢沙发！"})
        ordered = self._hot_order(post)
        start = int(request.query.get("max_id", "0") or 0)
        start = start - 1000 if start else 0
        chunk = ordered[start : start + self.comment_page_size]
        body = copy.deepcopy(self._hot)
        items = []
        for c in chunk:
            item = self._comment(c)
            item["comments"] = [self._comment(r) for r in post.comments if r.reply_to == c.id]
            items.append(item)
        body["data"]["data"] = items
        body["data"]["total_number"] = len(post.comments)
        nxt = start + self.comment_page_size
        body["data"]["max_id"] = 1000 + nxt if nxt < len(ordered) else 0
        body["data"]["max_id_type"] = 0
        return web.json_response(body)

    async def repost_timeline(self, request: web.Request) -> web.Response:
        post = self.posts.get(int(request.query.get("id", "0")))
        page = int(request.query.get("page", "1"))
        reposts = sorted(post.reposts if post else [], key=lambda r: -r.id)
        n = self.repost_page_size
        pages = max(1, -(-len(reposts) // n))
        if not reposts or page > pages:
            return web.json_response({"ok": 0, "msg": "还没有人转发哦"})
        body = copy.deepcopy(self._reposts)
        body["data"]["data"] = [self.mblog(r) for r in reposts[(page - 1) * n : page * n]]
        body["data"]["total_number"] = len(reposts)
        body["data"]["max"] = pages
        return web.json_response(body)

    # --- open API -------------------------------------------------------------------
    def _api_auth(self, request: web.Request) -> web.Response | None:
        if request.query.get("access_token") != self.token:
            return web.json_response(fixture("openapi_error_expired_token.json"), status=400)
        return None

    def _window(self, items: list[Any], request: web.Request) -> list[Any]:
        q = request.query
        since = int(q.get("since_id", "0") or 0)
        max_id = int(q.get("max_id", "0") or 0)
        count = int(q.get("count", "20"))
        out = [i for i in sorted(items, key=lambda x: -x.id)
               if i.id > since and (not max_id or i.id <= max_id)]
        return out[:count]

    def _api_status_obj(self, p: FPost, embed: bool = True) -> dict[str, Any]:
        s = copy.deepcopy(self._api_status)
        s.update(id=p.id, idstr=str(p.id), mid=str(p.id), created_at=rfc(p.created),
                 text=p.text, comments_count=len(p.comments), reposts_count=len(p.reposts))
        s["user"] = {**s["user"], "id": p.uid, "idstr": str(p.uid),
                     "screen_name": self.users.get(p.uid, "x"), "name": self.users.get(p.uid)}
        if p.root is not None and embed:
            s["retweeted_status"] = self._api_status_obj(p.root, False)
        return s

    async def api_timeline(self, request: web.Request) -> web.Response:
        if (bad := self._api_auth(request)) is not None:
            return bad
        uid = int(request.query.get("uid", "0"))
        page = self._window(self.by_user.get(uid, []), request)
        body = fixture("openapi_user_timeline.json")
        body["statuses"] = [self._api_status_obj(p) for p in page]
        body["total_number"] = len(self.by_user.get(uid, []))
        return web.json_response(body)

    async def api_comments(self, request: web.Request) -> web.Response:
        if (bad := self._api_auth(request)) is not None:
            return bad
        post = self.posts[int(request.query["id"])]
        page = self._window(post.comments, request)
        body = fixture("openapi_comments_show.json")
        out = []
        for c in page:
            o = copy.deepcopy(self._api_comment)
            o.update(id=c.id, idstr=str(c.id), mid=str(c.id), created_at=rfc(c.created),
                     text=c.text, user={"id": c.uid, "screen_name": self.users.get(c.uid, "x")},
                     status=self._api_status_obj(post, False))
            out.append(o)
        body["comments"] = out
        return web.json_response(body)

    async def api_reposts(self, request: web.Request) -> web.Response:
        if (bad := self._api_auth(request)) is not None:
            return bad
        post = self.posts[int(request.query["id"])]
        body = fixture("openapi_repost_timeline.json")
        body["reposts"] = [self._api_status_obj(r) for r in self._window(post.reposts, request)]
        return web.json_response(body)

    # --- feeds ------------------------------------------------------------------------
    async def feed(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.feeds:
            raise web.HTTPNotFound()
        ctype, text = self.feeds[name]
        etag = self.feed_etag.get(name)
        if etag and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        headers = {"ETag": etag} if etag else {}
        return web.Response(text=text, content_type=ctype, charset="utf-8", headers=headers)
