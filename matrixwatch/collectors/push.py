"""HTTP push endpoint: partners and internal systems POST batches of events.

``POST /v1/events`` with ``Authorization: Bearer <MW_PUSH_TOKEN>`` and a JSON body: an
array of objects, ``{"events": [...]}``, or NDJSON (``Content-Type:
application/x-ndjson``). Each object is a native Weibo object (status or comment with
its ``status``) or a normalized event (``platform``, ``id``, ``kind``, ``account_id``,
``owner_id``, ``text``, ``created_at`` …).

Answers (JSON bodies with an ``error`` reason):

* 401 missing/wrong token (compared with :func:`hmac.compare_digest`), 503 if no token
  is configured (the endpoint never runs open);
* 413 body over ``push_max_bytes`` (checked on Content-Length *and* while reading) or
  more than ``push_max_items`` objects; 415 unsupported content type;
* 400 not JSON (as the worker's parser, orjson, reads it: UTF-8, nested at most 1024
  deep) / not a list / empty; 422 with per-item reasons if any object is invalid — by
  the worker's own check of the line to be published (``normalize_line``: line and
  text size, fields, event times between 2000-01-01 and the wall clock plus
  ``max_future``) — then *nothing* of the batch is published, so a retry is safe;
* 429 with ``Retry-After`` when a client sends faster than ``rate`` requests per second
  (bursts of ``burst``; one token bucket per client address, checked before the token,
  so guessing tokens is throttled too) or when ``max_inflight`` requests are already
  being read and validated (which caps memory at ``max_inflight × max_bytes``);
* 503 if the sink (Kafka) did not acknowledge: the partner retries;
* 202 ``{"accepted": n}`` only after every message of the batch is acknowledged by the
  broker (producer acks=all, all delivery futures awaited).
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from matrixwatch.collectors import metrics
from matrixwatch.collectors.base import Item, Sink, now_iso
from matrixwatch.settings import Settings
from matrixwatch.streams.normalize import MAX_FUTURE_SKEW, InvalidInput, normalize_line
from matrixwatch.streams.normalized import is_normalized

log = logging.getLogger(__name__)

SOURCE = "push"
MAX_REASONS = 50
_SINK_KEY: web.AppKey[Sink] = web.AppKey("sink", Sink)
_CFG_KEY: web.AppKey[dict[str, Any]] = web.AppKey("cfg", dict)
_BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_LINE_BYTES: int = Settings.model_fields["max_line_bytes"].default
"""The worker's default line cap (``MW_MAX_LINE_BYTES``), read from the settings."""


class RateLimiter:
    """Token buckets per client: ``rate`` requests per second, ``burst`` back to back.

    At most ``max_clients`` buckets are kept (least recently seen dropped), so a flood
    of addresses cannot grow memory. The client is the TCP peer address: behind a
    reverse proxy every request shares the proxy's bucket, which then limits the total.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(int(burst), 1)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, client: str) -> float:
        """0.0 if the request may go ahead, else the seconds until it may."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def _too_many(reason: str, retry_after: float) -> web.Response:
    resp = _err(429, reason)
    resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return resp


def _err(status: int, reason: str, **extra: Any) -> web.Response:
    metrics.REQUESTS.labels(source=SOURCE, outcome=str(status)).inc()
    return web.json_response({"error": reason, **extra}, status=status)


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None if it is larger than ``limit`` (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(data: bytes) -> Any:
    """Parse with the worker's parser (orjson, as ``normalize_line``), so the endpoint
    accepts what the worker can read: UTF-8, no NaN, nesting at most 1024 deep (the
    stdlib parser raised RecursionError there, a 500). A leading BOM is skipped, as the
    stdlib parser and ``normalize_line`` do."""
    return orjson.loads(data.removeprefix(_BOM))


def _parse(body: bytes, ctype: str) -> list[Any]:
    if ctype in ("application/x-ndjson", "application/jsonl", "application/json-seq"):
        out = []
        for n, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    out.append(_loads(line))
                except (ValueError, RecursionError) as e:  # orjson.JSONDecodeError included
                    raise ValueError(f"bad JSON on line {n}: {e}") from None
        return out
    try:
        doc = _loads(body)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"bad JSON: {e}") from None
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        return list(doc["events"])
    if isinstance(doc, list):
        return doc
    raise ValueError("expected a JSON array of objects or {\"events\": [...]}")


def encode(objs: list[Any], now: datetime, *, max_text_bytes: int,
           max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
           max_future: float = MAX_FUTURE_SKEW) -> tuple[list[Item], list[dict[str, Any]]]:
    """The messages to publish, and per-item problems as [{"index", "reason"}].

    Each object is encoded as it will be published and that line is checked with the
    worker's own :func:`normalize_line` (same size, text and time limits, same wall
    clock), so a 202 is never followed by a dead letter: before, normalized events
    skipped the time bounds, and lines orjson cannot write (nested over 254 deep)
    raised a 500. Items are only meaningful when there are no problems.
    """
    as_of = now_iso(now)
    collected = datetime.fromisoformat(as_of)  # what the worker reads from the header
    items: list[Item] = []
    problems: list[dict[str, Any]] = []
    for i, o in enumerate(objs):
        if not isinstance(o, dict):
            problems.append({"index": i, "reason": "not an object"})
            continue
        try:
            item = Item.of(o, as_of=as_of, kind="event" if is_normalized(o) else "native")
        except TypeError as e:  # orjson.JSONEncodeError: too deep for orjson.dumps
            problems.append({"index": i, "reason": f"cannot encode: {e}"})
            continue
        try:
            normalize_line(item.line, collected_at=collected, max_line_bytes=max_line_bytes,
                           max_text_bytes=max_text_bytes, max_future=max_future,
                           wall_clock=now)
        except InvalidInput as e:
            problems.append({"index": i, "reason": e.reason})
            continue
        items.append(item)
    return items, problems


def validate(objs: list[Any], now: datetime, max_text_bytes: int, *,
             max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
             max_future: float = MAX_FUTURE_SKEW) -> list[dict[str, Any]]:
    """Per-item problems as [{"index", "reason"}]; empty when the batch is valid."""
    return encode(objs, now, max_text_bytes=max_text_bytes, max_line_bytes=max_line_bytes,
                  max_future=max_future)[1]


async def handle_events(request: web.Request) -> web.Response:
    cfg = request.app[_CFG_KEY]
    limiter: RateLimiter | None = cfg["limiter"]
    if limiter is not None:
        wait = limiter.acquire(request.remote or "unknown")
        if wait > 0:
            return _too_many(f"rate limit: {limiter.rate:g} requests/s per client", wait)
    if cfg["inflight"] >= cfg["max_inflight"]:
        return _too_many(f"busy: {cfg['max_inflight']} requests in progress", 1.0)
    cfg["inflight"] += 1
    try:
        return await _handle_events(request, cfg)
    finally:
        cfg["inflight"] -= 1


async def _handle_events(request: web.Request, cfg: dict[str, Any]) -> web.Response:
    sink = request.app[_SINK_KEY]
    token = cfg["token"]
    if not token:
        return _err(503, "push endpoint has no token configured (MW_PUSH_TOKEN)")
    if not _authorized(request, token):
        resp = _err(401, "missing or invalid bearer token")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="matrixwatch"'
        return resp
    ctype = request.content_type or "application/json"
    if ctype not in ("application/json", "application/x-ndjson", "application/jsonl",
                     "application/json-seq", "text/plain"):
        return _err(415, f"unsupported content type {ctype!r}")
    body = await _read_body(request, cfg["max_bytes"])
    if body is None:
        return _err(413, f"body larger than {cfg['max_bytes']} bytes")
    try:
        objs = _parse(body, ctype)
    except ValueError as e:
        return _err(400, str(e))
    if not objs:
        return _err(400, "empty batch")
    if len(objs) > cfg["max_items"]:
        return _err(413, f"more than {cfg['max_items']} objects in one batch")
    items, problems = encode(objs, datetime.now(tz=UTC), max_text_bytes=cfg["max_text_bytes"],
                             max_line_bytes=cfg["max_line_bytes"],
                             max_future=cfg["max_future"])
    if problems:
        return _err(422, f"{len(problems)} invalid object(s); nothing was accepted",
                    items=problems[:MAX_REASONS])
    try:
        await sink.send(items)
    except Exception as e:
        log.error("push: sink failed: %s", e)
        metrics.COLLECTOR_ERRORS.labels(source=SOURCE).inc()
        resp = _err(503, f"could not store the batch: {type(e).__name__}")
        resp.headers["Retry-After"] = "5"
        return resp
    metrics.EVENTS.labels(source=SOURCE, kind="push").inc(len(items))
    metrics.mark_success(SOURCE)
    metrics.REQUESTS.labels(source=SOURCE, outcome="202").inc()
    return web.json_response({"accepted": len(items)}, status=202)


async def handle_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(sink: Sink, *, token: str | None, max_bytes: int = 8 * 1024 * 1024,
             max_items: int = 5000, max_text_bytes: int = 65536,
             max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, max_future: float = MAX_FUTURE_SKEW,
             rate: float | None = 20.0, burst: int = 40, max_inflight: int = 8,
             clock: Callable[[], float] = time.monotonic) -> web.Application:
    """The endpoint. ``rate`` (requests/s per client, None = unlimited) with ``burst``,
    and ``max_inflight`` concurrent requests, bound what one client or a crowd can cost.

    ``max_text_bytes``, ``max_line_bytes`` and ``max_future`` must be the worker's
    (``MW_MAX_TEXT_BYTES``, ``MW_MAX_LINE_BYTES``, ``MW_MAX_FUTURE_SKEW``): each item is
    checked against them, so what the endpoint accepts the worker does not dead-letter."""
    # client_max_size bounds aiohttp's own buffering; _read_body enforces our limit.
    app = web.Application(client_max_size=max_bytes + 1)
    app[_SINK_KEY] = sink
    app[_CFG_KEY] = {"token": token, "max_bytes": max_bytes, "max_items": max_items,
                     "max_text_bytes": max_text_bytes, "max_line_bytes": max_line_bytes,
                     "max_future": max_future, "max_inflight": max(max_inflight, 1),
                     "inflight": 0,
                     "limiter": RateLimiter(rate, burst, clock=clock) if rate else None}
    app.router.add_post("/v1/events", handle_events)
    app.router.add_get("/healthz", handle_health)
    return app


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start on host:port (0 = a free port); returns the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    bound = port
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    return runner, bound
