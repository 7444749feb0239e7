"""The Elasticsearch store against a recorded HTTP contract (a loopback stub that
answers like ES 9), and against a real cluster when ES_URL is set.

The stub records every request, so the tests check what the sink really sends:
deterministic ids, the op type, NDJSON bulk bodies, and the retry of 429/503 items.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from matrixwatch.streams.records import Alert, Event
from matrixwatch.streams.sinks.elasticsearch import MAPPINGS, ElasticsearchStore

ES_HEADERS = {"X-Elastic-Product": "Elasticsearch",
              "Content-Type": "application/vnd.elasticsearch+json; compatible-with=9"}


class FakeES:
    """Answers _index_template, _bulk, _refresh, _search and _count like ES 9."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}
        self.bulk_script: list[Any] = []  # per bulk call: None (normal) or an int status
        self.item_script: list[int] = []  # statuses forced on the next items
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in ES_HEADERS.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_HEAD(self) -> None:
                self._reply(200, {})

            def do_PUT(self) -> None:
                body = self._body()
                fake.requests.append(("PUT", self.path, body))
                if self.path.split("?")[0].endswith("/_bulk"):
                    self._bulk(body)
                else:
                    self._reply(200, {"acknowledged": True})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, b""))
                self._reply(200, {"name": "fake", "version": {"number": "9.1.0"},
                                  "tagline": "You Know, for Search"})

            def do_POST(self) -> None:
                body = self._body()
                fake.requests.append(("POST", self.path, body))
                path = self.path.split("?")[0]
                if path.endswith("/_bulk"):
                    self._bulk(body)
                elif path.endswith("/_refresh"):
                    self._reply(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
                elif path.endswith("/_search") or "/_search" in path:
                    index = path.strip("/").split("/")[0]
                    hits = [{"_index": index, "_id": k, "_source": v, "sort": [i]}
                            for i, (k, v) in enumerate(sorted(fake.docs.get(index, {}).items()))]
                    self._reply(200, {"_scroll_id": "s1", "hits": {"total": {
                        "value": len(hits), "relation": "eq"}, "hits": hits},
                        "_shards": {"total": 1, "successful": 1, "failed": 0,
                                    "skipped": 0}})
                else:
                    self._reply(200, {})

            def do_DELETE(self) -> None:
                self._reply(200, {"succeeded": True, "num_freed": 1})

            def _bulk(self, body: bytes) -> None:
                forced = fake.bulk_script.pop(0) if fake.bulk_script else None
                if forced is not None:
                    self._reply(forced, {"error": {"type": "es_rejected_execution_exception"},
                                         "status": forced})
                    return
                lines = [json.loads(x) for x in body.splitlines() if x.strip()]
                items, errors = [], False
                for action, doc in zip(lines[::2], lines[1::2], strict=True):
                    (op, meta), = action.items()
                    index, doc_id = meta["_index"], meta["_id"]
                    store = fake.docs.setdefault(index, {})
                    status = fake.item_script.pop(0) if fake.item_script else None
                    if status is None:
                        status = 409 if op == "create" and doc_id in store else 201
                    if status < 300:
                        store[doc_id] = doc
                    if status >= 300:
                        errors = True
                    item: dict[str, Any] = {"_index": index, "_id": doc_id, "status": status}
                    if status >= 300:
                        item["error"] = {"type": "version_conflict_engine_exception"
                                         if status == 409 else "es_rejected_execution_exception"}
                    items.append({op: item})
                self._reply(200, {"took": 1, "errors": errors, "items": items})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bulk_bodies(self) -> list[list[dict[str, Any]]]:
        return [[json.loads(x) for x in body.splitlines() if x.strip()]
                for m, p, body in self.requests if p.split("?")[0].endswith("/_bulk")]


@pytest.fixture
def es() -> Iterator[tuple[str, FakeES | None]]:
    real = os.environ.get("ES_URL")
    if real:
        yield real, None
        return
    fake = FakeES()
    yield fake.url, fake
    fake.server.shutdown()


def ev(i: int) -> Event:
    return Event(platform="weibo", id=str(5000 + i), kind="post", account_id="9100000001",
                 owner_id="9100000001", text=f"通知第{i}号", created_at="2026-11-02T09:00:00+08:00",
                 collected_at="2026-11-02T09:00:05+08:00", sentiment=0.5,
                 sentiment_label="neutral")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def store_for(url: str, prefix: str = "mwtest") -> ElasticsearchStore:
    return ElasticsearchStore(url, prefix=f"{prefix}-{os.getpid()}", retry_for=20)


def test_templates_bulk_ids_and_idempotence(es: tuple[str, FakeES | None]) -> None:
    url, fake = es
    store = store_for(url)

    async def go() -> None:
        await store.open()
        await store.write_events([ev(1), ev(2)])
        await store.write_events([ev(1), ev(2)])  # redelivery: 409s count as success
        await store.close()

    run(go())
    docs = list(store.iter_events())
    assert [d["id"] for d in docs] == ["5001", "5002"]
    if fake is not None:
        puts = [p for m, p, _ in fake.requests if p.startswith("/_index_template")]
        assert {p.split("?")[0] for p in puts} == {
            f"/_index_template/{store.index(n)}" for n in MAPPINGS}
        first, second = fake.bulk_bodies()[:2]
        assert first[0] == {"create": {"_index": store.index("events"), "_id": "weibo:5001"}}
        assert first[1]["text"] == "通知第1号"
        assert second[0] == first[0]


def test_retries_429_and_503_until_written(es: tuple[str, FakeES | None]) -> None:
    url, fake = es
    if fake is None:
        pytest.skip("fault injection needs the contract stub")
    fake.bulk_script = [503, 429]          # whole request refused twice
    fake.item_script = [201, 429]          # then one item rejected once
    store = store_for(url)

    async def go() -> None:
        await store.open()
        await store.write_alerts([
            Alert(id="a1", rule="r", type="spike", severity="red",
                  timestamp="2026-11-02T09:00:00+08:00", account_id="1"),
            Alert(id="a2", rule="r", type="spike", severity="red",
                  timestamp="2026-11-02T09:05:00+08:00", account_id="1"),
        ])
        await store.close()

    run(go())
    bodies = fake.bulk_bodies()
    assert len(bodies) == 4  # 503, 429, partial, retry of the rejected item only
    assert [a[0]["create"]["_id"] for a in [bodies[3]]] == ["a2"]
    assert set(fake.docs[store.index("alerts")]) == {"a1", "a2"}


def test_mapping_rejection_is_an_error_not_a_silent_drop(es: tuple[str, FakeES | None]) -> None:
    url, fake = es
    if fake is None:
        pytest.skip("fault injection needs the contract stub")
    fake.item_script = [400]
    store = store_for(url)

    async def go() -> None:
        await store.open()
        try:
            await store.write_events([ev(9)])
        finally:
            await store.close()

    with pytest.raises(RuntimeError, match="rejected"):
        run(go())
