"""The console's one small read interface over the pipeline store, and its SQLite side.

The console never writes the pipeline store. It needs a handful of reads, each bounded
(a limit, a time range or an id list), so the same page works on the embedded SQLite
store and on Elasticsearch (``es.py``). Everything richer (open linkage tasks, response
tables, stale accounts) is derived from these reads in ``board.py``.

Times going in and out are epoch seconds of event time, except the documents themselves,
which are returned as stored (ISO-8601 with offset).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FEED_KINDS: tuple[str, ...] = ("post", "repost", "comment")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class FeedFilter:
    """Live-feed filter. ``owners`` is resolved from unit/level/account by the caller."""

    sentiment: str | None = "negative"
    platform: str | None = None
    kind: str | None = None
    owners: tuple[str, ...] | None = None  # the matrix accounts the events are about
    author: str | None = None  # or posted by this account
    q: str | None = None
    before: float | None = None  # paging: events strictly older than this
    limit: int = 50


@dataclass(frozen=True)
class AlertFilter:
    severity: str | None = None
    rule: str | None = None
    account: str | None = None
    before: float | None = None
    limit: int = 100


class ConsoleQueries(ABC):
    """Bounded reads the console makes (sync; the app calls them in a thread)."""

    # --- alerts -------------------------------------------------------------------------
    @abstractmethod
    def alerts(self, f: AlertFilter) -> list[dict[str, Any]]:
        """Newest first (by event time)."""

    @abstractmethod
    def alerts_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def alert_cursor(self) -> str:
        """An opaque position: alerts stored after it are returned by alerts_after."""

    @abstractmethod
    def alerts_after(self, cursor: str, limit: int = 200) -> tuple[list[dict[str, Any]], str]:
        """Alerts stored since ``cursor`` (may repeat some; callers de-duplicate by id)."""

    def valid_cursor(self, cursor: str) -> bool:
        """Whether ``cursor`` could have come from alert_cursor: the stream refuses others
        (400) before it starts, instead of failing inside it."""
        return True

    # --- events ---------------------------------------------------------------------------
    @abstractmethod
    def latest_event_time(self) -> float | None: ...

    @abstractmethod
    def feed(self, f: FeedFilter) -> list[dict[str, Any]]:
        """Events newest first."""

    @abstractmethod
    def posts_by(self, platform_owners: Sequence[tuple[str, str]], since: float,
                 until: float, limit: int = 2000) -> list[dict[str, Any]]:
        """Original posts (kind=post) by these accounts with since <= created_at < until."""

    @abstractmethod
    def reposts_of(self, platform: str, root_ids: Sequence[str], since: float
                   ) -> list[dict[str, Any]]:
        """Reposts of these roots created at or after ``since``: platform, id, account_id,
        root_id, created_at."""

    @abstractmethod
    def series(self, platform: str | None, owners: Sequence[str], since: float, until: float,
               bucket: int) -> list[tuple[float, int, int]]:
        """(bucket start, events, negative events) about these owners, by event time."""

    @abstractmethod
    def last_posts(self) -> dict[tuple[str, str], float]:
        """Latest post or repost time per (platform, author): what staleness is about."""

    # --- linkage --------------------------------------------------------------------------
    @abstractmethod
    def closed_tasks(self, since: float, until: float, limit: int = 10000
                     ) -> list[dict[str, Any]]:
        """Closed linkage tasks with since <= created_at < until, newest first."""

    @abstractmethod
    def closed_task_ids(self, platform_posts: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (platform, post id) tasks the pipeline has closed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SQLiteQueries(ConsoleQueries):
    """Reads the embedded store's file directly, read-only, one connection per thread.

    The file may not exist yet (the worker creates it): every read then returns nothing
    instead of creating an empty store under the worker's feet.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.exists():
                return None
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10.0,
                                   check_same_thread=False)
            self._local.conn = conn
        return conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._conn()
        if conn is None:
            return []
        try:
            return list(conn.execute(sql, list(params)))
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # the worker has not created the schema yet
                return []
            raise

    def _docs(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._rows(sql, params)]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- alerts -------------------------------------------------------------------------
    def alerts(self, f: AlertFilter) -> list[dict[str, Any]]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if f.severity:
            where.append("severity=?")
            params.append(f.severity)
        if f.rule:
            where.append("rule=?")
            params.append(f.rule)
        if f.account:
            where.append("account_id=?")
            params.append(f.account)
        if f.before is not None:
            where.append("ts<?")
            params.append(f.before)
        params.append(f.limit)
        return self._docs(f"SELECT doc FROM alerts WHERE {' AND '.join(where)} "
                          "ORDER BY ts DESC, id DESC LIMIT ?", params)

    def alerts_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += self._docs(f"SELECT doc FROM alerts WHERE id IN ({','.join('?' * len(chunk))})"
                              " ORDER BY ts DESC, id DESC", chunk)
        return out

    def alert_cursor(self) -> str:
        # rowid grows with every insert (alerts are never deleted), so it orders by
        # arrival, which event time does not (a linkage alert fires at a past deadline).
        rows = self._rows("SELECT coalesce(max(rowid), 0) FROM alerts")
        return str(rows[0][0] if rows else 0)

    def valid_cursor(self, cursor: str) -> bool:
        """A rowid: ASCII digits within SQLite's integers (a longer one overflowed the
        bind in the stream's first poll)."""
        if not (cursor.isascii() and cursor.isdigit()):
            return False
        digits = cursor.lstrip("0") or "0"
        return len(digits) <= 19 and int(digits) < 2**63

    def alerts_after(self, cursor: str, limit: int = 200) -> tuple[list[dict[str, Any]], str]:
        try:
            after = int(cursor)
        except ValueError:
            after = 0
        rows = self._rows("SELECT rowid, doc FROM alerts WHERE rowid>? ORDER BY rowid LIMIT ?",
                          (after, limit))
        if not rows:
            return [], str(after)
        return [json.loads(r[1]) for r in rows], str(rows[-1][0])

    # --- events ---------------------------------------------------------------------------
    def latest_event_time(self) -> float | None:
        rows = self._rows("SELECT max(ts) FROM events")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def feed(self, f: FeedFilter) -> list[dict[str, Any]]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if f.sentiment:
            where.append("sentiment_label=?")
            params.append(f.sentiment)
        if f.platform:
            where.append("platform=?")
            params.append(f.platform)
        if f.kind:
            where.append("kind=?")
            params.append(f.kind)
        who: list[str] = []
        if f.owners is not None:
            if not f.owners:
                return []
            who.append(f"owner_id IN ({','.join('?' * len(f.owners))})")
            params += list(f.owners)
        if f.author:
            who.append("account_id=?")
            params.append(f.author)
        if who:
            where.append("(" + " OR ".join(who) + ")")
        if f.q:
            where.append("json_extract(doc, '$.text') LIKE ? ESCAPE '\\'")
            params.append(_like(f.q))
        if f.before is not None:
            where.append("ts<?")
            params.append(f.before)
        params.append(f.limit)
        return self._docs(f"SELECT doc FROM events WHERE {' AND '.join(where)} "
                          "ORDER BY ts DESC, doc_id DESC LIMIT ?", params)

    def posts_by(self, platform_owners: Sequence[tuple[str, str]], since: float,
                 until: float, limit: int = 2000) -> list[dict[str, Any]]:
        by_platform: dict[str, list[str]] = {}
        for platform, owner in platform_owners:
            by_platform.setdefault(platform, []).append(owner)
        out: list[dict[str, Any]] = []
        for platform, owners in sorted(by_platform.items()):
            for i in range(0, len(owners), 500):
                chunk = owners[i:i + 500]
                out += self._docs(
                    f"SELECT doc FROM events WHERE kind='post' AND platform=? AND owner_id IN "
                    f"({','.join('?' * len(chunk))}) AND ts>=? AND ts<? ORDER BY ts DESC LIMIT ?",
                    [platform, *chunk, since, until, limit])
        out.sort(key=lambda d: d["created_at"], reverse=True)
        return out[:limit]

    def reposts_of(self, platform: str, root_ids: Sequence[str], since: float
                   ) -> list[dict[str, Any]]:
        roots = sorted(set(root_ids))
        out: list[dict[str, Any]] = []
        for i in range(0, len(roots), 500):
            chunk = roots[i:i + 500]
            rows = self._rows(
                "SELECT id, account_id, root, created FROM (SELECT id, account_id, "
                "json_extract(doc, '$.root_id') AS root, json_extract(doc, '$.created_at') "
                "AS created FROM events WHERE kind='repost' AND platform=? AND ts>=?) "
                f"WHERE root IN ({','.join('?' * len(chunk))})", [platform, since, *chunk])
            out += [{"platform": platform, "id": r[0], "account_id": r[1], "root_id": r[2],
                     "created_at": r[3]} for r in rows]
        return out

    def series(self, platform: str | None, owners: Sequence[str], since: float, until: float,
               bucket: int) -> list[tuple[float, int, int]]:
        if not owners:
            return []
        params: list[Any] = [bucket, bucket]
        where = f"owner_id IN ({','.join('?' * len(owners))}) AND ts>=? AND ts<?"
        params += [*owners, since, until]
        if platform:
            where += " AND platform=?"
            params.append(platform)
        rows = self._rows(
            "SELECT CAST(ts / ? AS INTEGER) * ?, count(*), "
            f"sum(sentiment_label='negative') FROM events WHERE {where} GROUP BY 1 ORDER BY 1",
            params)
        return [(float(r[0]), int(r[1]), int(r[2] or 0)) for r in rows]

    def last_posts(self) -> dict[tuple[str, str], float]:
        rows = self._rows("SELECT platform, account_id, max(ts) FROM events "
                          "WHERE kind IN ('post', 'repost') GROUP BY platform, account_id")
        return {(r[0], r[1]): float(r[2]) for r in rows}

    # --- linkage --------------------------------------------------------------------------
    def closed_tasks(self, since: float, until: float, limit: int = 10000
                     ) -> list[dict[str, Any]]:
        return self._docs("SELECT doc FROM linkage WHERE ts>=? AND ts<? "
                          "ORDER BY ts DESC, doc_id LIMIT ?", (since, until, limit))

    def closed_task_ids(self, platform_posts: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        keys = [f"{p}:{pid}" for p, pid in platform_posts]
        found: set[tuple[str, str]] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for (doc_id,) in self._rows(
                f"SELECT doc_id FROM linkage WHERE doc_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                platform, _, pid = doc_id.partition(":")
                found.add((platform, pid))
        return found
