"""Weibo open API v2 with an access token: timelines, comments, repost lists.

Endpoints (base URL ``MW_WEIBO_API_URL``, default https://api.weibo.com):

* ``/2/statuses/user_timeline.json?uid=&count=&since_id=&max_id=`` → ``{"statuses": [...]}``
* ``/2/comments/show.json?id=&count=&since_id=&max_id=`` → ``{"comments": [...]}``
  (each comment embeds its ``status``)
* ``/2/statuses/repost_timeline.json?id=&count=&since_id=&max_id=`` → ``{"reposts": [...]}``

All three are newest first and take ``since_id`` (only newer) and ``max_id`` (this id
and older), so paging is gap-free: page *n+1* asks for ``max_id = min(id on page n) - 1``.

Errors come as ``{"error", "error_code", "request"}`` bodies (HTTP 400/403). Detected:

* expired / invalid credentials → :class:`AuthExpired`: 21301 (auth failed), 21314
  (token used), 21315 (token expired), 21316 (token revoked), 21317 (token rejected),
  21319 (accessor revoked), 21327 (expired_token), 21332 (invalid_access_token),
  21501 (token missing), and any 401;
* rate limits → retried with backoff like a 429: 10022 (IP), 10023 (user), 10024 (user
  per API);
* anything else → a failed poll (``HttpError``), cursor unchanged.
"""

from __future__ import annotations

from typing import Any

from matrixwatch.collectors.base import (
    AuthExpired,
    HttpError,
    MalformedResponse,
    RetryableError,
    Sink,
)
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.engine import Entry, Page, Tracked, WeiboCollector, as_int_id
from matrixwatch.collectors.http import Fetcher, Response

SOURCE = "weibo_api"
AUTH_ERRORS = frozenset({21301, 21314, 21315, 21316, 21317, 21319, 21327, 21332, 21501})
RATE_ERRORS = frozenset({10022, 10023, 10024})
PAGE_SIZE = 100


def api_error(r: Response) -> None:
    """Raise the typed error an open-API error body stands for (inside the retry loop)."""
    if r.status < 400 and b"error_code" not in r.content[:512]:
        return
    try:
        js = r.json()
    except MalformedResponse:
        if r.status >= 400:
            raise HttpError(f"HTTP {r.status}") from None
        raise
    code = js.get("error_code") if isinstance(js, dict) else None
    if code is None:
        if r.status >= 400:
            raise HttpError(f"HTTP {r.status}")
        return
    try:
        code = int(code)
    except (TypeError, ValueError):
        raise MalformedResponse(f"bad error_code {str(code)[:20]!r}") from None
    msg = f"error_code {code}: {str(js.get('error', ''))[:80]}"
    if code in AUTH_ERRORS:
        raise AuthExpired(msg)
    if code in RATE_ERRORS:
        raise RetryableError(f"api_{code}")
    raise HttpError(msg)


class WeiboApiCollector(WeiboCollector):
    """Polls registry accounts through the open API (needs ``MW_WEIBO_TOKEN``)."""

    def __init__(
        self, settings: Any, sink: Sink, store: CursorStore, *, fetcher: Fetcher | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(settings, sink, store, source=SOURCE, comments_ordered=True)
        self.token = token if token is not None else settings.token()
        self.fetcher = fetcher or Fetcher.from_settings(SOURCE, settings)
        self.base = settings.weibo_api_url.rstrip("/")

    async def close(self) -> None:
        await self.fetcher.close()

    async def _list(self, path: str, key: str, params: dict[str, Any], cursor: Any,
                    stop_at: int | None, *, since: bool = True) -> Page:
        if not self.token:
            raise AuthExpired("no access token configured (MW_WEIBO_TOKEN)")
        q = {**params, "access_token": self.token, "count": PAGE_SIZE}
        if since and stop_at is not None:
            q["since_id"] = stop_at
        if cursor is not None:
            q["max_id"] = cursor
        r = await self.fetcher.get(self.base + path, q, check=api_error)
        js = r.json()
        items = js.get(key) if isinstance(js, dict) else None
        if not isinstance(items, list):
            raise MalformedResponse(f"{path}: no {key!r} list")
        entries: list[Entry] = []
        for o in items:
            if not isinstance(o, dict):
                raise MalformedResponse(f"{path}: item is not an object")
            entries.append((as_int_id(o.get("idstr") or o.get("id")), o))
        if not entries:
            return Page([], None)
        low = min(i for i, _ in entries)
        return Page(entries, low - 1 if low > 0 else None)

    async def timeline_page(self, uid: str, cursor: Any, stop_at: int | None) -> Page:
        # No since_id here: the first page must show recent posts even when nothing is
        # new, because their comment and repost counts drive the follow-up crawls.
        return await self._list("/2/statuses/user_timeline.json", "statuses", {"uid": uid},
                                cursor, stop_at, since=False)

    async def comments_page(self, post: Tracked, cursor: Any, stop_at: int | None) -> Page:
        page = await self._list("/2/comments/show.json", "comments", {"id": post.post_id},
                                cursor, stop_at)
        for _, c in page.entries:  # comments/show embeds the status; make sure of it
            if not isinstance(c.get("status"), dict):
                c["status"] = {"id": str(post.post_id), "user": post.post.get("user")}
        return page

    async def reposts_page(self, post: Tracked, cursor: Any, stop_at: int | None) -> Page:
        return await self._list("/2/statuses/repost_timeline.json", "reposts",
                                {"id": post.post_id}, cursor, stop_at)
