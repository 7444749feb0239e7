"""Cursor-driven paging shared by the Weibo sources, and the per-account poll loop.

Two crawl shapes cover every Weibo list we read:

* :func:`crawl_newest` — newest-first lists whose ids grow with time (a timeline, the
  open API's comments, any repost list). It pages back until it reaches the newest id
  already published (the *watermark*), publishes what is newer, and only then moves the
  watermark. If it is interrupted (a ban, a crash, the page budget) the position inside
  the backfill is saved as a *pending* cursor and the next run continues from there
  before it looks at the top again: nothing in between is skipped.
* :func:`crawl_all` — lists in no id order (m.weibo.cn ``hotflow`` is sorted by heat):
  read them to the end, bounded, and rely on the seen-id set.

Each page is published and then committed (cursor + seen ids, one SQLite transaction)
before the next is fetched, so a restart resumes at the last acknowledged page.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from matrixwatch.collectors import metrics
from matrixwatch.collectors.base import (
    CollectorError,
    HealthTracker,
    Item,
    MalformedResponse,
    Sink,
    describe,
    now_iso,
)
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.streams.counts import parse_count
from matrixwatch.streams.weibo_time import parse_weibo_time

log = logging.getLogger(__name__)

Entry = tuple[int, dict[str, Any]]  # (numeric id, object to publish)


@dataclass
class Page:
    """One fetched page: entries in page order, and the cursor of the next (older) page."""

    entries: list[Entry]
    next: Any | None = None


FetchPage = Callable[[Any | None, int | None], Awaitable[Page]]
Enrich = Callable[[list[Entry]], Awaitable[list[Entry]]]


def as_int_id(v: object, what: str = "id") -> int:
    """Weibo ids arrive as int or digit strings; anything else means a malformed page."""
    if type(v) is int and v >= 0:
        return v
    if type(v) is str and v.isascii() and v.isdigit() and len(v) <= 32:
        return int(v)
    raise MalformedResponse(f"bad {what}: {str(v)[:40]!r}")


class Publisher:
    """Sends new objects to the sink, then commits cursors and seen ids together."""

    def __init__(self, source: str, sink: Sink, store: CursorStore) -> None:
        self.source = source
        self.sink = sink
        self.store = store
        self.published = 0
        self.duplicates_skipped = 0
        # Ids being published by a concurrent poll (the same repost is in its author's
        # timeline and in its root's repost list): skipped here, retried by that poll's
        # own cursor if its send fails.
        self._inflight: dict[str, set[str]] = {}

    async def publish(
        self,
        scope: str,
        entries: Sequence[Entry],
        cursors: dict[str, dict[str, Any] | None] | None = None,
        *,
        kind: str = "object",
        enrich: Enrich | None = None,
        seen_scope: str | None = None,
    ) -> int:
        """Publish the entries not seen yet under ``seen_scope`` (default ``scope``).

        Cursors live per list (``scope``), seen ids per object type (``seen_scope``): the
        same repost shows up in its author's timeline and in the root's repost list.
        """
        seen_scope = seen_scope or scope
        ids = [str(i) for i, _ in entries]
        inflight = self._inflight.setdefault(seen_scope, set())
        fresh = self.store.unseen(self.source, seen_scope, ids) - inflight
        todo: list[Entry] = []
        taken: set[str] = set()
        for i, obj in entries:
            s = str(i)
            if s in fresh and s not in taken:
                taken.add(s)
                todo.append((i, obj))
        self.duplicates_skipped += len(entries) - len(todo)
        inflight |= taken
        try:
            if todo and enrich is not None:
                todo = await enrich(todo)
            if todo:
                now = datetime.now(tz=UTC)
                as_of = now_iso(now)
                await self.sink.send([Item.of(o, as_of=as_of, kind=kind) for _, o in todo])
                metrics.EVENTS.labels(source=self.source, kind=kind).inc(len(todo))
                _observe_delay(self.source, (o for _, o in todo), now)
            self.store.commit(self.source, cursors, [(seen_scope, str(i)) for i, _ in todo])
        finally:
            inflight -= taken
        self.published += len(todo)
        return len(todo)


def _observe_delay(source: str, objs: Iterable[dict[str, Any]], now: datetime) -> None:
    hist = metrics.EVENT_DELAY.labels(source=source)
    for o in objs:
        ts = o.get("created_at")
        if isinstance(ts, str):
            with contextlib.suppress(ValueError):
                hist.observe(max(0.0, (now - parse_weibo_time(ts, now)).total_seconds()))


async def crawl_newest(
    pub: Publisher,
    scope: str,
    fetch: FetchPage,
    *,
    max_pages: int,
    backfill_pages: int,
    kind: str = "object",
    enrich: Enrich | None = None,
    seen_scope: str | None = None,
) -> tuple[int, Any | None]:
    """Publish everything newer than the scope's watermark; see the module docstring.

    Returns (published, tail): ``tail`` is the cursor after the last page read when the
    crawl stopped at the watermark (older pages exist), else None.

    State in the cursor store under ``scope``::

        {"newest": <id or null>, "pending": null | {"cursor", "stop_at", "top", "depth"}}

    ``fetch(cursor, stop_at)`` gets ``None`` for the first page.
    """
    st = pub.store.get(pub.source, scope) or {}
    newest: int | None = st.get("newest")
    pending: dict[str, Any] | None = st.get("pending")
    budget = max_pages
    published = 0
    fresh_done = False
    tail: Any | None = None
    while budget > 0:
        if pending:
            cursor, stop_at = pending["cursor"], pending["stop_at"]
            top, depth = int(pending["top"]), int(pending.get("depth", 0))
        elif fresh_done:
            break
        else:
            cursor, stop_at, top, depth = None, newest, newest or 0, 0
            fresh_done = True
        while budget > 0:
            page = await fetch(cursor, stop_at)
            budget -= 1
            depth += 1
            ids = [i for i, _ in page.entries]
            new = [e for e in page.entries if stop_at is None or e[0] > stop_at]
            top = max([top, *ids])
            reached = stop_at is not None and bool(ids) and ids[-1] <= stop_at
            end = (page.next is None or not ids or reached
                   or (stop_at is None and depth >= backfill_pages))
            if end:
                newest, pending = (top or newest), None
                tail = page.next if reached else None
            else:
                pending = {"cursor": page.next, "stop_at": stop_at, "top": top, "depth": depth}
            state = {"newest": newest, "pending": pending}
            published += await pub.publish(scope, new, {scope: state}, kind=kind, enrich=enrich,
                                           seen_scope=seen_scope)
            if end:
                break
            cursor = page.next
    return published, tail


async def crawl_all(
    pub: Publisher,
    scope: str,
    fetch: FetchPage,
    *,
    max_pages: int,
    kind: str = "object",
    seen_scope: str | None = None,
) -> tuple[int, bool]:
    """Read an unordered list to its end, ``max_pages`` per run; seen ids de-duplicate.

    If the page budget runs out, the next page's cursor is saved under ``scope`` and
    the next run continues from it, so long lists are covered over several runs.
    Returns (published, complete: this run reached the end of the list).
    """
    st = pub.store.get(pub.source, scope) or {}
    cursor: Any | None = st.get("pending")
    published = 0
    for _ in range(max_pages):
        page = await fetch(cursor, None)
        end = page.next is None or not page.entries
        state = {"pending": None if end else page.next}
        published += await pub.publish(scope, page.entries, {scope: state}, kind=kind,
                                       seen_scope=seen_scope)
        if end:
            return published, True
        cursor = page.next
    return published, False


# --------------------------------------------------------------------------- polls


@dataclass
class PollResult:
    account_id: str
    published: int = 0
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Tracked:
    """A post whose comments and reposts are followed for ``track_window`` seconds."""

    post: dict[str, Any]
    post_id: int
    comments: int
    reposts: int
    created: float


@dataclass
class WeiboCollector:
    """The poll of one account: timeline, then comments and reposts of recent posts.

    Subclasses supply the endpoint-specific page fetchers; everything about cursors,
    politeness, de-duplication and health is here, once.
    """

    settings: Any
    sink: Sink
    store: CursorStore
    source: str = "weibo"
    comments_ordered: bool = True  # False: comments come in no id order (crawl_all)
    health: HealthTracker = field(init=False)
    pub: Publisher = field(init=False)

    def __post_init__(self) -> None:
        self.pub = Publisher(self.source, self.sink, self.store)
        self.health = HealthTracker(self.sink, self.source, self.settings.failure_threshold)

    # --- endpoint hooks -----------------------------------------------------------------
    async def timeline_page(self, uid: str, cursor: Any, stop_at: int | None) -> Page:
        raise NotImplementedError

    async def comments_page(self, post: Tracked, cursor: Any, stop_at: int | None) -> Page:
        raise NotImplementedError

    async def reposts_page(self, post: Tracked, cursor: Any, stop_at: int | None) -> Page:
        raise NotImplementedError

    async def enrich_posts(self, entries: list[Entry]) -> list[Entry]:
        return entries

    async def close(self) -> None:
        """Release HTTP clients."""

    # --- the poll -------------------------------------------------------------------
    async def poll_account(self, uid: str) -> PollResult:
        """One poll; never raises for a source failure (it is counted and reported).

        The log line of a failure comes from ``self.health``, which rate-limits it per
        source: one line per failed poll would be hundreds per round when a host is down.
        Cancellation (shutdown) is not a failure and propagates.
        """
        t0 = time.monotonic()
        before = self.pub.published
        try:
            await self._poll(uid)
        except Exception as e:
            # Source faults are expected; anything else is a bug or an unexpected library
            # error, counted all the same but logged with its traceback.
            expected = isinstance(e, CollectorError | OSError)
            await self.health.failure(e, uid, unexpected=not expected)
            return PollResult(uid, self.pub.published - before, describe(e),
                              time.monotonic() - t0)
        await self.health.success()
        return PollResult(uid, self.pub.published - before, None, time.monotonic() - t0)

    async def _poll(self, uid: str) -> None:
        s = self.settings
        observed: dict[int, dict[str, Any]] = {}
        last: list[dict[str, Any]] = []  # the last post of the last page read

        async def fetch(cursor: Any, stop_at: int | None) -> Page:
            page = await self.timeline_page(uid, cursor, stop_at)
            for i, obj in page.entries:
                observed.setdefault(i, obj)
            if page.entries:
                last[:] = [page.entries[-1][1]]
            return page

        _, tail = await crawl_newest(
            self.pub, f"timeline:{uid}", fetch, max_pages=s.max_pages,
            backfill_pages=s.backfill_pages, kind="status", enrich=self.enrich_posts,
            seen_scope="status")
        # Read a little further than the watermark: comments and reposts keep coming on
        # posts published before this poll, and the timeline is where their counts show.
        horizon = time.time() - s.track_window
        ref = datetime.now(tz=UTC)
        for _ in range(s.refresh_pages):
            if tail is None or not last or _created(last[0], ref) < horizon:
                break
            page = await fetch(tail, None)
            tail = page.next
        await self._follow_up(uid, observed)

    async def _follow_up(self, uid: str, observed: dict[int, dict[str, Any]]) -> None:
        """Comments and reposts of the account's recent posts whose counts went up."""
        s = self.settings
        now = time.time()
        ref = datetime.now(tz=UTC)
        prefix = f"track:{uid}:"
        for scope, st in self.store.scopes(self.source, prefix):
            if st.get("t", now) < now - s.track_window:  # out of the window: forget it
                pid = scope[len(prefix):]
                self.store.commit(self.source, {scope: None, f"reposts:{pid}": None,
                                                f"comments:{pid}": None})
        for pid, post in sorted(observed.items()):
            created = _created(post, ref)
            if created < now - s.track_window:
                continue
            scope = f"{prefix}{pid}"
            st = self.store.get(self.source, scope) or {"c": 0, "r": 0, "t": created}
            t = Tracked(post, pid, _count(post.get("comments_count")),
                        _count(post.get("reposts_count")), created)
            if s.comment_pages and t.comments > st["c"]:
                complete, new = await self._comments(t)
                st["n"] = known = st.get("n", 0) + new  # comments of this post published
                if complete and known >= t.comments:
                    st["c"], st["short"] = t.comments, 0
                else:
                    # Fewer comments than the counter says: paging shifted under us (hot
                    # order) or the run was cut short. Look again next poll, a few times;
                    # Weibo's counters also include hidden comments, so give up after 3.
                    st["short"] = st.get("short", 0) + 1
                    st["c"] = t.comments if st["short"] >= 3 else min(known, t.comments - 1)
                self.store.commit(self.source, {scope: st})
            if s.repost_pages and t.reposts > st["r"]:
                await crawl_newest(
                    self.pub, f"reposts:{pid}",
                    lambda c, stop, t=t: self.reposts_page(t, c, stop),
                    max_pages=s.repost_pages, backfill_pages=10**9, kind="repost",
                    seen_scope="status")
                rst = self.store.get(self.source, f"reposts:{pid}") or {}
                if not rst.get("pending"):  # cut short: keep the old count, resume next poll
                    st["r"] = t.reposts
                self.store.commit(self.source, {scope: st})
            if not self.store.get(self.source, scope):
                self.store.commit(self.source, {scope: st})

    async def _comments(self, t: Tracked) -> tuple[bool, int]:
        """Crawl a post's comments: (read to the end, how many new were published)."""
        s = self.settings

        async def fetch(c: Any, stop: int | None) -> Page:
            return await self.comments_page(t, c, stop)

        if self.comments_ordered:
            st_before = self.store.get(self.source, f"comments:{t.post_id}") or {}
            n, _ = await crawl_newest(self.pub, f"comments:{t.post_id}", fetch,
                                      max_pages=s.comment_pages, backfill_pages=10**9,
                                      kind="comment", seen_scope="comment")
            st = self.store.get(self.source, f"comments:{t.post_id}") or st_before
            return not st.get("pending"), n
        n, complete = await crawl_all(self.pub, f"comments:{t.post_id}", fetch,
                                      max_pages=s.comment_pages, kind="comment",
                                      seen_scope="comment")
        return complete, n


def _created(post: dict[str, Any], ref: datetime) -> float:
    """A post's created_at as epoch seconds; unknown/unreadable → now (keep tracking)."""
    try:
        return parse_weibo_time(str(post.get("created_at", "")), ref).timestamp()
    except ValueError:
        return ref.timestamp()


def _count(v: object) -> int:
    try:
        return parse_count(v) or 0
    except ValueError:
        return 0


def post_stub(post: dict[str, Any]) -> dict[str, Any]:
    """The commented/reposted post as embedded into comments: what normalize needs."""
    user = post.get("user") if isinstance(post.get("user"), dict) else {}
    stub: dict[str, Any] = {"id": str(post.get("idstr") or post.get("id")),
                            "user": {"id": user.get("id")}}
    for k in ("mid", "bid", "mblogid", "created_at"):
        if post.get(k) is not None:
            stub[k] = post[k]
    if user.get("screen_name"):
        stub["user"]["screen_name"] = user["screen_name"]
    return stub
