"""The console's own state: alert workflow, hand-over notes, sessions and the audit log.

It lives in its own SQLite file (``data_dir/console.sqlite``), never in the pipeline
store: the store is rebuilt by replays and written by the stream, while what a duty
officer did is a human record that must survive both. Rows are keyed by the alert's
deterministic ``id``, so a replayed or re-indexed alert finds its history again.

Times here are wall-clock epoch seconds (people act in real time); alerts themselves keep
their event time.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    alert_id TEXT PRIMARY KEY, status TEXT NOT NULL, assignee TEXT,
    updated_at REAL NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, at REAL NOT NULL,
    user TEXT NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL, assignee TEXT,
    note TEXT);
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history(alert_id, id);
CREATE INDEX IF NOT EXISTS alert_history_at ON alert_history(at);
CREATE TABLE IF NOT EXISTS handover_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user TEXT NOT NULL,
    text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user TEXT, role TEXT,
    action TEXT NOT NULL, target TEXT, detail TEXT, remote TEXT);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE TABLE IF NOT EXISTS sessions (
    sid_hash TEXT PRIMARY KEY, user TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL);
"""

NEW, ACKNOWLEDGED, CLOSED = "new", "acknowledged", "closed"
STATUSES: tuple[str, ...] = (NEW, ACKNOWLEDGED, CLOSED)
ACTIONS: tuple[str, ...] = ("ack", "assign", "note", "close", "reopen")
MAX_NOTE = 2000


class TransitionError(ValueError):
    """An action that does not apply to the alert's current status (HTTP 409)."""


@dataclass(frozen=True)
class AlertState:
    alert_id: str
    status: str = NEW
    assignee: str | None = None
    updated_at: float | None = None
    updated_by: str | None = None

    def asdict(self) -> dict[str, Any]:
        return {"status": self.status, "assignee": self.assignee,
                "updated_at": self.updated_at, "updated_by": self.updated_by}


def next_state(cur: AlertState, action: str, *, assignee: str | None, note: str | None,
               ) -> tuple[str, str | None]:
    """(status, assignee) after ``action``; raises TransitionError when it does not apply.

    new →ack→ acknowledged →close→ closed →reopen→ acknowledged. Assigning a new alert
    acknowledges it too (someone has taken it); a note changes nothing but the history.
    """
    if action == "ack":
        if cur.status != NEW:
            raise TransitionError(f"cannot acknowledge an alert that is {cur.status}")
        return ACKNOWLEDGED, cur.assignee
    if action == "assign":
        if cur.status == CLOSED:
            raise TransitionError("cannot assign a closed alert")
        if not assignee:
            raise TransitionError("assign needs an assignee")
        return ACKNOWLEDGED, assignee
    if action == "note":
        if not note:
            raise TransitionError("a note needs text")
        return cur.status, cur.assignee
    if action == "close":
        if cur.status == CLOSED:
            raise TransitionError("the alert is already closed")
        return CLOSED, cur.assignee
    if action == "reopen":
        if cur.status != CLOSED:
            raise TransitionError("only a closed alert can be reopened")
        return ACKNOWLEDGED, cur.assignee
    raise TransitionError(f"unknown action {action!r}")


class ConsoleState:
    """Synchronous, thread-safe access (the app calls it through ``asyncio.to_thread``)."""

    def __init__(self, path: str | Path, session_ttl: float = 12 * 3600.0) -> None:
        self.path = Path(path)
        self.session_ttl = session_ttl
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _q(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    # --- alert workflow ---------------------------------------------------------------
    def states(self, ids: list[str]) -> dict[str, AlertState]:
        out: dict[str, AlertState] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._q(f"SELECT alert_id, status, assignee, updated_at, updated_by "
                               f"FROM alert_state WHERE alert_id IN ({marks})", chunk):
                out[row[0]] = AlertState(*row)
        return out

    def state(self, alert_id: str) -> AlertState:
        return self.states([alert_id]).get(alert_id, AlertState(alert_id))

    def apply(self, alert_id: str, user: str, action: str, *, assignee: str | None = None,
              note: str | None = None, now: float | None = None) -> AlertState:
        """Apply one workflow action and append it to the alert's history, atomically."""
        if action not in ACTIONS:
            raise TransitionError(f"unknown action {action!r}")
        note = (note or "").strip()[:MAX_NOTE] or None
        at = time.time() if now is None else now
        with self._lock, self._conn:
            row = self._conn.execute(
                "SELECT alert_id, status, assignee, updated_at, updated_by FROM alert_state "
                "WHERE alert_id=?", (alert_id,)).fetchone()
            cur = AlertState(*row) if row else AlertState(alert_id)
            status, who = next_state(cur, action, assignee=assignee, note=note)
            self._conn.execute(
                "INSERT INTO alert_state VALUES (?,?,?,?,?) ON CONFLICT(alert_id) DO UPDATE "
                "SET status=excluded.status, assignee=excluded.assignee, "
                "updated_at=excluded.updated_at, updated_by=excluded.updated_by",
                (alert_id, status, who, at, user))
            self._conn.execute(
                "INSERT INTO alert_history (alert_id, at, user, action, status, assignee, note)"
                " VALUES (?,?,?,?,?,?,?)", (alert_id, at, user, action, status, who, note))
        return AlertState(alert_id, status, who, at, user)

    def history(self, alert_id: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT id, at, user, action, status, assignee, note FROM alert_history"
                       " WHERE alert_id=? ORDER BY id", (alert_id,))
        return [dict(zip(("id", "at", "user", "action", "status", "assignee", "note"), r,
                         strict=True)) for r in rows]

    def history_head(self) -> int:
        return int(self._q("SELECT coalesce(max(id), 0) FROM alert_history")[0][0])

    def changed_after(self, history_id: int) -> tuple[list[str], int]:
        """Alerts whose workflow changed after ``history_id`` (for live pushes)."""
        rows = self._q("SELECT id, alert_id FROM alert_history WHERE id>? ORDER BY id",
                       (history_id,))
        if not rows:
            return [], history_id
        return sorted({r[1] for r in rows}), int(rows[-1][0])

    def actions_between(self, since: float, until: float) -> list[dict[str, Any]]:
        rows = self._q("SELECT id, alert_id, at, user, action, status, assignee, note "
                       "FROM alert_history WHERE at>=? AND at<? ORDER BY id",
                       (since, until))
        keys = ("id", "alert_id", "at", "user", "action", "status", "assignee", "note")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- hand-over notes ----------------------------------------------------------------
    def add_handover_note(self, user: str, text: str, now: float | None = None) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO handover_notes (at, user, text) VALUES (?,?,?)",
                               (time.time() if now is None else now, user,
                                text.strip()[:MAX_NOTE]))

    def handover_notes(self, since: float, until: float) -> list[dict[str, Any]]:
        rows = self._q("SELECT at, user, text FROM handover_notes WHERE at>=? AND at<? "
                       "ORDER BY id", (since, until))
        return [{"at": r[0], "user": r[1], "text": r[2]} for r in rows]

    # --- audit ----------------------------------------------------------------------------
    def audit(self, user: str | None, role: str | None, action: str, target: str | None = None,
              detail: dict[str, Any] | None = None, remote: str | None = None) -> None:
        """Append one audit row. Callers never pass a token in ``detail``."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO audit (at, user, role, action, target, detail, remote) "
                "VALUES (?,?,?,?,?,?,?)",
                (time.time(), user, role, action, target,
                 json.dumps(detail, ensure_ascii=False) if detail else None, remote))

    def audit_log(self, limit: int = 200, before: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, at, user, role, action, target, detail, remote FROM audit"
        params: list[Any] = []
        if before:
            sql += " WHERE id<?"
            params.append(before)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        keys = ("id", "at", "user", "role", "action", "target", "detail", "remote")
        out = []
        for r in self._q(sql, params):
            d = dict(zip(keys, r, strict=True))
            d["detail"] = json.loads(d["detail"]) if d["detail"] else None
            out.append(d)
        return out

    # --- sessions -------------------------------------------------------------------------
    @staticmethod
    def _sid_hash(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def create_session(self, user: str) -> str:
        """A random session id for the cookie; only its hash is stored."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM sessions WHERE expires<?", (now,))
            self._conn.execute("INSERT INTO sessions VALUES (?,?,?,?)",
                               (self._sid_hash(sid), user, now, now + self.session_ttl))
        return sid

    def session_user(self, sid: str | None) -> str | None:
        if not sid:
            return None
        rows = self._q("SELECT user FROM sessions WHERE sid_hash=? AND expires>?",
                       (self._sid_hash(sid), time.time()))
        return str(rows[0][0]) if rows else None

    def end_session(self, sid: str | None) -> None:
        if sid:
            with self._lock, self._conn:
                self._conn.execute("DELETE FROM sessions WHERE sid_hash=?",
                                   (self._sid_hash(sid),))
