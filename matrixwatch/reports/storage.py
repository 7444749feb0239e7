"""Index and compliance rows in the store: SQLite tables or Elasticsearch indices.

Kept apart from the stream's sinks (their schema belongs to the stream): on SQLite this
module creates its own two tables, idempotently, in the same file; on Elasticsearch it
writes two indices next to the stream's. Writes are upserts keyed by account + period
(+ check time for compliance), so re-running a month's report replaces its rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from matrixwatch.reports.compliance import ComplianceRow
from matrixwatch.reports.index import IndexRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS index_scores (
    doc_id TEXT PRIMARY KEY, platform TEXT NOT NULL, account_id TEXT NOT NULL,
    period TEXT NOT NULL, peer_group TEXT NOT NULL, composite REAL, rank INTEGER,
    doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS index_scores_period ON index_scores(period, peer_group, rank);
CREATE TABLE IF NOT EXISTS compliance (
    doc_id TEXT PRIMARY KEY, platform TEXT NOT NULL, account_id TEXT NOT NULL,
    period TEXT NOT NULL, checked_at TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS compliance_period ON compliance(period, status);
"""
TABLES = ("index_scores", "compliance")  # also the ES index spec names


def _dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def index_doc_id(r: IndexRow) -> str:
    return f"{r.platform}:{r.account_id}|{r.period}"


def compliance_doc_id(r: ComplianceRow) -> str:
    return f"{r.platform}:{r.account_id}|{r.period}|{r.checked_at}"


def es_compliance_doc(r: ComplianceRow) -> dict[str, Any]:
    """Flat fields for Kibana; the findings (varied shapes) as one JSON string."""
    d = r.as_dict()
    d["findings_json"] = _dumps({"findings": d.pop("findings")})
    return d


def save_sqlite(path: str | Path, index_rows: Sequence[IndexRow],
                compliance_rows: Sequence[ComplianceRow]) -> None:
    conn = sqlite3.connect(Path(path), timeout=60.0)
    try:
        conn.executescript(SCHEMA)
        with conn:
            conn.executemany(
                "INSERT INTO index_scores VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(doc_id) DO UPDATE "
                "SET peer_group=excluded.peer_group, composite=excluded.composite, "
                "rank=excluded.rank, doc=excluded.doc",
                [(index_doc_id(r), r.platform, r.account_id, r.period, r.peer_group,
                  r.composite, r.rank, _dumps(r.as_dict())) for r in index_rows])
            conn.executemany(
                "INSERT INTO compliance VALUES (?,?,?,?,?,?,?) ON CONFLICT(doc_id) DO UPDATE "
                "SET status=excluded.status, doc=excluded.doc",
                [(compliance_doc_id(r), r.platform, r.account_id, r.period, r.checked_at,
                  r.status, _dumps(r.as_dict())) for r in compliance_rows])
    finally:
        conn.close()


def iter_saved(path: str | Path, table: str, period: str | None = None
               ) -> Iterator[dict[str, Any]]:
    """Stored rows of ``index_scores`` or ``compliance`` (optionally one period)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    conn = sqlite3.connect(Path(path), timeout=60.0)
    try:
        conn.executescript(SCHEMA)
        sql = f"SELECT doc FROM {table}"
        args: tuple[str, ...] = ()
        if period is not None:
            sql += " WHERE period = ?"
            args = (period,)
        for (doc,) in conn.execute(sql + " ORDER BY doc_id", args).fetchall():
            yield json.loads(doc)
    finally:
        conn.close()


def es_docs(index_rows: Sequence[IndexRow], compliance_rows: Sequence[ComplianceRow]
            ) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """ES index spec name → ``(id, source)`` documents (the same ids as the SQLite rows)."""
    return {
        "index_scores": [(index_doc_id(r), r.as_dict()) for r in index_rows],
        "compliance": [(compliance_doc_id(r), es_compliance_doc(r)) for r in compliance_rows],
    }


async def save_es(store: Any, index_rows: Sequence[IndexRow],
                  compliance_rows: Sequence[ComplianceRow]) -> None:
    """Both row kinds through ``ElasticsearchStore.write_docs`` (index op: reruns replace).

    ``open`` installs the templates (``<prefix>-index-scores``, ``<prefix>-compliance``
    among them) before the first write, so the documents get their explicit mappings.
    """
    await store.open()
    try:
        for name, docs in es_docs(index_rows, compliance_rows).items():
            await store.write_docs(name, docs)
    finally:
        await store.close()


async def save(store: Any, index_rows: Sequence[IndexRow],
               compliance_rows: Sequence[ComplianceRow]) -> str:
    """Into whatever store the settings chose; returns where the rows went."""
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        save_sqlite(store.path, index_rows, compliance_rows)
        return str(store.path)
    if hasattr(store, "write_docs"):  # ElasticsearchStore
        await save_es(store, index_rows, compliance_rows)
        return "elasticsearch"
    raise TypeError(f"cannot store report rows in {type(store).__name__}")
