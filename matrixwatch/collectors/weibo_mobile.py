"""m.weibo.cn: account timelines, long text, hot-flow comments and repost lists.

Endpoints (base URL ``MW_WEIBO_MOBILE_URL``, default https://m.weibo.cn):

* ``/api/container/getIndex?type=uid&value=<uid>&containerid=107603<uid>[&since_id=]``
  — the timeline, newest first; ``data.cards[]`` with ``card_type 9`` posts (``card_type
  11`` groups are unwrapped), next page cursor ``data.cardlistInfo.since_id``.
* ``/statuses/extend?id=<id>`` — full text of ``isLongText`` posts (``longTextContent``).
* ``/comments/hotflow?id=<id>&mid=<id>&max_id_type=0[&max_id=]`` — comments, sorted by
  heat (so read to the end and de-duplicated by id); stop when ``max_id`` is 0.
* ``/api/statuses/repostTimeline?id=<id>&page=N`` — the repost list, newest first,
  ``data.max`` pages (MediaCrawler #569: peers cannot get it).

Envelopes: ``ok: 1`` data; ``ok: 0`` end of data ("这里还没有内容"); ``ok: -100`` login
required. What counts as an expired cookie: a 3xx to passport.weibo.cn / a login URL, a
401, ``ok: -100``, or an HTML login page where JSON was expected.

Comments from hot-flow carry no ``status``; each is published with the post embedded
as ``"status": {"id", "user": {"id"}}`` so the pipeline can attribute it. Inline
sub-replies (``comments[]``) are published as comments of their own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from matrixwatch.collectors.base import (
    AuthExpired,
    HttpError,
    MalformedResponse,
    Sink,
)
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.engine import (
    Entry,
    Page,
    Tracked,
    WeiboCollector,
    as_int_id,
    post_stub,
)
from matrixwatch.collectors.http import Fetcher

SOURCE = "weibo_mobile"
_END = object()


class WeiboMobileCollector(WeiboCollector):
    """Polls registry accounts through m.weibo.cn (optional cookie)."""

    def __init__(
        self, settings: Any, sink: Sink, store: CursorStore, *, fetcher: Fetcher | None = None,
        cookie: str | None = None,
    ) -> None:
        super().__init__(settings, sink, store, source=SOURCE, comments_ordered=False)
        cookie = cookie if cookie is not None else settings.cookie()
        headers = {"Referer": settings.weibo_mobile_url + "/", "MWeibo-Pwa": "1",
                   "X-Requested-With": "XMLHttpRequest"}
        if cookie:
            headers["Cookie"] = cookie
        self.fetcher = fetcher or Fetcher.from_settings(SOURCE, settings, headers=headers)
        self.base = settings.weibo_mobile_url.rstrip("/")

    async def close(self) -> None:
        await self.fetcher.close()

    # --- transport -------------------------------------------------------------------
    async def _api(self, path: str, params: dict[str, Any]) -> Any:
        """``data`` of an ``ok: 1`` answer, or ``_END`` for ``ok: 0``."""
        r = await self.fetcher.get(self.base + path, params)
        if r.status >= 400:
            raise HttpError(f"HTTP {r.status} from {path}")
        head = r.content[:2048].lower()
        if b"<html" in head or b"<!doctype" in head:
            if b"passport" in head or b"login" in head or "登录".encode() in r.content[:8192]:
                raise AuthExpired(f"login page instead of JSON from {path}")
            raise MalformedResponse(f"HTML instead of JSON from {path}")
        js = r.json()
        if not isinstance(js, dict):
            raise MalformedResponse(f"{path}: not an object")
        ok = js.get("ok")
        if ok == 1 or ok == "1":
            data = js.get("data")
            if not isinstance(data, dict):
                raise MalformedResponse(f"{path}: ok:1 without data")
            return data
        if ok == 0 or ok == "0":
            return _END
        if ok == -100 or ok == "-100":
            raise AuthExpired(f"{path}: ok:-100 (login required)")
        raise MalformedResponse(f"{path}: unexpected ok={str(ok)[:20]!r}")

    # --- timeline ---------------------------------------------------------------------
    async def timeline_page(self, uid: str, cursor: Any, stop_at: int | None) -> Page:
        params: dict[str, Any] = {"type": "uid", "value": uid, "containerid": f"107603{uid}"}
        if cursor:
            params["since_id"] = cursor
        data = await self._api("/api/container/getIndex", params)
        if data is _END:
            return Page([], None)
        cards = data.get("cards")
        if not isinstance(cards, list):
            raise MalformedResponse("getIndex: data.cards is not a list")
        entries: list[Entry] = []
        for card in cards:
            if not isinstance(card, dict):
                raise MalformedResponse("getIndex: card is not an object")
            group = card.get("card_group") if card.get("card_type") == 11 else None
            for c in group if isinstance(group, list) else [card]:
                mblog = c.get("mblog") if isinstance(c, dict) else None
                if isinstance(mblog, dict):
                    entries.append((as_int_id(mblog.get("idstr") or mblog.get("id")), mblog))
        info = data.get("cardlistInfo")
        nxt = info.get("since_id") if isinstance(info, dict) else None
        if nxt in (0, "0", "", None):
            nxt = None
        elif not isinstance(nxt, int | str):
            raise MalformedResponse("getIndex: bad since_id")
        return Page(entries, nxt)

    async def enrich_posts(self, entries: list[Entry]) -> list[Entry]:
        """Fetch the full text of truncated posts (``isLongText``) before publishing.

        A failed long-text fetch fails the poll: publishing the stub would mark the
        post seen with its text cut off.
        """
        out = []
        for i, mblog in entries:
            if mblog.get("isLongText") and not mblog.get("longTextContent"):
                data = await self._api("/statuses/extend", {"id": str(i)})
                if data is not _END:
                    lt = data.get("longTextContent")
                    if isinstance(lt, str) and lt:
                        mblog = {**mblog, "longTextContent": lt}
            out.append((i, mblog))
        return out

    # --- comments -------------------------------------------------------------------
    async def comments_page(self, post: Tracked, cursor: Any, stop_at: int | None) -> Page:
        pid = str(post.post_id)
        params: dict[str, Any] = {"id": pid, "mid": pid, "max_id_type": 0}
        if cursor:
            params["max_id"], params["max_id_type"] = cursor
        data = await self._api("/comments/hotflow", params)
        if data is _END:
            return Page([], None)
        items = data.get("data")
        if not isinstance(items, list):
            raise MalformedResponse("hotflow: data.data is not a list")
        stub = post_stub(post.post)
        entries: list[Entry] = []
        for c in items:
            if not isinstance(c, dict):
                raise MalformedResponse("hotflow: comment is not an object")
            subs = c.get("comments")
            top = {k: v for k, v in c.items() if k != "comments"}
            entries.append((as_int_id(top.get("id"), "comment id"), {**top, "status": stub}))
            for sub in subs if isinstance(subs, list) else ():
                if isinstance(sub, dict) and sub.get("id") is not None:
                    entries.append((as_int_id(sub.get("id"), "comment id"),
                                    {**sub, "status": stub}))
        max_id = data.get("max_id")
        nxt = None
        if max_id not in (0, "0", None, ""):
            nxt = [as_int_id(max_id, "max_id"), data.get("max_id_type", 0)]
        return Page(entries, nxt)

    # --- reposts --------------------------------------------------------------------
    async def reposts_page(self, post: Tracked, cursor: Any, stop_at: int | None) -> Page:
        page_no = int(cursor or 1)
        data = await self._api("/api/statuses/repostTimeline",
                               {"id": str(post.post_id), "page": page_no})
        if data is _END:
            return Page([], None)
        items = data.get("data")
        if not isinstance(items, list):
            raise MalformedResponse("repostTimeline: data.data is not a list")
        root = _root_of(post.post)
        via_repost = isinstance(post.post.get("retweeted_status"), dict)
        entries: list[Entry] = []
        for m in items:
            if not isinstance(m, dict):
                raise MalformedResponse("repostTimeline: item is not an object")
            if not isinstance(m.get("retweeted_status"), dict):
                m = {**m, "retweeted_status": root}
            if via_repost and m.get("pid") in (None, "", 0, "0"):
                m = {**m, "pid": str(post.post_id)}  # a repost of the account's repost
            entries.append((as_int_id(m.get("idstr") or m.get("id")), m))
        pages = data.get("max")
        more = isinstance(pages, int) and page_no < pages
        return Page(entries, page_no + 1 if more and entries else None)


def _root_of(post: dict[str, Any]) -> dict[str, Any]:
    """The root original of a repost list: the post itself, or its own root."""
    rt = post.get("retweeted_status")
    if isinstance(rt, dict):
        return rt
    keep = ("id", "idstr", "mid", "bid", "created_at", "text", "raw_text", "user",
            "longTextContent")
    return {k: post[k] for k in keep if k in post}


async def collect_accounts(collector: WeiboCollector, uids: list[str],
                           concurrency: int = 2) -> list[Any]:
    """One poll of each account (the `collect weibo` one-off run)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(uid: str) -> Any:
        async with sem:
            return await collector.poll_account(uid)

    return list(await asyncio.gather(*(one(u) for u in uids)))
