"""The Elasticsearch store against ES's HTTP contract, and against a real cluster.

Three ways in, from most to least faithful to a recording:

* ``tests/data/es/*.json`` are ES 9 request/response pairs (bulk with 409, 429 and 503,
  a mapping rejection, re-installing templates, report rows overwritten), written from
  ES's documented answers.
  ``ReplayES`` serves them in order and checks that the sink sends what the recording
  expects (a JSON subset per NDJSON line), so the tests pin both what we send and how we
  read ES's answers. With ``ES_URL`` the same actions run against the real cluster.
* ``FakeES`` is a small stateful loopback ES (templates, aliases, create/index, scroll,
  fault injection) for behaviour: routing, idempotence, back-pressure, and an outage.
* With ``ES_URL`` set (docker compose), the same behaviour tests and the recordings that
  need no fault injection run against the real cluster, under a throwaway prefix.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert, DeadLetter, Event, LinkageResult
from matrixwatch.streams.sinks.elasticsearch import (
    MAPPINGS,
    SPECS,
    BulkError,
    BulkRejected,
    ElasticsearchStore,
    index_name,
    index_templates,
    mapped_fields,
)
from tests.factories import REGISTRY_YAML

DATA = Path(__file__).resolve().parents[2] / "data" / "es"
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch",
              "Content-Type": "application/vnd.elasticsearch+json; compatible-with=9"}
MEASURE_FIELDS = ("account_id", "platform", "name", "unit", "level", "parent", "period_start",
                  "period_end", "tasks_expected", "tasks_linked", "response_rate",
                  "median_latency", "p90_latency", "interactions_up", "interactions_down",
                  "coverage")


def _is_subset(expected: Any, actual: Any) -> bool:
    """Recorded JSON ⊆ sent JSON (dicts by key, lists element-wise, "<any>" matches all)."""
    if expected == "<any>":
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _is_subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            _is_subset(e, a) for e, a in zip(expected, actual, strict=True))
    return bool(expected == actual)


class _Handler(BaseHTTPRequestHandler):
    """Shared plumbing: read the body, answer JSON with ES's product headers."""

    server_ref: Any = None

    def log_message(self, *args: Any) -> None:
        return

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in {**ES_HEADERS, **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self) -> None:
        self.server_ref.handle(self)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class _Server:
    def __init__(self) -> None:
        handler = type("H", (_Handler,), {"server_ref": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.lock = threading.Lock()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: _Handler) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def _ndjson(body: bytes) -> list[Any]:
    return [json.loads(x) for x in body.splitlines() if x.strip()]


class ReplayES(_Server):
    """Serves a recorded exchange list in order; records any request that differs."""

    def __init__(self, cassette: Path) -> None:
        self.cassette = json.loads(cassette.read_text(encoding="utf-8"))
        self.pending: list[dict[str, Any]] = list(self.cassette["exchanges"])
        self.mismatches: list[str] = []
        super().__init__()

    def handle(self, h: _Handler) -> None:
        raw = h.body()
        path = urlsplit(h.path).path
        with self.lock:
            if not self.pending:
                self.mismatches.append(f"unexpected {h.command} {path}")
                h.reply(500, {"error": "no more recorded exchanges"})
                return
            ex = self.pending.pop(0)
        req, resp = ex["request"], ex["response"]
        problems = []
        if (req["method"], req["path"]) != (h.command, path):
            problems.append(f"expected {req['method']} {req['path']}, got {h.command} {path}")
        sent: Any = None
        if raw:
            sent = _ndjson(raw) if path.endswith("/_bulk") else json.loads(raw)
        if "body" in req and not _is_subset(req["body"], sent):
            problems.append(f"{path}: body differs from the recording: {sent!r:.600}")
        self.mismatches.extend(problems)
        body = json.loads(json.dumps(resp["body"]))
        if path.endswith("/_bulk") and isinstance(sent, list):  # fill recorded "<any>" ids
            for item, action in zip(body.get("items", []), sent[::2], strict=False):
                (_, info), = item.items()
                (_, meta), = action.items()
                for k in ("_index", "_id"):
                    if info.get(k) == "<any>":
                        info[k] = meta.get(k)
        h.reply(resp["status"], body)


class FakeES(_Server):
    """A stateful loopback ES 9: templates, aliases, create/index, scroll, faults."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.templates: dict[str, dict[str, Any]] = {}
        self.indices: dict[str, dict[str, Any]] = {}
        self.bulk_script: list[int | None] = []  # per bulk request: None or a status
        self.item_script: list[int] = []  # statuses forced on the next items
        self.reject_ids: set[str] = set()  # items answered 400 document_parsing_exception
        self.outage_until = 0.0  # monotonic: every request before it answers 503
        self.apply_then_fail = 0  # next N bulks: applied, then answered 503 (lost reply)
        self.bulk_delay = 0.0  # seconds each bulk takes
        self.created: Counter[tuple[str, str]] = Counter()  # 201s per document
        self.bulk_calls = 0
        self.bulk_refused = 0
        self.concurrent = 0
        self.peak_concurrent = 0
        super().__init__()

    # --- helpers ----------------------------------------------------------------
    def _index(self, name: str) -> dict[str, Any]:
        if name not in self.indices:
            aliases: set[str] = set()
            for t in self.templates.values():
                if any(fnmatch.fnmatch(name, p) for p in t.get("index_patterns", [])):
                    aliases |= set((t.get("template") or {}).get("aliases") or {})
            self.indices[name] = {"docs": {}, "aliases": aliases}
        return self.indices[name]

    def resolve(self, target: str) -> list[str]:
        out: list[str] = []
        for part in target.split(","):
            for name, idx in self.indices.items():
                if fnmatch.fnmatch(name, part) or part in idx["aliases"]:
                    out.append(name)
        return sorted(set(out))

    def docs(self, name: str) -> dict[str, dict[str, Any]]:
        return self.indices.get(name, {"docs": {}})["docs"]

    def bulk_bodies(self) -> list[list[dict[str, Any]]]:
        return [_ndjson(body) for m, p, body in self.requests
                if urlsplit(p).path.endswith("/_bulk")]

    # --- dispatch ---------------------------------------------------------------
    def handle(self, h: _Handler) -> None:
        raw = h.body()
        parts = urlsplit(h.path)
        path, query = parts.path, parse_qs(parts.query)
        with self.lock:
            self.requests.append((h.command, h.path, raw))
        if time.monotonic() < self.outage_until:
            if path.endswith("/_bulk"):
                self.bulk_refused += 1
            h.reply(503, {"error": {"type": "cluster_block_exception", "reason":
                                    "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / "
                                    "initialized];"}, "status": 503})
            return
        seg = [s for s in path.split("/") if s]
        if path.endswith("/_bulk"):
            self._bulk(h, raw)
        elif seg[:1] in (["_index_template"], ["_component_template"]):
            if h.command == "PUT":
                with self.lock:
                    self.templates[f"{seg[0]}/{seg[1]}"] = json.loads(raw or b"{}")
                h.reply(200, {"acknowledged": True})
            elif f"{seg[0]}/{seg[1]}" in self.templates:
                h.reply(200, {"index_templates": [{"name": seg[1], "index_template":
                                                   self.templates[f"{seg[0]}/{seg[1]}"]}]})
            else:
                h.reply(404, {"error": {"type": "resource_not_found_exception"}, "status": 404})
        elif len(seg) == 1 and h.command == "PUT":
            with self.lock:
                exists = seg[0] in self.indices
                if not exists:
                    self._index(seg[0])
            if exists:
                h.reply(400, {"error": {"type": "resource_already_exists_exception",
                                        "reason": f"index [{seg[0]}/x] already exists"},
                              "status": 400})
            else:
                h.reply(200, {"acknowledged": True, "shards_acknowledged": True,
                              "index": seg[0]})
        elif len(seg) == 2 and seg[1] == "_mapping":
            h.reply(200, {"acknowledged": True})
        elif seg[-1:] == ["_refresh"]:
            h.reply(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
        elif seg[-1:] == ["_count"]:
            n = sum(len(self.docs(i)) for i in self.resolve(seg[0]))
            h.reply(200, {"count": n})
        elif seg[:2] == ["_search", "scroll"]:
            if h.command == "DELETE":
                h.reply(200, {"succeeded": True, "num_freed": 1})
            else:
                h.reply(200, {"_scroll_id": "s1", "hits": {"total": {"value": 0,
                        "relation": "eq"}, "hits": []}, "_shards": {"total": 1,
                        "successful": 1, "failed": 0, "skipped": 0}})
        elif seg[-1:] == ["_search"]:
            hits = [{"_index": i, "_id": k, "_source": v}
                    for i in self.resolve(seg[0]) for k, v in sorted(self.docs(i).items())]
            body: dict[str, Any] = {"hits": {"total": {"value": len(hits), "relation": "eq"},
                                             "hits": hits},
                                    "_shards": {"total": 1, "successful": 1, "failed": 0,
                                                "skipped": 0}}
            if "scroll" in query:
                body["_scroll_id"] = "s1"
            h.reply(200, body)
        elif h.command == "DELETE":
            with self.lock:
                for name in self.resolve(seg[0]):
                    self.indices.pop(name, None)
            h.reply(200, {"acknowledged": True})
        else:
            h.reply(200, {"name": "fake", "version": {"number": "9.1.0"},
                          "tagline": "You Know, for Search"})

    def _bulk(self, h: _Handler, raw: bytes) -> None:
        with self.lock:
            self.bulk_calls += 1
            self.concurrent += 1
            self.peak_concurrent = max(self.peak_concurrent, self.concurrent)
            forced = self.bulk_script.pop(0) if self.bulk_script else None
        try:
            if self.bulk_delay:
                time.sleep(self.bulk_delay)
            if forced is not None:
                h.reply(forced, {"error": {"type": "es_rejected_execution_exception",
                                           "reason": "rejected execution"}, "status": forced})
                return
            lines = _ndjson(raw)
            items, errors = [], False
            with self.lock:
                for action, doc in zip(lines[::2], lines[1::2], strict=True):
                    (op, meta), = action.items()
                    index, doc_id = meta["_index"], meta["_id"]
                    store = self._index(index)["docs"]
                    status = self.item_script.pop(0) if self.item_script else None
                    if status is None and doc_id in self.reject_ids:
                        status = 400
                    if status is None:
                        if op == "create" and doc_id in store:
                            status = 409
                        else:
                            status = 200 if doc_id in store else 201
                    if status < 300:
                        store[doc_id] = doc
                        if status == 201:
                            self.created[(index, doc_id)] += 1
                    item: dict[str, Any] = {"_index": index, "_id": doc_id, "status": status}
                    if status >= 300:
                        errors = True
                        item["error"] = {
                            409: {"type": "version_conflict_engine_exception",
                                  "reason": f"[{doc_id}]: version conflict, document already "
                                            "exists (current version [1])"},
                            400: {"type": "document_parsing_exception",
                                  "reason": "failed to parse field [created_at] of type [date]"},
                        }.get(status, {"type": "es_rejected_execution_exception",
                                       "reason": "rejected execution of primary operation"})
                    items.append({op: item})
                lost = self.apply_then_fail > 0
                if lost:
                    self.apply_then_fail -= 1
            if lost:  # applied, but the client never hears it: its retry must be harmless
                h.reply(503, {"error": {"type": "unavailable_shards_exception"}, "status": 503})
                return
            h.reply(200, {"took": 1, "errors": errors, "items": items})
        finally:
            with self.lock:
                self.concurrent -= 1


# --- fixtures ---------------------------------------------------------------------------
def real_es() -> str | None:
    return os.environ.get("ES_URL") or None


def registry() -> Registry:
    return Registry.from_dict(yaml.safe_load(REGISTRY_YAML))


def make_store(url: str, prefix: str, **kw: Any) -> ElasticsearchStore:
    kw.setdefault("retry_for", 20)
    kw.setdefault("initial_backoff", 0.05)
    kw.setdefault("max_backoff", 0.2)
    return ElasticsearchStore(url, prefix=prefix, username=os.environ.get("ES_USERNAME"),
                              password=os.environ.get("ES_PASSWORD"),
                              verify_certs=os.environ.get("ES_VERIFY_CERTS", "1") != "0", **kw)


def _cleanup_real(url: str, prefix: str) -> None:
    from elasticsearch import Elasticsearch

    auth = None
    if os.environ.get("ES_USERNAME"):
        auth = (os.environ["ES_USERNAME"], os.environ.get("ES_PASSWORD", ""))
    c = Elasticsearch(url, basic_auth=auth)
    try:
        # by name: ES 9 refuses wildcard deletes (action.destructive_requires_name)
        for name in SPECS:
            c.options(ignore_status=404).indices.delete(index=index_name(prefix, name))
        for name in index_templates(prefix):
            c.options(ignore_status=404).indices.delete_index_template(name=name)
        c.options(ignore_status=404).cluster.delete_component_template(
            name=f"{prefix}-settings")
    finally:
        c.close()


@pytest.fixture
def es() -> Iterator[tuple[str, FakeES | None, str]]:
    """(url, fake or None for a real cluster, a prefix of our own)."""
    prefix = f"mwtest-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    url = real_es()
    if url:
        yield url, None, prefix
        _cleanup_real(url, prefix)
        return
    fake = FakeES()
    yield fake.url, fake, prefix
    fake.close()


def ev(i: int, kind: str = "post", created: str = "2026-11-02T09:00:00+08:00",
       label: str = "neutral", owner: str = "9100000001") -> Event:
    return Event(platform="weibo", id=str(5000 + i), kind=kind, account_id=owner,
                 owner_id=owner, text=f"通知第{i}号", created_at=created,
                 collected_at="2026-11-02T09:00:05+08:00", sentiment=0.5,
                 sentiment_label=label, post_id="5000" if kind == "comment" else None)


def alert(i: int) -> Alert:
    return Alert(id=f"a{i}", rule="volume_spike", type="spike", severity="red",
                 timestamp=f"2026-11-02T09:{i % 60:02d}:00+08:00", account_id="9100000011",
                 values={"value": 30, "baseline": 2.5})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with(store: ElasticsearchStore, *calls: Any) -> None:
    await store.open()
    try:
        for fn, arg in calls:
            await fn(arg)
    finally:
        await store.close()


# --- mappings (pure) --------------------------------------------------------------------
def test_every_record_field_is_mapped_explicitly() -> None:
    """A new record field must get a mapping (dynamic: false would hide it from search)."""
    def names(rec: Any) -> set[str]:
        return set(rec._options.fields)

    cases = {"posts": Event, "comments": Event, "alerts": Alert, "linkage": LinkageResult,
             "dead_letters": DeadLetter}
    for index, rec in cases.items():
        missing = names(rec) - set(MAPPINGS[index]["properties"])
        assert not missing, f"{index}: unmapped {sorted(missing)}"
    assert not set(MEASURE_FIELDS) - set(MAPPINGS["measures"]["properties"])


def test_templates_shape() -> None:
    t = index_templates("matrixwatch")
    assert set(t) == {f"matrixwatch-{n}" for n in ("posts", "comments", "alerts", "linkage",
                                                    "linkage-items", "measures",
                                                    "dead-letters", "index-scores",
                                                    "compliance")}
    patterns = [p for body in t.values() for p in body["index_patterns"]]
    assert len(patterns) == len(set(patterns)) and not any("*" in p for p in patterns)
    for name in ("matrixwatch-posts", "matrixwatch-comments"):
        assert t[name]["template"]["aliases"] == {"matrixwatch-events": {}}
    for spec in SPECS.values():
        assert spec.mapping["dynamic"] is False
        flat = mapped_fields(spec.mapping)
        assert flat[spec.time_field] == "date"
        for field, fspec in spec.mapping["properties"].items():
            for sub in [fspec, *(fspec.get("fields") or {}).values()]:
                if sub.get("type") == "text" and sub.get("index", True):
                    assert sub["analyzer"] == "cjk", field
    posts = mapped_fields(MAPPINGS["posts"])
    assert posts["text.raw"] == "keyword" and posts["sentiment"] == "float"
    assert {posts[f] for f in ("owner_unit", "owner_level", "owner_parent", "id")} == {"keyword"}
    scores = mapped_fields(MAPPINGS["index_scores"])
    assert (SPECS["index_scores"].time_field, SPECS["compliance"].time_field) == (
        "period_end", "checked_at")
    assert {scores[f] for f in ("peer_group", "level", "vertical", "period")} == {"keyword"}
    assert (scores["composite"], scores["followers"], scores["rank"], scores["veto"]) == (
        "double", "double", "integer", "boolean")
    comp = MAPPINGS["compliance"]["properties"]
    assert comp["findings_json"] == {"type": "text", "index": False}  # kept, not searched
    assert {comp[f"{c}_status"]["type"] for c in ("stale", "gaps", "monthly", "interaction",
                                                  "errata", "duplicate")} == {"keyword"}


# --- recorded exchanges -----------------------------------------------------------------
CASSETTES = {
    # name: (what the store does, whether it can also run against a real ES)
    "templates_reinstall": True,
    "bulk_create_409": True,
    "bulk_mapping_rejection": True,
    "bulk_429": False,
    "bulk_503": False,
    "bulk_index_reports": True,
}

# One 排行榜 row and one compliance row as the reports write them (reports/storage.py).
SCORE_ID = "weibo:9100000011|2026-10"
COMPLIANCE_ID = "weibo:9100000011|2026-10|2026-11-01T00:00:00+08:00"
SCORE_DOC: dict[str, Any] = {
    "account_id": "9100000011", "platform": "weibo", "name": "甲市发布", "level": "city",
    "vertical": "发布", "peer_group": "city/发布", "period": "2026-10",
    "period_start": "2026-10-01T00:00:00+08:00", "period_end": "2026-11-01T00:00:00+08:00",
    "followers": 1300, "gov_share": 0.333333, "interaction_index": 87.5,
    "composite": 60.0, "rank": 2, "group_size": 2, "veto": False, "veto_reason": None}
COMPLIANCE_DOC: dict[str, Any] = {
    "account_id": "9100000011", "platform": "weibo", "name": "甲市发布", "level": "city",
    "vertical": "发布", "period": "2026-10", "period_start": "2026-10-01T00:00:00+08:00",
    "period_end": "2026-11-01T00:00:00+08:00", "checked_at": "2026-11-01T00:00:00+08:00",
    "status": "veto", "veto": True, "fails": 2, "stale_status": "veto", "errata_status": "fail",
    "last_post_at": "2026-10-12T10:00:00+08:00", "days_since_last_post": 19.583333,
    "reply_rate": None, "errata_hits": 1, "duplicate_with": [],
    "findings_json": json.dumps({"findings": [{"check": "stale", "status": "veto"}]})}


async def _act(name: str, store: ElasticsearchStore) -> None:
    await store.connect()
    try:
        if name == "templates_reinstall":
            await store.ensure_templates()
        elif name == "bulk_create_409":
            await store.write_events([ev(1), ev(2)])
            await store.write_events([ev(2), ev(3)])
        elif name == "bulk_429":
            await store.write_alerts([alert(1), alert(2)])
        elif name == "bulk_503":
            await store.write_events([ev(1)])
        elif name == "bulk_mapping_rejection":
            await store.write_events([ev(8), ev(9, created="yesterday")])
        elif name == "bulk_index_reports":  # the month's report, then its rerun
            for composite, rank in ((60.0, 2), (66.666667, 1)):
                await store.write_docs("index_scores", [
                    (SCORE_ID, {**SCORE_DOC, "composite": composite, "rank": rank})])
                await store.write_docs("compliance", [(COMPLIANCE_ID, COMPLIANCE_DOC)])
    finally:
        await store.close()


def _check_outcome(name: str, store: ElasticsearchStore) -> None:
    if name == "bulk_create_409":
        assert [d["id"] for d in store.iter_events()] == ["5001", "5002", "5003"]
    elif name == "bulk_mapping_rejection":
        assert [d["id"] for d in store.iter_events()] == ["5008"]
        (dl,) = store.iter_dead_letters()
        assert dl["source"] == f"es:{store.index('posts')}/weibo:5009"
        assert dl["reason"].startswith("es_rejected: document_parsing_exception")
        assert json.loads(dl["payload"])["created_at"] == "yesterday"
        assert store.rejected == 1
    elif name == "bulk_index_reports":
        assert list(store.iter_docs("index_scores")) == [
            {**SCORE_DOC, "composite": 66.666667, "rank": 1}]
        assert list(store.iter_docs("compliance")) == [COMPLIANCE_DOC]


@pytest.mark.parametrize("name", sorted(CASSETTES))
def test_recorded_exchange(name: str) -> None:
    """The sink sends what ES expects, in order, and reads ES's answers right."""
    url = real_es()
    if url:
        if not CASSETTES[name]:
            pytest.skip("needs fault injection: only the recording can do it")
        prefix = f"mwtest-{os.getpid()}-{name.replace('_', '-')}"
        store = make_store(url, prefix, install_templates=True)
        try:
            run(_act("templates_reinstall", store))  # the first installation
            run(_act(name, store))
            _check_outcome(name, store)
        finally:
            _cleanup_real(url, prefix)
        return
    server = ReplayES(DATA / f"{name}.json")
    try:
        store = make_store(server.url, "matrixwatch", install_templates=False)
        run(_act(name, store))
        assert server.mismatches == []
        assert server.pending == [], f"{len(server.pending)} recorded requests never sent"
        if name in ("bulk_429", "bulk_503"):
            assert store.retries == 2 if name == "bulk_429" else store.retries == 1
        if name == "bulk_mapping_rejection":
            assert store.rejected == 1
    finally:
        server.close()


# --- behaviour (fake or real) -----------------------------------------------------------
def test_templates_bulk_ids_and_idempotence(es: tuple[str, FakeES | None, str]) -> None:
    url, fake, prefix = es
    store = make_store(url, prefix)
    run(_with(store, (store.write_events, [ev(1), ev(2)]),
              (store.write_events, [ev(1), ev(2)])))  # redelivery: 409s count as success
    run(store.ensure_templates())  # twice: idempotent
    run(store.close())
    docs = list(store.iter_events())
    assert [d["id"] for d in docs] == ["5001", "5002"]
    assert set(docs[0]) == set(ev(1).asdict())  # derived fields are not read back
    if fake is not None:
        puts = {urlsplit(p).path for m, p, _ in fake.requests if p.startswith("/_index_template")}
        assert puts == {f"/_index_template/{store.index(n)}" for n in MAPPINGS}
        first, second = fake.bulk_bodies()[:2]
        assert first[0] == {"create": {"_index": store.index("posts"), "_id": "weibo:5001"}}
        assert first[1]["text"] == "通知第1号" and first[1]["is_negative"] == 0
        assert second[0] == first[0]
        assert sum(fake.created.values()) == 2


def test_routing_labels_regions_and_read_order(es: tuple[str, FakeES | None, str]) -> None:
    url, fake, prefix = es
    store = make_store(url, prefix, registry=registry())
    events = [ev(3, "comment", "2026-11-02T10:00:00+08:00", "negative", owner="9100000111"),
              ev(1, "post", "2026-11-02T09:30:00+08:00"),
              ev(2, "repost", "2026-11-02T01:00:00+00:00"),  # 09:00 +08: first
              ev(4, "comment", "2026-11-02T09:30:00+08:00", owner="9100000099")]
    run(_with(store, (store.write_events, events)))
    assert [d["id"] for d in store.iter_events()] == ["5002", "5001", "5004", "5003"]
    if fake is not None:
        posts, comments = fake.docs(store.index("posts")), fake.docs(store.index("comments"))
        assert set(posts) == {"weibo:5001", "weibo:5002"}
        assert set(comments) == {"weibo:5003", "weibo:5004"}
        neg = comments["weibo:5003"]
        assert (neg["is_negative"], neg["owner_label"], neg["owner_region"]) == (
            1, "甲市东区发布", "甲市")
        assert comments["weibo:5004"]["owner_label"] == "9100000099"  # not in the registry
        assert posts["weibo:5001"]["owner_region"] == "测试省"


def test_linkage_items_and_measures(es: tuple[str, FakeES | None, str]) -> None:
    url, _, prefix = es
    store = make_store(url, prefix, registry=registry())
    res = LinkageResult(post_id="5000000001", account_id="9100000001", platform="weibo",
                        created_at="2026-11-02T09:00:00+08:00",
                        deadline="2026-11-03T09:00:00+08:00",
                        expected=["9100000011", "9100000012", "9100000013"],
                        linked={"9100000011": 1800.0, "9100000012": 7200.0}, rate=2 / 3,
                        closed_at="2026-11-03T10:00:00+08:00")
    row = {"account_id": "9100000011", "platform": "weibo", "name": "甲市发布",
           "unit": "甲市人民政府新闻办公室", "level": "city", "parent": "9100000001",
           "period_start": "2026-11-01T00:00:00+08:00", "period_end": "2026-11-08T00:00:00+08:00",
           "tasks_expected": 3, "tasks_linked": 2, "response_rate": 0.6667,
           "median_latency": 1800.0, "p90_latency": 7200.0, "interactions_up": 4,
           "interactions_down": 9, "coverage": 0.75}
    run(_with(store, (store.write_linkage, [res]), (store.write_linkage, [res]),
              (store.write_measures, [row]), (store.write_measures, [{**row, "coverage": 0.8}])))
    assert list(store.iter_linkage()) == [res.asdict()]
    items = list(store.iter_linkage_items())
    assert [(i["account_id"], i["linked"], i["latency_seconds"]) for i in items] == [
        ("9100000011", True, 1800.0), ("9100000012", True, 7200.0),
        ("9100000013", False, None)]
    assert items[0]["linked_at"] == "2026-11-02T09:30:00+08:00"
    assert items[0]["superior_label"] == "测试省发布" and items[2]["account_label"] == "丙市发布"
    (m,) = store.iter_measures()
    assert m["coverage"] == 0.8 and m["account_label"] == "甲市发布"
    counts = store.counts()
    assert (counts["linkage"], counts["linkage_items"], counts["measures"]) == (1, 3, 1)


def test_report_docs_are_overwritten_by_id(es: tuple[str, FakeES | None, str]) -> None:
    """write_docs: the index op with the caller's ids; a rerun replaces, never adds."""
    url, fake, prefix = es
    store = make_store(url, prefix)
    other = ("weibo:9100000012|2026-10", {**SCORE_DOC, "account_id": "9100000012",
                                           "name": "乙市发布", "rank": 1, "composite": 70.0})
    first = [(SCORE_ID, SCORE_DOC), other]
    rerun = [(SCORE_ID, {**SCORE_DOC, "composite": 61.5}), other]
    run(_with(store, (lambda d: store.write_docs("index_scores", d), first),
              (lambda d: store.write_docs("index_scores", d), rerun),
              (lambda d: store.write_docs("compliance", d), [(COMPLIANCE_ID, COMPLIANCE_DOC)])))
    docs = list(store.iter_docs("index_scores"))
    assert [(d["account_id"], d["composite"]) for d in docs] == [
        ("9100000011", 61.5), ("9100000012", 70.0)]
    assert [d["status"] for d in store.iter_docs("compliance")] == ["veto"]
    if fake is not None:
        assert set(fake.docs(store.index("index_scores"))) == {SCORE_ID, other[0]}
        assert max(fake.created.values()) == 1  # created once, then updated in place
        assert fake.bulk_bodies()[-1][0] == {
            "index": {"_index": f"{prefix}-compliance", "_id": COMPLIANCE_ID}}
    with pytest.raises(ValueError, match="no index spec"):
        run(store.write_docs("index-scores", []))


def test_strict_mode_raises_on_rejection(es: tuple[str, FakeES | None, str]) -> None:
    url, fake, prefix = es
    if fake is not None:
        fake.reject_ids = {"weibo:5009"}  # what a real ES says to created_at="yesterday"
    store = make_store(url, prefix, on_reject="raise")
    with pytest.raises(BulkRejected, match="rejected"):
        run(_with(store, (store.write_events, [ev(9, created="yesterday")])))


def test_non_retryable_request_error_raises_without_dead_letters() -> None:
    """A 401 is the store's problem, not the document's: raise, dead-letter nothing."""
    fake = FakeES()
    try:
        fake.bulk_script = [401]
        store = make_store(fake.url, "mw")
        with pytest.raises(BulkError, match="401"):
            run(_with(store, (store.write_events, [ev(1)])))
        assert fake.docs(store.index("dead_letters")) == {} and store.rejected == 0
    finally:
        fake.close()


def test_item_and_request_retries_resend_only_pending() -> None:
    fake = FakeES()
    try:
        fake.bulk_script = [503, 429]  # whole request refused twice
        fake.item_script = [201, 429]  # then one item rejected once
        store = make_store(fake.url, "mw")
        run(_with(store, (store.write_alerts, [alert(1), alert(2)])))
        bodies = fake.bulk_bodies()
        assert len(bodies) == 4
        assert [line["create"]["_id"] for line in bodies[3][::2]] == ["a2"]
        assert set(fake.docs(store.index("alerts"))) == {"a1", "a2"}
    finally:
        fake.close()


def test_rejection_with_a_full_buffer_does_not_deadlock() -> None:
    """Dead-lettering a refused document needs buffer room of its own: taken after the
    chunk's room is released, so a full buffer cannot wait on itself."""
    fake = FakeES()
    try:
        fake.reject_ids = {"weibo:5002"}
        store = make_store(fake.url, "mw", max_in_flight=2, chunk_size=2)

        async def go() -> None:
            await asyncio.wait_for(_with(store, (store.write_events, [ev(1), ev(2)])), 10)

        run(go())
        assert set(fake.docs(store.index("posts"))) == {"weibo:5001"}
        assert len(fake.docs(store.index("dead_letters"))) == 1
    finally:
        fake.close()


def test_unreachable_es_gives_up_after_retry_for() -> None:
    from matrixwatch.broker import free_port

    store = make_store(f"http://127.0.0.1:{free_port()}", "mw", retry_for=0.5)
    started = time.monotonic()
    with pytest.raises(BulkError, match="pending"):
        run(_with(store, (store.write_events, [ev(1)])))
    assert time.monotonic() - started < 5


def test_in_flight_bound_applies_back_pressure() -> None:
    """Four writers of 300 documents against a slow ES never have over 600 in flight."""
    fake = FakeES()
    fake.bulk_delay = 0.05
    try:
        store = make_store(fake.url, "mw", max_in_flight=600, chunk_size=300)

        async def go() -> None:
            await store.open()
            await asyncio.gather(*[
                store.write_events([ev(k * 1000 + i) for i in range(300)]) for k in range(4)])
            await store.close()

        run(go())
        assert store.in_flight.peak <= 600 and store.in_flight.waits >= 2
        assert fake.peak_concurrent <= 2
        assert len(fake.docs(store.index("posts"))) == 1200
    finally:
        fake.close()


# --- the outage ---------------------------------------------------------------------------
def _slow_enabled(config: pytest.Config) -> bool:
    expr = str(config.getoption("markexpr") or "")
    return bool(os.environ.get("MW_SLOW")) or ("slow" in expr and "not slow" not in expr)


async def _stream_through_outage(
    store: ElasticsearchStore, fake: FakeES, *, outage: float, n: int = 3000, batch: int = 100,
    rate: float = 1000.0, prefetch: int = 200,
) -> dict[str, Any]:
    """Feed ``n`` events like a consumer (bounded prefetch) into the store, with ES down
    for ``outage`` seconds once a third is written. Returns what a report needs."""
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=prefetch)
    acks: list[tuple[float, int]] = []
    produced: list[tuple[float, int]] = []
    window: dict[str, float] = {}

    async def source() -> None:  # the topic: bounded prefetch, so a paused agent stops it
        for i in range(n):
            await queue.put(ev(i))
            produced.append((time.monotonic(), i + 1))
            if i % batch == batch - 1:
                await asyncio.sleep(batch / rate)

    async def agent() -> None:  # take a batch, write it, then "commit"
        done = 0
        while done < n:
            items = [await queue.get()]
            while len(items) < batch and not queue.empty():
                items.append(queue.get_nowait())
            await store.write_events(items)
            done += len(items)
            acks.append((time.monotonic(), done))
            if "start" not in window and done >= n // 3:
                window["start"] = time.monotonic()
                window["end"] = window["start"] + outage
                fake.outage_until = window["end"]
                fake.apply_then_fail = 1  # the first write after recovery loses its reply

    async def alerts_agent() -> None:  # a second writer sharing the in-flight bound
        for k in range(10):
            await store.write_alerts([alert(k * 10 + j) for j in range(10)])
            await asyncio.sleep(outage / 10)

    await store.open()
    t0 = time.monotonic()
    try:
        await asyncio.gather(source(), agent(), alerts_agent())
    finally:
        await store.close()
    start, end = window["start"], window["end"]
    during = [d for t, d in acks if start + 0.05 < t < end]
    ack_before = max(d for t, d in acks if t <= start + 0.05)
    made_by_end = max((c for t, c in produced if t <= end), default=0)
    made_at_start = max((c for t, c in produced if t <= start), default=0)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(acks)]
    return {
        "events": n, "seconds": time.monotonic() - t0, "outage": outage,
        "written": len(fake.docs(store.index("posts"))),
        "alerts_written": len(fake.docs(store.index("alerts"))),
        "duplicates": sum(1 for c in fake.created.values() if c > 1),
        "acks_during_outage": len({d for d in during if d > ack_before}),
        "produced_during_outage": made_by_end - made_at_start,
        "paused_seconds": max(gaps),
        "refused_bulks": fake.bulk_refused, "retries": store.retries,
        "in_flight_peak": store.in_flight.peak, "dead_letters": store.rejected,
        "prefetch": prefetch, "batch": batch,
    }


def _assert_survived(r: dict[str, Any]) -> None:
    assert r["written"] == r["events"] and r["alerts_written"] == 100
    assert r["duplicates"] == 0 and r["dead_letters"] == 0
    assert r["acks_during_outage"] == 0  # nothing committed while ES was down
    # the source stalls once the prefetch is full: paused, not buffering without bound
    assert r["produced_during_outage"] <= r["prefetch"] + r["batch"] + 1
    assert r["outage"] - 0.2 <= r["paused_seconds"]
    assert r["refused_bulks"] >= 2 and r["in_flight_peak"] <= 5000


def test_survives_es_outage_short() -> None:
    """CI's version of the outage: 3 s of 503s, then a lost reply, then recovery."""
    fake = FakeES()
    try:
        store = make_store(fake.url, "mw", retry_for=60, initial_backoff=0.1, max_backoff=0.5)
        r = run(_stream_through_outage(store, fake, outage=float(
            os.environ.get("MW_ES_OUTAGE", "3"))))
        print("outage result:", json.dumps(r))
        _assert_survived(r)
        assert r["paused_seconds"] <= r["outage"] + 2
    finally:
        fake.close()


@pytest.mark.slow
def test_survives_es_outage_60s(request: pytest.FixtureRequest) -> None:
    """The 60 s outage with production backoff (max 10 s). Run: MW_SLOW=1 or -m slow."""
    if not _slow_enabled(request.config):
        pytest.skip("slow: set MW_SLOW=1 or select -m slow")
    fake = FakeES()
    try:
        store = make_store(fake.url, "mw", retry_for=300, initial_backoff=0.5, max_backoff=10)
        r = run(_stream_through_outage(store, fake, outage=60.0, n=20000, rate=2000.0))
        print("outage result:", json.dumps(r))
        _assert_survived(r)
        assert r["paused_seconds"] <= 60 + 11
    finally:
        fake.close()
