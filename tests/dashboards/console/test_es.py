"""The console on Elasticsearch: the same scenario written by the real ES sink and read
through ``ESQueries`` with the real ``elasticsearch`` client must give the same answers as
the SQLite store (alerts, feed filters, open linkage tasks, response table, stale accounts,
series), plus the exact query shapes the ES side sends.

ES runs as ``SearchingES``: the project's loopback FakeES (tests/streams/sinks) extended
with the small part of the query DSL the console uses (bool/term/terms/range/ids/match,
sort, size, _source, max/terms/date_histogram/filter aggregations). ``match`` is
approximated by substring containment of every query word. With ES_URL set, the same
comparison runs against the real cluster.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from matrixwatch.dashboards.console.es import ESQueries
from matrixwatch.dashboards.console.query import AlertFilter, FeedFilter
from matrixwatch.dashboards.console.service import Console
from matrixwatch.registry import Registry
from matrixwatch.streams.sinks.elasticsearch import ElasticsearchStore
from tests.dashboards.console.conftest import (
    A2,
    PROV,
    T0,
    make_console,
    scenario_alerts,
    scenario_events,
    scenario_linkage,
)
from tests.factories import REGISTRY_YAML
from tests.streams.sinks.test_elasticsearch import FakeES, _Handler

DATE_FIELDS = {"created_at", "timestamp", "deadline", "closed_at", "collected_at",
               "root_created_at"}


def _epoch(v: Any) -> float:
    if isinstance(v, int | float):
        return float(v)
    return datetime.fromisoformat(str(v)).timestamp()


def _values(doc: dict[str, Any], field: str) -> list[Any]:
    v: Any = doc
    for part in field.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def matches(doc: dict[str, Any], doc_id: str, q: dict[str, Any]) -> bool:
    (kind, body), = q.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        if not all(matches(doc, doc_id, c) for c in body.get("filter", []) + body.get("must", [])):
            return False
        should = body.get("should", [])
        return not should or any(matches(doc, doc_id, c) for c in should)
    if kind == "ids":
        return doc_id in body["values"]
    (field, arg), = body.items()
    vals = _values(doc, field)
    if kind == "term":
        return arg in vals
    if kind == "terms":
        return any(v in arg for v in vals)
    if kind == "range":
        conv = _epoch if field in DATE_FIELDS else float
        ops = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
               "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}
        return any(all(ops[op](conv(v), conv(lim)) for op, lim in arg.items()
                       if op in ops) for v in vals)
    if kind == "match":
        words = str(arg["query"]).split()
        return any(all(w in str(v) for w in words) for v in vals)
    raise AssertionError(f"query not supported by the fake: {kind}")


def sort_key(field: str) -> Any:
    def key(hit: dict[str, Any]) -> Any:
        vals = _values(hit["_source"], field)
        if not vals:
            return -math.inf
        return _epoch(vals[0]) if field in DATE_FIELDS else vals[0]
    return key


def aggregate(docs: list[dict[str, Any]], aggs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in aggs.items():
        sub = spec.get("aggs", {})
        if "max" in spec:
            field = spec["max"]["field"]
            vals = [_epoch(v) * (1000 if field in DATE_FIELDS else 1)
                    for d in docs for v in _values(d, field)]
            out[name] = {"value": max(vals) if vals else None}
        elif "terms" in spec:
            groups: dict[Any, list[dict[str, Any]]] = {}
            for d in docs:
                for v in _values(d, spec["terms"]["field"]):
                    groups.setdefault(v, []).append(d)
            buckets = [{"key": k, "doc_count": len(g), **aggregate(g, sub)}
                       for k, g in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
            out[name] = {"buckets": buckets[: spec["terms"].get("size", 10)]}
        elif "date_histogram" in spec:
            dh = spec["date_histogram"]
            step = int(dh["fixed_interval"].rstrip("s"))
            groups = {}
            for d in docs:
                for v in _values(d, dh["field"]):
                    groups.setdefault(int(_epoch(v) // step * step), []).append(d)
            out[name] = {"buckets": [{"key": k * 1000, "doc_count": len(g), **aggregate(g, sub)}
                                     for k, g in sorted(groups.items())]}
        elif "filter" in spec:
            kept = [d for d in docs if matches(d, "", spec["filter"])]
            out[name] = {"doc_count": len(kept), **aggregate(kept, sub)}
        else:
            raise AssertionError(f"aggregation not supported by the fake: {spec}")
    return out


class SearchingES(FakeES):
    """FakeES whose _search evaluates the console's queries."""

    def __init__(self) -> None:
        self.searches: list[tuple[str, dict[str, Any]]] = []
        super().__init__()

    def handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        seg = [s for s in parts.path.split("/") if s]
        if seg[-1:] != ["_search"] or len(seg) != 2:
            return super().handle(h)
        raw = h.body()
        body = json.loads(raw or b"{}")
        self.searches.append((seg[0], body))
        hits = [{"_index": i, "_id": k, "_source": v} for i in self.resolve(seg[0])
                for k, v in sorted(self.docs(i).items())]
        hits = [x for x in hits if matches(x["_source"], x["_id"],
                                          body.get("query", {"match_all": {}}))]
        for spec in reversed(body.get("sort", [])):
            (field, order), = spec.items()
            hits.sort(key=sort_key(field), reverse=order == "desc")
        resp: dict[str, Any] = {
            "took": 1, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "failed": 0, "skipped": 0},
            "hits": {"total": {"value": len(hits), "relation": "eq"},
                     "hits": hits[: body.get("size", 10)]}}
        if "_source" in body:
            keep = body["_source"]
            for x in resp["hits"]["hits"]:
                x["_source"] = {k: v for k, v in x["_source"].items() if k in keep}
        if "aggs" in body:
            resp["aggregations"] = aggregate([x["_source"] for x in hits], body["aggs"])
        h.reply(200, resp)
        return None


@pytest.fixture
def es_store() -> Iterator[tuple[str, str, Any]]:
    """(url, prefix, fake or None): the scenario written through the real ES sink."""
    prefix = f"mwconsole-{os.getpid()}"
    url = os.environ.get("ES_URL")
    fake = None
    if not url:
        fake = SearchingES()
        url = fake.url

    async def write() -> None:
        store = ElasticsearchStore(url, prefix=prefix, retry_for=10, initial_backoff=0.05,
                                   registry=Registry.from_dict(yaml.safe_load(REGISTRY_YAML)))
        await store.open()
        await store.write_events(scenario_events())
        await store.write_alerts(scenario_alerts())
        await store.write_linkage(scenario_linkage())
        await store.close()

    asyncio.run(write())
    if fake is None:
        from elasticsearch import Elasticsearch

        c = Elasticsearch(url)
        c.indices.refresh(index=f"{prefix}-*")
        c.close()
    yield url, prefix, fake
    if fake is not None:
        fake.close()


def es_console(tmp: Path, url: str, prefix: str) -> Console:
    from elasticsearch import Elasticsearch

    c = make_console(tmp, tmp / "unused.sqlite")
    c.queries.close()
    c.queries = ESQueries(Elasticsearch(url, request_timeout=5), prefix)
    return c


def test_same_answers_on_sqlite_and_elasticsearch(
        tmp_path: Path, store_path: Path, es_store: tuple[str, str, Any]) -> None:
    url, prefix, _ = es_store
    (tmp_path / "sq").mkdir()
    (tmp_path / "es").mkdir()
    sq = make_console(tmp_path / "sq", store_path)
    es = es_console(tmp_path / "es", url, prefix)
    try:
        assert es.ref_time() == sq.ref_time()
        ids = [a["id"] for a in sq.alert_list(AlertFilter())["alerts"]]
        assert [a["id"] for a in es.alert_list(AlertFilter())["alerts"]] == ids
        assert [a["id"] for a in es.alert_list(AlertFilter(severity="red"))["alerts"]] == \
            ["alert-red-1"]
        es_alert = es.alert_detail("alert-red-1")
        assert es_alert["unit"] == "甲市西区人民政府" and es_alert["sample_posts"][0]["url"]
        assert "account_label" not in es_alert  # ES-only derived fields stripped
        for kw in ({"sentiment": "negative"}, {"sentiment": None},
                   {"sentiment": None, "level": "county", "kind": "post"},
                   {"sentiment": None, "account": "9100000111"},
                   {"sentiment": "negative", "unit": "甲市西区人民政府"},
                   {"sentiment": None, "q": "太气人了3"}):
            args = {"sentiment": None, "platform": None, "kind": None, "level": None,
                    "unit": None, "account": None, "q": None, "before": None, "limit": 50,
                    **kw}
            want = [e["id"] for e in sq.feed(**args)["events"]]
            got = [e["id"] for e in es.feed(**args)["events"]]
            assert got == want, kw
            assert want, kw
        b_sq, b_es = sq.board(), es.board()
        for key in ("ref", "open_tasks", "closed_recent", "responses", "stale", "counts"):
            assert b_es[key] == b_sq[key], key
        assert [t["progress"] for t in b_es["open_tasks"]] == ["2/3", "1/2"]
        s_sq = sq.series(account=A2, unit=None, platform=None, days=1)
        s_es = es.series(account=A2, unit=None, platform=None, days=1)
        assert s_es == s_sq
        assert es.linkage_rates(superior=PROV, platform="weibo", days=30) == \
            sq.linkage_rates(superior=PROV, platform="weibo", days=30)
    finally:
        sq.close()
        es.close()


def test_live_cursor_on_elasticsearch(es_store: tuple[str, str, Any]) -> None:
    from elasticsearch import Elasticsearch

    url, prefix, fake = es_store
    q = ESQueries(Elasticsearch(url, request_timeout=5), prefix)
    try:
        cursor = q.alert_cursor()
        assert cursor == "2026-11-02T13:57:00+08:00"  # the latest alert's event time
        again, cur2 = q.alerts_after(cursor)
        assert [a["id"] for a in again] == ["alert-red-1"]  # callers de-duplicate by id
        assert cur2 == cursor
        every, last = q.alerts_after("")
        assert [a["id"] for a in every] == ["alert-yellow-1", "alert-blue-1", "alert-red-1"]
        assert last == cursor
        # The stream refuses (400) what alert_cursor could not have made.
        assert q.valid_cursor(cursor) and q.valid_cursor(last)
        assert not any(q.valid_cursor(c) for c in ("nan", "1e999", "tomorrow", "2026-13-01"))
        if fake is not None:
            index, body = fake.searches[-1]
            assert index == f"{prefix}-alerts"
            assert body["sort"] == [{"timestamp": "asc"}, {"id": "asc"}]
    finally:
        q.close()


class Recorder:
    """A stand-in client: records search bodies, answers with no hits."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def search(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        return {"hits": {"hits": []}, "aggregations": {}}


def test_query_shapes() -> None:
    rec = Recorder()
    q = ESQueries(rec, "mw")
    q.feed(FeedFilter(sentiment="negative", platform="weibo", kind="comment",
                      owners=("1", "2"), author="3", q="停水 没人管", before=T0.timestamp(),
                      limit=20))
    call = rec.calls[-1]
    assert call["index"] == "mw-events" and call["size"] == 20
    assert call["ignore_unavailable"] is True
    assert call["sort"] == [{"created_at": "desc"}, {"id": "desc"}]
    flt = call["query"]["bool"]["filter"]
    assert {"term": {"sentiment_label": "negative"}} in flt
    assert {"term": {"platform": "weibo"}} in flt and {"term": {"kind": "comment"}} in flt
    assert {"bool": {"should": [{"terms": {"owner_id": ["1", "2"]}},
                                {"term": {"account_id": "3"}}],
                     "minimum_should_match": 1}} in flt
    assert {"range": {"created_at": {"lt": "2026-11-02T09:00:00+08:00"}}} in flt
    assert call["query"]["bool"]["must"] == [
        {"match": {"text": {"query": "停水 没人管", "operator": "and"}}}]
    assert q.feed(FeedFilter(owners=())) == []  # an empty owner set matches nothing
    q.series("weibo", ["1"], 0.0, 3600.0, 300)
    call = rec.calls[-1]
    assert call["size"] == 0
    assert call["aggs"]["t"]["date_histogram"] == {
        "field": "created_at", "fixed_interval": "300s", "min_doc_count": 1}
    assert call["aggs"]["t"]["aggs"]["neg"] == {
        "filter": {"term": {"sentiment_label": "negative"}}}
    q.closed_task_ids([("weibo", "5"), ("weibo", "6")])
    assert rec.calls[-1]["index"] == "mw-linkage"
    assert rec.calls[-1]["query"] == {"ids": {"values": ["weibo:5", "weibo:6"]}}
    q.reposts_of("weibo", ["9", "8"], 0.0)
    flt = rec.calls[-1]["query"]["bool"]["filter"]
    assert {"terms": {"root_id": ["8", "9"]}} in flt and {"term": {"kind": "repost"}} in flt
    assert q.latest_event_time() is None and q.alert_cursor() == ""
