"""The Elasticsearch 9 store: bulk writes with deterministic ids.

Events and alerts are written with ``create``: a 409 means the same document is
already there, which counts as success. Linkage results use ``index`` because a
re-closed task must overwrite. 429 and 5xx are retried with exponential backoff
(tenacity); anything else raises, so the agent does not ack and Faust redelivers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from matrixwatch.streams.records import Alert, DeadLetter, Event, LinkageResult
from matrixwatch.streams.sinks.base import Store, alert_sort_key
from matrixwatch.streams.sinks.sqlite import dead_letter_id

log = logging.getLogger(__name__)

RETRYABLE = {429, 500, 502, 503, 504}

TEXT_CJK = {"type": "text", "analyzer": "cjk", "fields": {"raw": {"type": "keyword"}}}
DATE = {"type": "date", "format": "strict_date_optional_time||epoch_second"}

MAPPINGS: dict[str, dict[str, Any]] = {
    "events": {
        "properties": {
            "platform": {"type": "keyword"}, "id": {"type": "keyword"},
            "kind": {"type": "keyword"}, "account_id": {"type": "keyword"},
            "owner_id": {"type": "keyword"}, "account_name": {"type": "keyword"},
            "text": TEXT_CJK, "root_text": TEXT_CJK,
            "created_at": DATE, "collected_at": DATE, "root_created_at": DATE,
            "root_id": {"type": "keyword"}, "parent_id": {"type": "keyword"},
            "post_id": {"type": "keyword"}, "root_account_id": {"type": "keyword"},
            "reply_to_id": {"type": "keyword"}, "chain": {"type": "keyword"},
            "url": {"type": "keyword", "index": False},
            "reposts_count": {"type": "long"}, "comments_count": {"type": "long"},
            "attitudes_count": {"type": "long"}, "followers_count": {"type": "long"},
            "sentiment": {"type": "float"}, "sentiment_label": {"type": "keyword"},
        }
    },
    "alerts": {
        "properties": {
            "id": {"type": "keyword"}, "rule": {"type": "keyword"},
            "type": {"type": "keyword"}, "severity": {"type": "keyword"},
            "timestamp": DATE, "account_id": {"type": "keyword"},
            "post_id": {"type": "keyword"}, "platform": {"type": "keyword"},
            "title": TEXT_CJK, "message": TEXT_CJK, "samples": {"type": "keyword"},
            "values": {"type": "object", "dynamic": True},
        }
    },
    "linkage": {
        "properties": {
            "post_id": {"type": "keyword"}, "account_id": {"type": "keyword"},
            "platform": {"type": "keyword"}, "created_at": DATE, "deadline": DATE,
            "closed_at": DATE, "expected": {"type": "keyword"},
            "linked": {"type": "flattened"}, "rate": {"type": "float"},
        }
    },
    "dead_letters": {
        "properties": {
            "reason": {"type": "keyword"}, "source": {"type": "keyword"},
            "payload": {"type": "text", "index": False}, "received_at": DATE,
            "offset": {"type": "long"},
        }
    },
}


class BulkError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"bulk item failed with {status}: {detail}")
        self.status = status


class ElasticsearchStore(Store):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "matrixwatch",
        username: str | None = None,
        password: str | None = None,
        verify_certs: bool = True,
        retry_for: float = 300.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._auth = (username, password) if username and password else None
        self.verify_certs = verify_certs
        self.retry_for = retry_for
        self._client: Any = None

    def index(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def _new_client(self, async_: bool) -> Any:
        from elasticsearch import AsyncElasticsearch, Elasticsearch

        cls = AsyncElasticsearch if async_ else Elasticsearch
        return cls(self.url, basic_auth=self._auth, verify_certs=self.verify_certs,
                   request_timeout=30)

    async def open(self) -> None:
        self._client = self._new_client(async_=True)
        await self.ensure_templates()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ensure_templates(self) -> None:
        """Install one index template per index; idempotent (PUT replaces)."""
        for name, mapping in MAPPINGS.items():
            await self._client.indices.put_index_template(
                name=self.index(name),
                index_patterns=[self.index(name) + "*"],
                template={"settings": {"number_of_replicas": 0}, "mappings": mapping},
            )

    # --- writes ---------------------------------------------------------------------
    async def _bulk(self, index: str, op: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        if not docs:
            return
        pending = docs
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(BulkError),
            wait=wait_exponential_jitter(initial=0.5, max=15),
            stop=stop_after_delay(self.retry_for),
            reraise=True,
        ):
            with attempt:
                pending = await self._bulk_once(index, op, pending)

    async def _bulk_once(
        self, index: str, op: str, docs: list[tuple[str, dict[str, Any]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """One bulk request. Returns nothing on success; raises BulkError to retry the rest."""
        body: list[dict[str, Any]] = []
        for doc_id, doc in docs:
            body.append({op: {"_index": index, "_id": doc_id}})
            body.append(doc)
        try:
            resp = await self._client.bulk(operations=body, refresh=False)
        except Exception as e:  # transport errors and 429/5xx on the whole request
            status = int(getattr(e, "status_code", 0) or getattr(getattr(e, "meta", None),
                                                                  "status", 0) or 0)
            if status in RETRYABLE or status == 0:
                log.warning("bulk to %s failed (%s); retrying", index, status or type(e).__name__)
                raise BulkError(status or 503, str(e)) from e
            raise
        if not resp.get("errors"):
            return []
        retry: list[tuple[str, dict[str, Any]]] = []
        worst: BulkError | None = None
        for (doc_id, doc), item in zip(docs, resp["items"], strict=True):
            res = item.get(op, {})
            status = int(res.get("status", 200))
            if status < 300 or (op == "create" and status == 409):
                continue
            if status in RETRYABLE:
                retry.append((doc_id, doc))
                worst = BulkError(status, str(res.get("error")))
                continue
            raise RuntimeError(f"document {doc_id} rejected by {index}: {res.get('error')}")
        if retry:
            assert worst is not None
            # Remember what is left so the next attempt sends only that.
            docs[:] = retry
            raise worst
        return []

    async def write_events(self, events: Sequence[Event]) -> None:
        await self._bulk(self.index("events"), "create",
                         [(e.doc_id, e.asdict()) for e in events])

    async def write_alerts(self, alerts: Sequence[Alert]) -> None:
        await self._bulk(self.index("alerts"), "create", [(a.id, a.asdict()) for a in alerts])

    async def write_linkage(self, results: Sequence[LinkageResult]) -> None:
        await self._bulk(self.index("linkage"), "index",
                         [(f"{r.platform}:{r.post_id}", r.asdict()) for r in results])

    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        await self._bulk(self.index("dead_letters"), "create",
                         [(dead_letter_id(d), d.asdict()) for d in letters])

    # --- reads ----------------------------------------------------------------------
    def _scan(self, name: str) -> list[dict[str, Any]]:
        from elasticsearch import helpers

        client = self._new_client(async_=False)
        try:
            client.indices.refresh(index=self.index(name), ignore_unavailable=True)
            return [h["_source"] for h in helpers.scan(
                client, index=self.index(name), query={"query": {"match_all": {}}},
                ignore_unavailable=True)]
        finally:
            client.close()

    def iter_events(self) -> Iterator[dict[str, Any]]:
        from matrixwatch.streams.records import epoch

        docs = self._scan("events")
        return iter(sorted(docs, key=lambda d: (epoch(d["created_at"]), d["platform"], d["id"])))

    def iter_alerts(self) -> Iterator[dict[str, Any]]:
        return iter(sorted(self._scan("alerts"), key=alert_sort_key))

    def iter_linkage(self) -> Iterator[dict[str, Any]]:
        return iter(sorted(self._scan("linkage"), key=lambda d: (d["created_at"], d["post_id"])))

    def iter_dead_letters(self) -> Iterator[dict[str, Any]]:
        return iter(sorted(self._scan("dead_letters"), key=lambda d: d["received_at"]))

    def counts(self) -> dict[str, int]:
        client = self._new_client(async_=False)
        try:
            out = {}
            for name in MAPPINGS:
                try:
                    out[name] = int(client.count(index=self.index(name))["count"])
                except Exception:
                    out[name] = 0
            return out
        finally:
            client.close()
