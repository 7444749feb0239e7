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
* 400 not JSON / not a list / empty; 422 with per-item reasons if any object is
  invalid — then *nothing* of the batch is published, so a retry is safe;
* 503 if the sink (Kafka) did not acknowledge: the partner retries;
* 202 ``{"accepted": n}`` only after every message of the batch is acknowledged by the
  broker (producer acks=all, all delivery futures awaited).
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from matrixwatch.collectors import metrics
from matrixwatch.collectors.base import Item, Sink, now_iso
from matrixwatch.streams.normalize import InvalidInput, normalize
from matrixwatch.streams.normalized import event_from_dict, is_normalized

log = logging.getLogger(__name__)

SOURCE = "push"
MAX_REASONS = 50
_SINK_KEY: web.AppKey[Sink] = web.AppKey("sink", Sink)
_CFG_KEY: web.AppKey[dict[str, Any]] = web.AppKey("cfg", dict)


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


def _parse(body: bytes, ctype: str) -> list[Any]:
    if ctype in ("application/x-ndjson", "application/jsonl", "application/json-seq"):
        out = []
        for n, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise ValueError(f"bad JSON on line {n}: {e}") from None
        return out
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"bad JSON: {e}") from None
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        return list(doc["events"])
    if isinstance(doc, list):
        return doc
    raise ValueError("expected a JSON array of objects or {\"events\": [...]}")


def validate(objs: list[Any], now: datetime, max_text_bytes: int) -> list[dict[str, Any]]:
    """Per-item problems as [{"index", "reason"}]; empty when the batch is valid."""
    problems = []
    for i, o in enumerate(objs):
        try:
            if is_normalized(o):
                event_from_dict(o, collected_at=now, max_text_bytes=max_text_bytes)
            else:
                normalize(o, collected_at=now, max_text_bytes=max_text_bytes)
        except InvalidInput as e:
            problems.append({"index": i, "reason": e.reason})
    return problems


async def handle_events(request: web.Request) -> web.Response:
    cfg = request.app[_CFG_KEY]
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
    now = datetime.now(tz=UTC)
    problems = validate(objs, now, cfg["max_text_bytes"])
    if problems:
        return _err(422, f"{len(problems)} invalid object(s); nothing was accepted",
                    items=problems[:MAX_REASONS])
    as_of = now_iso(now)
    items = [Item.of(o, as_of=as_of, kind="event" if is_normalized(o) else "native")
             for o in objs]
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
             max_items: int = 5000, max_text_bytes: int = 65536) -> web.Application:
    # client_max_size bounds aiohttp's own buffering; _read_body enforces our limit.
    app = web.Application(client_max_size=max_bytes + 1)
    app[_SINK_KEY] = sink
    app[_CFG_KEY] = {"token": token, "max_bytes": max_bytes, "max_items": max_items,
                     "max_text_bytes": max_text_bytes}
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
