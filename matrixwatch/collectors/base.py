"""The one interface every source shares: items, sinks, errors and health.

A collector turns a source into :class:`Item`\\ s (one JSON object each: a native
Weibo object, or a normalized event for RSS/web/WeChat) and hands them to a
:class:`Sink` in batches. ``Sink.send`` returns only when the batch is durable (Kafka
acknowledged it with acks=all, or the file is flushed), and collectors commit their
cursors only after it returns: that ordering is what makes a restart resume without
gaps. Failures are reported through :class:`HealthTracker`, which turns repeated
failures into ``collector_health`` records on the health topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from matrixwatch.collectors import metrics
from matrixwatch.pipeline import owner_key
from matrixwatch.streams.records import CollectorHealth
from matrixwatch.streams.weibo_time import CST

log = logging.getLogger(__name__)

HEADER_AS_OF = "mw-as-of"  # same names as matrixwatch.streams.app (kept in sync by a test)
HEADER_MODE = "mw-mode"


def now_iso(at: datetime | None = None) -> str:
    """Collection times are stored in Asia/Shanghai with offset, like event times."""
    return (at or datetime.now(tz=UTC)).astimezone(CST).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- errors


class CollectorError(Exception):
    """A poll failed; the cursor is left where it was so the next poll retries."""

    kind = "error"


class RetryableError(CollectorError):
    """418/429/5xx/timeouts: retried with backoff before it surfaces."""

    kind = "retryable"

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class CircuitOpen(CollectorError):
    """The host failed many requests in a row: fail fast instead of queueing retries.

    Raised without touching the network (``CircuitBreaker`` in
    :mod:`matrixwatch.collectors.http`); not a :class:`RetryableError`, so the fetcher
    does not retry it and the poll fails at once, which is what lets the health record
    come within seconds.
    """

    kind = "circuit_open"

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


class AuthExpired(CollectorError):
    """The cookie or token is no longer accepted: retrying cannot help, a human must."""

    kind = "auth_expired"


class MalformedResponse(CollectorError):
    """The server answered something we cannot read (not JSON, wrong shape)."""

    kind = "malformed"


class HttpError(CollectorError):
    """Any other non-success answer (403, 404, …)."""

    kind = "http"


# --------------------------------------------------------------------------- items


@dataclass(slots=True)
class Item:
    """One object to publish: its JSON bytes, partition key and collection time."""

    line: bytes
    key: bytes | None
    as_of: str | None = None
    replay: bool = False
    kind: str = "object"

    @classmethod
    def of(
        cls, obj: Mapping[str, Any], *, as_of: str | None = None, kind: str = "object",
        replay: bool = False,
    ) -> Item:
        line = orjson.dumps(obj)
        return cls(line=line, key=owner_key(line), as_of=as_of, replay=replay, kind=kind)

    @classmethod
    def raw(cls, line: bytes, *, as_of: str | None = None, replay: bool = False) -> Item:
        """A line passed through unparsed (file replay): bad lines reach the DLQ."""
        return cls(line=line, key=owner_key(line), as_of=as_of, replay=replay, kind="raw")

    def obj(self) -> Any:
        return orjson.loads(self.line)

    def headers(self) -> list[tuple[str, bytes]]:
        out = []
        if self.as_of:
            out.append((HEADER_AS_OF, self.as_of.encode()))
        if self.replay:
            out.append((HEADER_MODE, b"replay"))
        return out


# --------------------------------------------------------------------------- sinks


class Sink(ABC):
    """Where collectors put what they collect. ``send`` returns when it is durable."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; called once before the first send."""

    @abstractmethod
    async def send(self, items: Sequence[Item]) -> None:
        """Publish a batch; raise if any item was not stored."""

    @abstractmethod
    async def health(self, record: CollectorHealth) -> None:
        """Publish a collector_health record."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and disconnect."""

    async def __aenter__(self) -> Sink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class MemorySink(Sink):
    """Keeps everything in lists: for unit tests and dry runs."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.health_records: list[CollectorHealth] = []
        self.fail_next: int = 0  # tests: make the next N sends raise

    async def send(self, items: Sequence[Item]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("memory sink: injected failure")
        self.items.extend(items)

    async def health(self, record: CollectorHealth) -> None:
        self.health_records.append(record)

    def objects(self) -> list[Any]:
        return [i.obj() for i in self.items]


class JsonlSink(Sink):
    """Appends native objects to a JSONL file (the replay format), fsynced per batch.

    Health records go to the log and to ``<file>.health.jsonl``, never into the data
    file: a replay of it must see only native objects.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.health_path = self.path.with_name(self.path.name + ".health.jsonl")
        self._fh: Any = None
        self.count = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    async def send(self, items: Sequence[Item]) -> None:
        if self._fh is None:
            await self.start()
        self._fh.write(b"".join(i.line + b"\n" for i in items))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.count += len(items)

    async def health(self, record: CollectorHealth) -> None:
        # INFO, not WARNING: HealthTracker already logs each state change, for any sink.
        log.info("collector health: %s %s (%s)", record.source, record.status,
                 record.last_error)
        with open(self.health_path, "ab") as fh:
            fh.write(record.dumps() + b"\n")

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class KafkaSink(Sink):
    """Produces to ``settings.topic("raw")`` (data) and ``settings.topic("health")``.

    acks=all, and ``send`` awaits every delivery future of the batch: when it returns,
    the broker has stored all of it. Keys are :func:`matrixwatch.pipeline.owner_key`
    (the owner account), so one account's objects keep their order in one partition.
    """

    def __init__(self, bootstrap: str, raw_topic: str, health_topic: str,
                 *, max_request_size: int = 4 * 1024 * 1024 + 65536,
                 client_id: str = "matrixwatch-collector",
                 compression_type: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.raw_topic = raw_topic
        self.health_topic = health_topic
        self.max_request_size = max_request_size
        self.client_id = client_id
        self.compression_type = compression_type
        self._producer: Any = None

    @classmethod
    def from_settings(cls, settings: Any, kafka_url: str) -> KafkaSink:
        from matrixwatch.broker import bootstrap_of

        return cls(bootstrap_of(kafka_url), settings.topic("raw"), settings.topic("health"),
                   compression_type=settings.compression_type)

    async def start(self) -> None:
        if self._producer is not None:
            return
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
            max_request_size=self.max_request_size, client_id=self.client_id,
            request_timeout_ms=30000, compression_type=self.compression_type,
        )
        await self._producer.start()

    async def send(self, items: Sequence[Item]) -> None:
        if self._producer is None:
            await self.start()
        futures = [
            await self._producer.send(self.raw_topic, value=i.line, key=i.key,
                                      headers=i.headers())
            for i in items
        ]
        await asyncio.gather(*futures)  # raises if any delivery failed

    async def health(self, record: CollectorHealth) -> None:
        if self._producer is None:
            await self.start()
        fut = await self._producer.send(self.health_topic, value=record.dumps(),
                                        key=record.source.encode())
        await fut

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None


# --------------------------------------------------------------------------- health


def describe(err: BaseException) -> str:
    """``Type: message``, with the cause when it says more: the fetcher's
    ``RetryableError: connect`` alone does not tell a refused connection from DNS."""
    text = f"{type(err).__name__}: {err}"
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


@dataclass
class HealthTracker:
    """Counts consecutive failures per source and reports them on the health topic.

    One record when failures reach ``threshold`` (then again every ``threshold``
    failures, at most once per ``min_interval`` seconds), one ``auth_expired`` record
    as soon as credentials are rejected, and one ``ok`` record on recovery, so the
    collector_health alert rule can both fire and resolve.

    The log tells the same story compactly, because a source with hundreds of accounts
    fails hundreds of polls per round: a WARNING with the reason when polls start
    failing, one per state change (``failing``, ``auth_expired``, recovered), and in
    between at most one per ``min_interval`` that counts the failures since the last
    line. Each failed poll by itself is DEBUG.
    """

    sink: Sink
    source: str
    threshold: int = 3
    min_interval: float = 300.0
    platform: str = "weibo"
    consecutive: int = 0
    state: str = "ok"
    last_error: str | None = None
    _last_report: float = field(default=0.0, repr=False)
    _last_log: float = field(default=float("-inf"), repr=False)
    _unlogged: int = field(default=0, repr=False)  # failed polls since the last WARNING

    async def success(self) -> None:
        metrics.mark_success(self.source)
        metrics.HEALTHY.labels(source=self.source).set(1)
        was, failed = self.state, self.consecutive
        self.consecutive, self.state = 0, "ok"
        if was != "ok":
            log.warning("%s: polls succeed again (was %s, %d failed polls in a row)",
                        self.source, was, failed)
            self._last_log, self._unlogged = float("-inf"), 0  # a new outage is news
            await self._report(None)

    async def failure(self, err: BaseException, account_id: str | None = None, *,
                      unexpected: bool = False) -> None:
        """Count a failed poll; ``unexpected`` (a bug, not a source fault) logs its
        traceback, on the lines that are logged at all."""
        metrics.COLLECTOR_ERRORS.labels(source=self.source).inc()
        self.consecutive += 1
        self.last_error = describe(err)[:300]
        self._unlogged += 1
        changed = self._transition(err)
        self._log_failure(err, account_id, changed, unexpected)
        if changed:
            await self._report(account_id)

    def _transition(self, err: BaseException) -> bool:
        """Update ``state``; True when a health record is due."""
        if isinstance(err, AuthExpired):
            metrics.HEALTHY.labels(source=self.source).set(0)
            if self.state == "auth_expired":
                return False
            self.state = "auth_expired"
            return True
        if self.consecutive < self.threshold:
            return False
        metrics.HEALTHY.labels(source=self.source).set(0)
        due = time.monotonic() - self._last_report >= self.min_interval
        if self.state != "failing" or (self.consecutive % self.threshold == 0 and due):
            self.state = "failing"
            return True
        return False

    def _log_failure(self, err: BaseException, account_id: str | None, changed: bool,
                     unexpected: bool) -> None:
        now = time.monotonic()
        where = f" (account {account_id})" if account_id else ""
        if changed:
            msg = (f"{self.source} is {self.state}: {self.consecutive} failed polls in a "
                   f"row{where}, last error: {self.last_error}")
        elif now - self._last_log >= self.min_interval:
            more = self._unlogged - 1
            msg = f"{self.source}: poll failed{where}: {self.last_error}" + (
                f" ({more} more failed polls since the previous warning)" if more > 0 else "")
        else:
            log.debug("%s: poll failed%s: %s", self.source, where, self.last_error)
            return
        log.warning("%s", msg, exc_info=err if unexpected else None)
        self._last_log, self._unlogged = now, 0

    async def _report(self, account_id: str | None) -> None:
        self._last_report = time.monotonic()
        rec = CollectorHealth(
            source=self.source, status=self.state, at=now_iso(),
            consecutive_failures=self.consecutive,
            last_error=None if self.state == "ok" else self.last_error,
            account_id=account_id, platform=self.platform,
        )
        try:
            await self.sink.health(rec)
        except Exception as e:  # reporting must not take the collector down
            log.error("cannot publish collector health for %s: %s", self.source, e)
