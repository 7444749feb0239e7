"""The Elasticsearch 9 store: explicit index templates, bulk writes, back-pressure.

Why it looks like this (DESIGN.md, "Elasticsearch and Kibana"):

* **Templates.** One index template per index, all composed of one settings component
  template, with explicit mappings: keyword ids, dates that keep their offsets, Chinese
  text through the stock ``cjk`` bigram analyzer with a ``.raw`` keyword subfield, the
  sentiment score and label, and the owner account's name, unit, level and parent.
  ``dynamic: false`` keeps a new record field from ever rejecting a document (it stays
  in ``_source``); the tests check that every record field is mapped explicitly.
  Posts and reposts go to ``<prefix>-posts``, comments to ``<prefix>-comments``; both
  carry the alias ``<prefix>-events`` that Kibana and ``iter_events`` read.
* **Derived fields for dashboards.** Kibana is bad at flattened maps and formulas, so
  the store adds a few plain fields: ``is_negative`` (0/1, its average is the negative
  share), ``*_label`` (name, else id), ``owner_region`` and, per closed linkage task,
  one ``<prefix>-linkage-items`` document per expected subordinate (linked, latency).
  ``iter_*`` strip them again, so reads return exactly the records that were written.
* **Writes.** Bulk through ``elasticsearch.helpers.async_streaming_bulk`` with
  deterministic ids. ``create`` for events, alerts and dead letters (409 = already
  there = success), ``index`` for linkage, items, measures and ``write_docs`` (the
  index and compliance report rows, keyed by account + period): a re-closed task or a
  recomputed period overwrites. 429, 5xx and transport errors are retried, only the
  documents still pending, with jittered exponential backoff for up to ``retry_for``
  seconds; then the write raises and the agent's own retry loop takes over. A document
  ES refuses for good (a mapping rejection, 400) goes to the dead-letter index with the
  reason, so one poison record neither blocks the partition nor vanishes.
* **Back-pressure.** Documents sent but not yet acknowledged are counted against
  ``max_in_flight``; a write that would exceed it waits. The agents await every write
  before Faust may commit, so a slow or absent ES pauses the stream instead of
  buffering without bound or dropping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from prometheus_client import Counter, Gauge

from matrixwatch import metrics
from matrixwatch.streams.records import Alert, DeadLetter, Event, LinkageResult, epoch
from matrixwatch.streams.sinks.base import Store, alert_sort_key
from matrixwatch.streams.sinks.sqlite import dead_letter_id

log = logging.getLogger(__name__)

TEMPLATE_VERSION = 2
RETRYABLE = frozenset({429, 500, 502, 503, 504})
DLQ_PAYLOAD_CHARS = 4096

# Sink-internal metrics (served on the worker's /metrics with the project's ones).
ES_IN_FLIGHT = Gauge(
    "matrixwatch_es_in_flight_docs", "Documents sent to Elasticsearch and not yet acknowledged"
)
ES_WAITS = Counter(
    "matrixwatch_es_backpressure_waits_total", "Writes that waited for in-flight capacity"
)
ES_RETRIES = Counter(
    "matrixwatch_es_bulk_retries_total", "Bulk attempts retried, by cause", ["cause"]
)
ES_REJECTED = Counter(
    "matrixwatch_es_rejected_docs_total", "Documents ES refused for good, by index", ["index"]
)

# --- mappings ---------------------------------------------------------------------------
KEYWORD: dict[str, Any] = {"type": "keyword"}
TEXT_CJK: dict[str, Any] = {
    "type": "text", "analyzer": "cjk",
    # ignore_above: a keyword term over 32 KB would reject the whole document.
    "fields": {"raw": {"type": "keyword", "ignore_above": 1024}},
}
DATE: dict[str, Any] = {"type": "date", "format": "strict_date_optional_time||epoch_second"}
URL: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": False}


def _kw(*names: str) -> dict[str, Any]:
    return {n: dict(KEYWORD) for n in names}


def _typed(kind: str, *names: str) -> dict[str, Any]:
    return {n: {"type": kind} for n in names}


EVENT_PROPERTIES: dict[str, Any] = {
    **_kw("platform", "id", "kind", "account_id", "owner_id", "root_id", "parent_id",
          "post_id", "root_account_id", "reply_to_id", "chain", "sentiment_label",
          "owner_name", "owner_unit", "owner_level", "owner_parent",
          # derived: display labels, the owner's region, the author's matrix level
          "owner_label", "owner_region", "author_label", "author_level"),
    "account_name": {"type": "keyword", "fields": {"text": {"type": "text",
                                                             "analyzer": "cjk"}}},
    "text": TEXT_CJK, "root_text": TEXT_CJK,
    "created_at": DATE, "collected_at": DATE, "root_created_at": DATE,
    **_typed("long", "reposts_count", "comments_count", "attitudes_count",
             "followers_count"),
    "url": URL,
    "sentiment": {"type": "float"},
    "is_negative": {"type": "byte"},  # derived: 1 if negative, 0 otherwise
}

ALERT_PROPERTIES: dict[str, Any] = {
    **_kw("id", "rule", "type", "severity", "account_id", "post_id", "platform",
          "samples", "account_name", "unit", "level", "account_label"),
    "timestamp": DATE, "observed_at": DATE,
    "title": TEXT_CJK, "message": TEXT_CJK,
    "values": {"type": "object", "dynamic": True},
}

LINKAGE_PROPERTIES: dict[str, Any] = {
    **_kw("post_id", "account_id", "platform", "expected", "linked_ids",
          "account_name", "unit", "level", "account_label"),
    "created_at": DATE, "deadline": DATE, "closed_at": DATE,
    "linked": {"type": "flattened"},
    "rate": {"type": "float"},
    **_typed("integer", "expected_count", "linked_count"),
}

LINKAGE_ITEM_PROPERTIES: dict[str, Any] = {
    **_kw("post_id", "superior_id", "superior_label", "account_id", "account_label",
          "account_name", "unit", "level", "platform"),
    "created_at": DATE, "deadline": DATE, "linked_at": DATE,
    "linked": {"type": "boolean"},
    "linked_n": {"type": "byte"},  # 1/0: its average is the response rate
    "latency_seconds": {"type": "float"},
}

MEASURE_PROPERTIES: dict[str, Any] = {
    **_kw("account_id", "platform", "name", "unit", "level", "parent", "account_label"),
    "period_start": DATE, "period_end": DATE, "last_post_at": DATE,
    **_typed("integer", "tasks_expected", "tasks_linked", "interactions_up",
             "interactions_down"),
    **_typed("float", "response_rate", "median_latency", "p90_latency", "coverage"),
}

# 政务新媒体指数 and compliance rows (reports/INDEX.md, storage.py): one document per
# account and period (and check time), flat, so Kibana can table and chart them. Numbers
# are double: follower counts exceed float's exact range.
INDEX_SCORE_PROPERTIES: dict[str, Any] = {
    **_kw("account_id", "platform", "name", "unit", "level", "vertical", "peer_group",
          "period", "veto_reason"),
    "period_start": DATE, "period_end": DATE,
    **_typed("double",
             # raw measures (互动 受众 传播 成长 内容 集群)
             "reposts_received", "comments_received", "comment_repost_ratio",
             "likes_received", "followers", "verified_days", "active_followers",
             "posts_published", "originals", "reposts_of_others", "original_share",
             "follower_growth_per_day", "posts_yoy", "originals_yoy", "interactions_yoy",
             "follower_growth_rel", "posts_yoy_rel", "originals_yoy_rel",
             "interactions_yoy_rel", "gov_share", "livelihood_share", "b_share",
             "content_value", "coverage", "interactions_up", "interactions_down",
             # 0–100 scores
             "interaction_index", "audience_index", "propagation_index", "growth_index",
             "content_index", "cluster_index", "composite"),
    **_typed("integer", "rank", "group_size"),
    "veto": {"type": "boolean"},
}

COMPLIANCE_CHECKS = ("stale", "gaps", "monthly", "interaction", "errata", "duplicate")
COMPLIANCE_PROPERTIES: dict[str, Any] = {
    **_kw("account_id", "platform", "name", "unit", "level", "vertical", "period", "status",
          "duplicate_with", *(f"{c}_status" for c in COMPLIANCE_CHECKS)),
    **{f: DATE for f in ("period_start", "period_end", "checked_at", "last_post_at",
                         "longest_gap_from", "longest_gap_to")},
    **_typed("double", "days_since_last_post", "longest_gap_days", "reply_rate",
             "median_reply_hours", "resolve_rate"),
    **_typed("integer", "fails", "months_below_min", "lowest_month_count", "questions",
             "answered_in_time", "resolved", "errata_hits"),
    "veto": {"type": "boolean"},
    # the findings with their evidence, varied shapes: kept, not searched
    "findings_json": {"type": "text", "index": False},
}

DEAD_LETTER_PROPERTIES: dict[str, Any] = {
    **_kw("reason", "source"),
    "payload": {"type": "text", "index": False},
    "received_at": DATE,
    "offset": {"type": "long"},
}


def _mapping(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"dynamic": False, "properties": props, **extra}


@dataclass(frozen=True)
class IndexSpec:
    """One index: its mapping, its time field (Kibana's) and the aliases it joins."""

    name: str
    mapping: dict[str, Any]
    time_field: str
    aliases: tuple[str, ...] = ()


SPECS: dict[str, IndexSpec] = {
    s.name: s for s in (
        IndexSpec("posts", _mapping(EVENT_PROPERTIES), "created_at", ("events",)),
        IndexSpec("comments", _mapping(EVENT_PROPERTIES), "created_at", ("events",)),
        IndexSpec("alerts", _mapping(ALERT_PROPERTIES, dynamic_templates=[
            # values{} holds numbers whose first value may look integral: always double.
            {"alert_values": {"path_match": "values.*", "mapping": {"type": "double"}}},
        ]), "timestamp"),
        IndexSpec("linkage", _mapping(LINKAGE_PROPERTIES), "created_at"),
        IndexSpec("linkage_items", _mapping(LINKAGE_ITEM_PROPERTIES), "created_at"),
        IndexSpec("measures", _mapping(MEASURE_PROPERTIES), "period_end"),
        IndexSpec("dead_letters", _mapping(DEAD_LETTER_PROPERTIES), "received_at"),
        IndexSpec("index_scores", _mapping(INDEX_SCORE_PROPERTIES), "period_end"),
        IndexSpec("compliance", _mapping(COMPLIANCE_PROPERTIES), "checked_at"),
    )
}
MAPPINGS: dict[str, dict[str, Any]] = {n: s.mapping for n, s in SPECS.items()}

# Fields the store adds; iter_* removes them so reads give back the written records.
DERIVED: dict[str, frozenset[str]] = {
    "events": frozenset({"is_negative", "owner_label", "owner_region", "author_label",
                         "author_level"}),
    "alerts": frozenset({"account_label"}),
    "linkage": frozenset({"linked_ids", "expected_count", "linked_count", "account_name",
                          "unit", "level", "account_label"}),
}

REGION_RE = re.compile(r"^(.+?(?:特别行政区|自治区|自治州|地区|省|市|州|盟))")


def index_name(prefix: str, name: str) -> str:
    """``posts`` → ``matrixwatch-posts``; ``linkage_items`` → ``matrixwatch-linkage-items``."""
    return f"{prefix}-{name.replace('_', '-')}"


def alias_name(prefix: str, alias: str) -> str:
    return f"{prefix}-{alias}"


def component_template(replicas: int) -> dict[str, Any]:
    return {"settings": {"number_of_shards": 1, "number_of_replicas": replicas,
                         "refresh_interval": "1s"}}


def index_templates(prefix: str, replicas: int = 0) -> dict[str, dict[str, Any]]:
    """The body of every index template, by template name (what ``setup-es`` installs)."""
    comp = f"{prefix}-settings"
    out: dict[str, dict[str, Any]] = {}
    for spec in SPECS.values():
        name = index_name(prefix, spec.name)
        out[name] = {
            # Exact names: no two templates' patterns overlap (ES refuses that).
            "index_patterns": [name],
            "composed_of": [comp],
            "priority": 500,
            "template": {
                "mappings": spec.mapping,
                "aliases": {alias_name(prefix, a): {} for a in spec.aliases},
            },
            "_meta": {"managed_by": "matrixwatch", "version": TEMPLATE_VERSION},
            "version": TEMPLATE_VERSION,
        }
    return out


def mapped_fields(mapping: Mapping[str, Any]) -> dict[str, str]:
    """Flatten a mapping to {dotted field: type}, multi-fields included (``text.raw``)."""
    out: dict[str, str] = {}

    def walk(props: Mapping[str, Any], path: str) -> None:
        for name, spec in props.items():
            full = f"{path}{name}"
            out[full] = spec.get("type", "object")
            for sub, sspec in (spec.get("fields") or {}).items():
                out[f"{full}.{sub}"] = sspec.get("type", "object")
            if "properties" in spec:
                walk(spec["properties"], full + ".")

    walk(mapping.get("properties", {}), "")
    return out


# --- errors and the in-flight bound -----------------------------------------------------
class BulkError(RuntimeError):
    """ES did not take every document within ``retry_for`` (still retryable later)."""

    def __init__(self, status: int | str, detail: str) -> None:
        super().__init__(f"bulk failed with {status}: {detail}")
        self.status = status


class BulkRejected(RuntimeError):
    """ES refused documents for good (mapping, validation) and on_reject == "raise"."""


class InFlight:
    """Counts documents sent and not yet acknowledged; ``hold(n)`` waits for room.

    A single write larger than the limit is let through alone (else it could never
    proceed). The condition is created on first use, inside the running loop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0
        self.peak = 0
        self.waits = 0
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.limit

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        cond = self._condition()
        async with cond:
            if not self._fits(n):
                self.waits += 1
                ES_WAITS.inc()
                await cond.wait_for(lambda: self._fits(n))
            self.used += n
            self.peak = max(self.peak, self.used)
            ES_IN_FLIGHT.set(self.used)
        try:
            yield
        finally:
            async with cond:
                self.used -= n
                ES_IN_FLIGHT.set(self.used)
                cond.notify_all()


Doc = tuple[str, str, dict[str, Any]]  # (index, id, source)


def now_iso() -> str:
    return datetime.now(tz=UTC).isoformat()


def _status_of(exc: BaseException) -> int:
    return int(getattr(exc, "status_code", 0) or getattr(getattr(exc, "meta", None),
                                                         "status", 0) or 0)


class ElasticsearchStore(Store):
    """The ES store. Sync reads (exports, reports) use a short-lived sync client."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "matrixwatch",
        username: str | None = None,
        password: str | None = None,
        verify_certs: bool = True,
        retry_for: float = 300.0,
        chunk_size: int = 500,
        max_chunk_bytes: int = 10 * 1024 * 1024,
        max_in_flight: int = 5000,
        initial_backoff: float = 0.5,
        max_backoff: float = 10.0,
        replicas: int = 0,
        request_timeout: float = 30.0,
        on_reject: Literal["dead_letter", "raise"] = "dead_letter",
        install_templates: bool = True,
        registry: Any = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._auth = (username, password) if username and password else None
        self.verify_certs = verify_certs
        self.retry_for = retry_for
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.replicas = replicas
        self.request_timeout = request_timeout
        self.on_reject = on_reject
        self.install_templates = install_templates
        self.in_flight = InFlight(max_in_flight)
        self.registry = registry
        self.rejected = 0
        self.retries = 0
        self._client: Any = None
        self._templates_ok = False
        self._region_cache: dict[tuple[str, str], str | None] = {}

    # --- names ------------------------------------------------------------------------
    def index(self, name: str) -> str:
        return index_name(self.prefix, name)

    def alias(self, name: str) -> str:
        return alias_name(self.prefix, name)

    def attach_registry(self, registry: Any) -> None:
        """Names, units and regions for labels; without it labels fall back to ids."""
        self.registry = registry
        self._region_cache.clear()

    # --- clients and set-up -----------------------------------------------------------
    def _new_client(self, async_: bool) -> Any:
        from elasticsearch import AsyncElasticsearch, Elasticsearch

        cls = AsyncElasticsearch if async_ else Elasticsearch
        # Retries are ours (with backoff and a pending subset), not the transport's.
        return cls(self.url, basic_auth=self._auth, verify_certs=self.verify_certs,
                   request_timeout=self.request_timeout, max_retries=0, retry_on_status=(),
                   retry_on_timeout=False)

    async def connect(self) -> None:
        if self._client is None:
            self._client = self._new_client(async_=True)

    async def open(self) -> None:
        """Connect and install templates; an unreachable ES is retried on first write."""
        await self.connect()
        if not self.install_templates:
            return
        try:
            await self.ensure_templates()
        except Exception as e:  # ES not up yet: writes retry the set-up with backoff
            log.warning("Elasticsearch set-up deferred: %s", e)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ensure_templates(self, create_indices: bool = True) -> list[str]:
        """Install the component and index templates, then create or extend the indices.

        Idempotent: PUT replaces a template; an existing index gets the mapping's new
        fields (additive). Returns the problems found (a field whose type changed).
        """
        from elasticsearch import ApiError

        await self.connect()
        c = self._client
        problems: list[str] = []
        await c.cluster.put_component_template(
            name=f"{self.prefix}-settings", template=component_template(self.replicas),
            meta={"managed_by": "matrixwatch", "version": TEMPLATE_VERSION},
        )
        for name, body in index_templates(self.prefix, self.replicas).items():
            await c.indices.put_index_template(
                name=name, index_patterns=body["index_patterns"],
                composed_of=body["composed_of"], priority=body["priority"],
                template=body["template"], meta=body["_meta"], version=body["version"],
            )
        if create_indices:
            for spec in SPECS.values():
                name = self.index(spec.name)
                try:
                    await c.indices.create(index=name)
                except ApiError as e:
                    if "resource_already_exists" not in str(e):
                        raise
                    try:
                        await c.indices.put_mapping(index=name, **spec.mapping)
                    except ApiError as e2:
                        problems.append(f"{name}: {e2}")
                        log.error("mapping of %s not updated: %s", name, e2)
        self._templates_ok = True
        return problems

    async def _ready(self) -> None:
        await self.connect()
        if self.install_templates and not self._templates_ok:
            await self.ensure_templates()

    # --- the bulk path ----------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)

    async def _bulk(self, op: str, docs: Sequence[Doc]) -> None:
        """Write ``docs`` chunk by chunk, each chunk holding its room in the buffer."""
        if not docs:
            return
        for start in range(0, len(docs), self.chunk_size):
            chunk = list(docs[start:start + self.chunk_size])
            async with self.in_flight.hold(len(chunk)):
                rejected = await self._write_chunk(op, chunk)
            if rejected:  # outside the hold: dead-lettering needs room of its own
                await self._handle_rejected(rejected)

    async def _write_chunk(
        self, op: str, docs: list[Doc]
    ) -> list[tuple[str, str, dict[str, Any], Any]]:
        """Write one chunk until every document is taken or refused for good.

        Returns the refused ones. Results come back in the order of the actions, so
        they are paired by position, not by the ``_index`` ES reports.
        """
        from elastic_transport import TransportError
        from elasticsearch import ApiError
        from elasticsearch.helpers import async_streaming_bulk

        pending: dict[tuple[str, str], dict[str, Any]] = {(i, d): s for i, d, s in docs}
        rejected: list[tuple[str, str, dict[str, Any], Any]] = []
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while pending:
            cause: str | None = None
            try:
                await self._ready()
                keys = list(pending)
                actions = [{"_op_type": op, "_index": i, "_id": d, "_source": pending[(i, d)]}
                           for i, d in keys]
                n = 0
                async for ok, item in async_streaming_bulk(
                    self._client, actions, chunk_size=len(actions),
                    max_chunk_bytes=self.max_chunk_bytes, raise_on_error=False,
                    raise_on_exception=False, max_retries=0, yield_ok=True,
                ):
                    (_, info), = item.items()
                    key, n = keys[n], n + 1
                    status = int(info.get("status") or 0)
                    if ok or (op == "create" and status == 409):
                        pending.pop(key, None)
                    elif status in RETRYABLE:
                        cause = str(status)
                    elif "exception" in info:  # the whole request failed, not retryable
                        raise BulkError(status, str(info.get("error")))
                    else:
                        src = pending.pop(key, None)
                        if src is not None:
                            rejected.append((key[0], key[1], src, info.get("error")))
            except TransportError as e:  # connection refused, reset, timeout
                cause = type(e).__name__
            except ApiError as e:  # from the template set-up: same rules as bulk
                if _status_of(e) not in RETRYABLE:
                    raise
                cause = str(_status_of(e))
            if not pending:
                break
            if time.monotonic() >= deadline:
                raise BulkError(cause or "?", f"{len(pending)} documents still pending after "
                                f"{self.retry_for:.0f}s")
            attempt += 1
            self.retries += 1
            ES_RETRIES.labels(cause=cause or "unknown").inc()
            metrics.SINK_ERRORS.labels(store="elasticsearch_bulk", kind=cause or "?").inc()
            delay = min(self._backoff(attempt), max(deadline - time.monotonic(), 0.0))
            log.warning("bulk: %d documents pending (%s); retry %d in %.1fs",
                        len(pending), cause, attempt, delay)
            await asyncio.sleep(delay)
        return rejected

    async def _handle_rejected(self, rejected: list[tuple[str, str, dict[str, Any], Any]]) -> None:
        """Dead-letter what ES refused for good (or raise, in strict mode)."""
        self.rejected += len(rejected)
        for index, _, _, _ in rejected:
            ES_REJECTED.labels(index=index).inc()
        first = rejected[0]
        summary = f"document {first[1]} rejected by {first[0]}: {first[3]}"
        dlq = self.index("dead_letters")
        if self.on_reject == "raise" or any(i == dlq for i, _, _, _ in rejected):
            raise BulkRejected(summary + (f" (+{len(rejected) - 1} more)" if len(rejected) > 1
                                          else ""))
        log.error("%d documents rejected, dead-lettered; first: %s", len(rejected), summary)
        letters = []
        for index, doc_id, src, err in rejected:
            kind = err.get("type") if isinstance(err, dict) else None
            reason = err.get("reason") if isinstance(err, dict) else err
            payload = json.dumps(src, ensure_ascii=False)
            if len(payload) > DLQ_PAYLOAD_CHARS:
                payload = payload[:DLQ_PAYLOAD_CHARS] + f"…[{len(payload)} chars]"
            letters.append(DeadLetter(
                reason=f"es_rejected: {kind}: {reason}"[:500], source=f"es:{index}/{doc_id}",
                payload=payload, received_at=now_iso(), offset=None))
        await self.write_dead_letters(letters)

    # --- derived fields ---------------------------------------------------------------
    def _account(self, platform: str, account_id: str | None) -> Any:
        if self.registry is None or account_id is None:
            return None
        return self.registry.get(platform, account_id)

    def _label(self, platform: str, account_id: str | None, name: str | None = None) -> str:
        acc = self._account(platform, account_id)
        return name or (acc.name if acc is not None else None) or str(account_id or "")

    def region(self, platform: str, account_id: str | None) -> str | None:
        """The city (or province) an account belongs to, from its unit or its superiors'."""
        if account_id is None:
            return None
        key = (platform, account_id)
        if key in self._region_cache:
            return self._region_cache[key]
        acc, seen, out = self._account(platform, account_id), set(), None
        while acc is not None and acc.id not in seen:
            seen.add(acc.id)
            if acc.level in ("city", "province", "national") and acc.unit:
                m = REGION_RE.match(acc.unit)
                out = m.group(1) if m else acc.unit
                break
            acc = self._account(platform, acc.parent)
        self._region_cache[key] = out
        return out

    def event_doc(self, e: Event) -> Doc:
        doc = e.asdict()
        if e.sentiment_label is not None:
            doc["is_negative"] = 1 if e.sentiment_label == "negative" else 0
        doc["owner_label"] = e.owner_name or self._label(e.platform, e.owner_id)
        doc["owner_region"] = self.region(e.platform, e.owner_id) or e.owner_unit
        author = self._account(e.platform, e.account_id)
        doc["author_label"] = (author.name if author is not None else None) or (
            e.account_name or e.account_id)
        if author is not None:  # only matrix accounts have a level: stale-account checks
            doc["author_level"] = author.level
        name = "comments" if e.kind == "comment" else "posts"
        return self.index(name), e.doc_id, doc

    def alert_doc(self, a: Alert) -> Doc:
        doc = a.asdict()
        if a.account_id is not None:
            doc["account_label"] = self._label(a.platform, a.account_id, a.account_name)
        return self.index("alerts"), a.id, doc

    def linkage_docs(self, r: LinkageResult) -> list[Doc]:
        """The task document plus one item per expected subordinate (for Kibana)."""
        doc = r.asdict()
        sup = self._account(r.platform, r.account_id)
        doc.update(linked_ids=sorted(r.linked), expected_count=len(r.expected),
                   linked_count=len(r.linked),
                   account_label=self._label(r.platform, r.account_id))
        if sup is not None:
            doc.update(account_name=sup.name, unit=sup.unit, level=sup.level)
        out: list[Doc] = [(self.index("linkage"), f"{r.platform}:{r.post_id}", doc)]
        t0 = datetime.fromisoformat(r.created_at)
        for sub_id in r.expected:
            sub = self._account(r.platform, sub_id)
            latency = r.linked.get(sub_id)
            item: dict[str, Any] = {
                "post_id": r.post_id, "platform": r.platform, "created_at": r.created_at,
                "deadline": r.deadline, "superior_id": r.account_id,
                "superior_label": doc["account_label"], "account_id": sub_id,
                "account_label": self._label(r.platform, sub_id),
                "linked": latency is not None, "linked_n": int(latency is not None),
                "latency_seconds": latency,
                "linked_at": (t0 + timedelta(seconds=latency)).isoformat()
                if latency is not None else None,
            }
            if sub is not None:
                item.update(account_name=sub.name, unit=sub.unit, level=sub.level)
            out.append((self.index("linkage_items"), f"{r.platform}:{r.post_id}:{sub_id}",
                        item))
        return out

    def measure_doc(self, row: Mapping[str, Any]) -> Doc:
        doc = dict(row)
        platform = str(doc.get("platform") or "weibo")
        acc_id = str(doc["account_id"])
        doc.setdefault("platform", platform)
        doc["account_label"] = self._label(platform, acc_id, doc.get("name"))
        doc_id = f"{platform}:{acc_id}:{doc.get('period_start')}:{doc.get('period_end')}"
        return self.index("measures"), doc_id, doc

    # --- writes -----------------------------------------------------------------------
    async def write_events(self, events: Sequence[Event]) -> None:
        await self._bulk("create", [self.event_doc(e) for e in events])

    async def write_alerts(self, alerts: Sequence[Alert]) -> None:
        await self._bulk("create", [self.alert_doc(a) for a in alerts])

    async def write_linkage(self, results: Sequence[LinkageResult]) -> None:
        await self._bulk("index", [d for r in results for d in self.linkage_docs(r)])

    async def write_measures(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Matrix measures per account and period (覆盖度, 上级互动, 下级联动 …)."""
        await self._bulk("index", [self.measure_doc(r) for r in rows])

    async def write_docs(self, name: str,
                         docs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Write ``(id, source)`` documents into the index of spec ``name`` (for example
        ``index_scores``), overwriting any with the same id: a rerun replaces, never adds.

        For rows computed outside the stream (the monthly index and compliance reports);
        the caller chooses deterministic ids.
        """
        if name not in SPECS:
            raise ValueError(f"no index spec {name!r}; one of {', '.join(SPECS)}")
        target = self.index(name)
        await self._bulk("index", [(target, str(doc_id), dict(src)) for doc_id, src in docs])

    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        await self._bulk("create", [(self.index("dead_letters"), dead_letter_id(d), d.asdict())
                                    for d in letters])

    # --- reads ------------------------------------------------------------------------
    def _scan(self, target: str) -> list[dict[str, Any]]:
        from elasticsearch import helpers

        client = self._new_client(async_=False)
        try:
            client.indices.refresh(index=target, ignore_unavailable=True)
            return [h["_source"] for h in helpers.scan(
                client, index=target, query={"query": {"match_all": {}}},
                ignore_unavailable=True)]
        finally:
            client.close()

    @staticmethod
    def _strip(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        drop = DERIVED.get(kind, frozenset())
        return [{k: v for k, v in d.items() if k not in drop} for d in docs]

    def iter_events(self) -> Iterator[dict[str, Any]]:
        docs = self._strip(self._scan(self.alias("events")), "events")
        return iter(sorted(docs, key=lambda d: (epoch(d["created_at"]), d["platform"], d["id"])))

    def iter_alerts(self) -> Iterator[dict[str, Any]]:
        return iter(sorted(self._strip(self._scan(self.index("alerts")), "alerts"),
                           key=alert_sort_key))

    def iter_linkage(self) -> Iterator[dict[str, Any]]:
        docs = self._strip(self._scan(self.index("linkage")), "linkage")
        return iter(sorted(docs, key=lambda d: (d["created_at"], d["post_id"])))

    def iter_linkage_items(self) -> Iterator[dict[str, Any]]:
        docs = self._scan(self.index("linkage_items"))
        return iter(sorted(docs, key=lambda d: (d["created_at"], d["post_id"], d["account_id"])))

    def iter_measures(self) -> Iterator[dict[str, Any]]:
        docs = self._scan(self.index("measures"))
        return iter(sorted(docs, key=lambda d: (str(d.get("period_start")), d["account_id"])))

    def iter_docs(self, name: str) -> Iterator[dict[str, Any]]:
        """Every document of spec ``name``'s index, in a stable order (for reports, tests)."""
        if name not in SPECS:
            raise ValueError(f"no index spec {name!r}; one of {', '.join(SPECS)}")
        keys = ("period_start", "platform", "account_id", "checked_at")
        docs = self._scan(self.index(name))
        return iter(sorted(docs, key=lambda d: tuple(str(d.get(k) or "") for k in keys)))

    def iter_dead_letters(self) -> Iterator[dict[str, Any]]:
        return iter(sorted(self._scan(self.index("dead_letters")),
                           key=lambda d: d["received_at"]))

    def counts(self) -> dict[str, int]:
        targets = {"events": self.alias("events"), "alerts": self.index("alerts"),
                   "linkage": self.index("linkage"),
                   "dead_letters": self.index("dead_letters"),
                   "linkage_items": self.index("linkage_items"),
                   "measures": self.index("measures")}
        client = self._new_client(async_=False)
        try:
            out = {}
            for key, target in targets.items():
                try:
                    out[key] = int(client.count(index=target)["count"])
                except Exception:
                    out[key] = 0
            return out
        finally:
            client.close()
