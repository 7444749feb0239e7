"""Durable collector state in SQLite: cursors, recently seen ids and hot marks.

Crawlers that keep their place in memory start over after a ban or a restart
(MediaCrawler #313). Here every cursor (``since_id``, ``max_id``, page, the newest id
already published) and every id already published is committed to SQLite right
after the sink acknowledged the batch, in one transaction: a restart resumes where
the last acknowledged batch ended, with no gap and no re-publication.

Seen ids are kept for ``retention`` seconds and pruned, so the file stays bounded.
Hot marks live here too, so that any process (an alert notifier, the CLI) can ask
the scheduler to poll an account more often.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (source, scope));
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL, scope TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (source, scope, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS hot (
    platform TEXT NOT NULL, account_id TEXT NOT NULL, until REAL NOT NULL, reason TEXT,
    PRIMARY KEY (platform, account_id));
"""


class CursorStore:
    """A small SQLite file (WAL) shared by the collectors of one process."""

    def __init__(self, path: str | Path, *, retention: float = 30 * 86400.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.retention = retention
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(_SCHEMA)
        self._last_prune = 0.0

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # --- cursors ------------------------------------------------------------------------
    def get(self, source: str, scope: str) -> dict[str, Any] | None:
        with self._lock:
            row = self.db.execute(
                "SELECT value FROM cursors WHERE source=? AND scope=?", (source, scope)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def scopes(self, source: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT scope, value FROM cursors WHERE source=? AND scope >= ? AND scope < ?",
                (source, prefix, prefix + "\uffff"),
            ).fetchall()
        return [(s, json.loads(v)) for s, v in rows]

    def delete(self, source: str, scope: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM cursors WHERE source=? AND scope=?", (source, scope))

    def commit(
        self,
        source: str,
        cursors: dict[str, dict[str, Any] | None] | None = None,
        seen: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Write cursors (None deletes) and seen (scope, id) pairs atomically."""
        now = time.time()
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for scope, value in (cursors or {}).items():
                    if value is None:
                        self.db.execute("DELETE FROM cursors WHERE source=? AND scope=?",
                                        (source, scope))
                    else:
                        self.db.execute(
                            "INSERT INTO cursors VALUES (?,?,?,?) ON CONFLICT(source, scope) "
                            "DO UPDATE SET value=excluded.value, updated=excluded.updated",
                            (source, scope, json.dumps(value, sort_keys=True), now),
                        )
                self.db.executemany(
                    "INSERT OR REPLACE INTO seen VALUES (?,?,?,?)",
                    ((source, scope, i, now) for scope, i in seen),
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        if now - self._last_prune > 3600:
            self.prune(now)

    # --- seen ids -----------------------------------------------------------------------
    def unseen(self, source: str, scope: str, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` not yet published under (source, scope)."""
        if not ids:
            return set()
        out = set(ids)
        with self._lock:
            for k in range(0, len(ids), 500):
                chunk = list(ids[k : k + 500])
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(
                    f"SELECT id FROM seen WHERE source=? AND scope=? AND id IN ({marks})",
                    (source, scope, *chunk),
                ).fetchall()
                out.difference_update(r[0] for r in rows)
        return out

    def seen_in_scope(self, source: str, scope: str) -> int:
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM seen WHERE source=? AND scope=?",
                                       (source, scope)).fetchone()[0])

    def seen_count(self, source: str | None = None) -> int:
        with self._lock:
            if source is None:
                return int(self.db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])
            return int(self.db.execute("SELECT COUNT(*) FROM seen WHERE source=?",
                                       (source,)).fetchone()[0])

    def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        self._last_prune = now
        with self._lock:
            cur = self.db.execute("DELETE FROM seen WHERE at < ?", (now - self.retention,))
            return cur.rowcount

    # --- hot accounts -------------------------------------------------------------------
    def mark_hot(self, platform: str, account_id: str, ttl: float, reason: str = "") -> float:
        until = time.time() + ttl
        with self._lock:
            self.db.execute(
                "INSERT INTO hot VALUES (?,?,?,?) ON CONFLICT(platform, account_id) DO UPDATE "
                "SET until=max(until, excluded.until), reason=excluded.reason",
                (platform, account_id, until, reason),
            )
        return until

    def hot(self, now: float | None = None) -> dict[tuple[str, str], float]:
        """Accounts hot at ``now`` → until when."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self.db.execute(
                "SELECT platform, account_id, until FROM hot WHERE until > ?", (now,)
            ).fetchall()
        return {(p, a): u for p, a, u in rows}

    def clear_hot(self, platform: str, account_id: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM hot WHERE platform=? AND account_id=?",
                            (platform, account_id))
