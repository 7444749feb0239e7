"""The console's read interface on Elasticsearch (the indices ``streams/sinks/elasticsearch``
writes): every read is one bounded search, with the same meaning as the SQLite side.

Differences that follow from ES, documented rather than hidden:

* ES has no arrival order for alerts, so the live cursor is the latest alert *timestamp*
  (event time) and ``alerts_after`` returns alerts at or after it; an alert whose event time
  is older than one already pushed (rare on a live feed) shows on the page's periodic list
  refresh (30 s) instead of instantly.
* Full-text search is a ``match`` on ``text`` (the ``cjk`` bigram analyzer) with
  ``operator: and``, not a substring test.
* Searches return at most 10,000 hits (``index.max_result_window``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from matrixwatch.dashboards.console.board import iso
from matrixwatch.dashboards.console.query import AlertFilter, ConsoleQueries, FeedFilter
from matrixwatch.streams.records import epoch
from matrixwatch.streams.sinks.elasticsearch import DERIVED, alias_name, index_name

MAX_HITS = 10000


def _strip(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    drop = DERIVED.get(kind, frozenset())
    return {k: v for k, v in doc.items() if k not in drop}


def _bool(filters: list[dict[str, Any]], must: list[dict[str, Any]] | None = None
          ) -> dict[str, Any]:
    body: dict[str, Any] = {"filter": filters}
    if must:
        body["must"] = must
    return {"bool": body}


class ESQueries(ConsoleQueries):
    """``client`` is an ``elasticsearch.Elasticsearch`` (sync) or anything with ``search``."""

    def __init__(self, client: Any, prefix: str = "matrixwatch") -> None:
        self.client = client
        self.prefix = prefix
        self.events = alias_name(prefix, "events")
        self.alerts_index = index_name(prefix, "alerts")
        self.linkage = index_name(prefix, "linkage")

    @classmethod
    def from_settings(cls, settings: Any) -> ESQueries:
        from elasticsearch import Elasticsearch

        auth = None
        if settings.es_username and settings.es_password:
            auth = (settings.es_username, settings.es_password.get_secret_value())
        client = Elasticsearch(settings.es_url, basic_auth=auth,
                               verify_certs=settings.es_verify_certs, request_timeout=10)
        return cls(client, settings.es_index_prefix)

    def close(self) -> None:
        closer = getattr(self.client, "close", None)
        if closer is not None:
            closer()

    def _search(self, index: str, **body: Any) -> dict[str, Any]:
        resp = self.client.search(index=index, ignore_unavailable=True, **body)
        return dict(getattr(resp, "body", resp))

    def _hits(self, index: str, kind: str, **body: Any) -> list[dict[str, Any]]:
        resp = self._search(index, **body)
        return [_strip(h["_source"], kind) for h in resp.get("hits", {}).get("hits", [])]

    # --- alerts -------------------------------------------------------------------------
    def alerts(self, f: AlertFilter) -> list[dict[str, Any]]:
        flt: list[dict[str, Any]] = []
        for field, value in (("severity", f.severity), ("rule", f.rule),
                             ("account_id", f.account)):
            if value:
                flt.append({"term": {field: value}})
        if f.before is not None:
            flt.append({"range": {"timestamp": {"lt": iso(f.before)}}})
        return self._hits(self.alerts_index, "alerts", query=_bool(flt),
                          sort=[{"timestamp": "desc"}, {"id": "desc"}], size=f.limit)

    def alerts_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return self._hits(self.alerts_index, "alerts", query=_bool([{"terms": {"id": list(ids)}}]),
                          sort=[{"timestamp": "desc"}, {"id": "desc"}],
                          size=min(len(ids), MAX_HITS))

    def alert_cursor(self) -> str:
        hits = self._hits(self.alerts_index, "alerts", query={"match_all": {}},
                          sort=[{"timestamp": "desc"}], size=1, source=["timestamp"])
        return str(hits[0]["timestamp"]) if hits else ""

    def valid_cursor(self, cursor: str) -> bool:
        """An alert timestamp: ISO-8601 (what alert_cursor returns)."""
        try:
            datetime.fromisoformat(cursor)
        except ValueError:
            return False
        return True

    def alerts_after(self, cursor: str, limit: int = 200) -> tuple[list[dict[str, Any]], str]:
        flt = [{"range": {"timestamp": {"gte": cursor}}}] if cursor else []
        hits = self._hits(self.alerts_index, "alerts", query=_bool(flt),
                          sort=[{"timestamp": "asc"}, {"id": "asc"}], size=limit)
        if not hits:
            return [], cursor
        return hits, max((h["timestamp"] for h in hits), key=epoch)

    # --- events ---------------------------------------------------------------------------
    def latest_event_time(self) -> float | None:
        resp = self._search(self.events, size=0,
                            aggs={"latest": {"max": {"field": "created_at"}}})
        value = resp.get("aggregations", {}).get("latest", {}).get("value")
        return None if value is None else float(value) / 1000.0

    def feed(self, f: FeedFilter) -> list[dict[str, Any]]:
        flt: list[dict[str, Any]] = []
        for field, value in (("sentiment_label", f.sentiment), ("platform", f.platform),
                             ("kind", f.kind)):
            if value:
                flt.append({"term": {field: value}})
        who: list[dict[str, Any]] = []
        if f.owners is not None:
            if not f.owners:
                return []
            who.append({"terms": {"owner_id": list(f.owners)}})
        if f.author:
            who.append({"term": {"account_id": f.author}})
        if who:
            flt.append({"bool": {"should": who, "minimum_should_match": 1}})
        if f.before is not None:
            flt.append({"range": {"created_at": {"lt": iso(f.before)}}})
        must = [{"match": {"text": {"query": f.q, "operator": "and"}}}] if f.q else None
        return self._hits(self.events, "events", query=_bool(flt, must),
                          sort=[{"created_at": "desc"}, {"id": "desc"}], size=f.limit)

    def posts_by(self, platform_owners: Sequence[tuple[str, str]], since: float,
                 until: float, limit: int = 2000) -> list[dict[str, Any]]:
        by_platform: dict[str, list[str]] = {}
        for platform, owner in platform_owners:
            by_platform.setdefault(platform, []).append(owner)
        if not by_platform:
            return []
        should = [_bool([{"term": {"platform": p}}, {"terms": {"owner_id": sorted(o)}}])
                  for p, o in sorted(by_platform.items())]
        flt: list[dict[str, Any]] = [
            {"term": {"kind": "post"}},
            {"range": {"created_at": {"gte": iso(since), "lt": iso(until)}}},
            {"bool": {"should": should, "minimum_should_match": 1}}]
        return self._hits(self.events, "events", query=_bool(flt),
                          sort=[{"created_at": "desc"}], size=min(limit, MAX_HITS))

    def reposts_of(self, platform: str, root_ids: Sequence[str], since: float
                   ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        roots = sorted(set(root_ids))
        for i in range(0, len(roots), 1000):
            flt: list[dict[str, Any]] = [
                {"term": {"kind": "repost"}}, {"term": {"platform": platform}},
                {"terms": {"root_id": roots[i:i + 1000]}},
                {"range": {"created_at": {"gte": iso(since)}}}]
            for h in self._hits(self.events, "events", query=_bool(flt),
                                sort=[{"created_at": "asc"}], size=MAX_HITS,
                                source=["id", "account_id", "root_id", "created_at"]):
                out.append({"platform": platform, **h})
        return out

    def series(self, platform: str | None, owners: Sequence[str], since: float, until: float,
               bucket: int) -> list[tuple[float, int, int]]:
        if not owners:
            return []
        flt: list[dict[str, Any]] = [
            {"terms": {"owner_id": list(owners)}},
            {"range": {"created_at": {"gte": iso(since), "lt": iso(until)}}}]
        if platform:
            flt.append({"term": {"platform": platform}})
        resp = self._search(self.events, size=0, query=_bool(flt), aggs={"t": {
            "date_histogram": {"field": "created_at", "fixed_interval": f"{bucket}s",
                               "min_doc_count": 1},
            "aggs": {"neg": {"filter": {"term": {"sentiment_label": "negative"}}}}}})
        buckets = resp.get("aggregations", {}).get("t", {}).get("buckets", [])
        return [(float(b["key"]) / 1000.0, int(b["doc_count"]), int(b["neg"]["doc_count"]))
                for b in buckets]

    def last_posts(self) -> dict[tuple[str, str], float]:
        resp = self._search(self.events, size=0,
                            query=_bool([{"terms": {"kind": ["post", "repost"]}}]),
                            aggs={"p": {"terms": {"field": "platform", "size": 50}, "aggs": {
                                "a": {"terms": {"field": "account_id", "size": 65000},
                                      "aggs": {"last": {"max": {"field": "created_at"}}}}}}})
        out: dict[tuple[str, str], float] = {}
        for pb in resp.get("aggregations", {}).get("p", {}).get("buckets", []):
            for ab in pb["a"]["buckets"]:
                value = ab["last"]["value"]
                if value is not None:
                    out[(pb["key"], ab["key"])] = float(value) / 1000.0
        return out

    # --- linkage --------------------------------------------------------------------------
    def closed_tasks(self, since: float, until: float, limit: int = 10000
                     ) -> list[dict[str, Any]]:
        flt: list[dict[str, Any]] = [
            {"range": {"created_at": {"gte": iso(since), "lt": iso(until)}}}]
        return self._hits(self.linkage, "linkage", query=_bool(flt),
                          sort=[{"created_at": "desc"}, {"post_id": "asc"}],
                          size=min(limit, MAX_HITS))

    def closed_task_ids(self, platform_posts: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        keys = [f"{p}:{pid}" for p, pid in platform_posts]
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            for h in self._hits(self.linkage, "linkage", query={"ids": {"values": chunk}},
                                size=len(chunk), source=["platform", "post_id"]):
                found.add((h["platform"], h["post_id"]))
        return found
