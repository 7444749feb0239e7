"""The console's aiohttp app: static page, JSON API, server-sent events, access control.

* **Auth.** A token logs in once (``POST /api/login``) and becomes an HttpOnly,
  SameSite=Strict session cookie; scripts may send ``Authorization: Bearer <token>``
  instead. Without either, pages redirect to /login and the API answers 401. Tokens are
  never logged: the access log prints the path without its query string, and the login
  link carries the token in the URL fragment (``/login#token=…``), which browsers never
  send to a server.
* **CSRF.** Cookies are SameSite=Strict and every state change must be a JSON request
  (a cross-site form cannot send ``application/json`` without a CORS preflight, which this
  app never grants).
* **Roles.** Both roles read everything and work alerts; only matrix-manager may upload a
  registry or read the audit log. Refusals are audited.
* **Live.** ``/api/stream`` polls the store about once a second for alerts stored after
  the client's cursor and for workflow changes made by other users, and pushes both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from matrixwatch.dashboards.console.auth import MATRIX_MANAGER, User, Users, UsersError
from matrixwatch.dashboards.console.query import (
    FEED_KINDS,
    SENTIMENTS,
    AlertFilter,
    ConsoleQueries,
    SQLiteQueries,
)
from matrixwatch.dashboards.console.service import Console, ConsoleSettings, NotFound
from matrixwatch.dashboards.console.state import ACTIONS, ConsoleState, TransitionError
from matrixwatch.settings import Settings
from matrixwatch.streams.records import LEVELS, epoch

log = logging.getLogger("matrixwatch.console")
STATIC = Path(__file__).with_name("static")
COOKIE = "mw_session"
PUBLIC = frozenset({"/login", "/api/login", "/healthz", "/favicon.ico", "/static/login.js",
                    "/static/i18n.js", "/static/style.css"})
CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
STOP: web.AppKey[asyncio.Event] = web.AppKey("stop", asyncio.Event)
REGISTRY_LOCK: web.AppKey[asyncio.Lock] = web.AppKey("registry_lock", asyncio.Lock)
# aiohttp >= 3.12 wants typed request keys; older ones take a plain string.
USER: Any = web.RequestKey("user", User) if hasattr(web, "RequestKey") else "user"
MAX_FAILS_PER_MINUTE = 10
MAX_BODY = 8 * 1024 * 1024  # a 10k-account registry is about 2 MB of YAML
#: Times a query may name: years 1..9999 in any zone, what datetime (and ES) can show.
MIN_TS = datetime(1, 1, 2, tzinfo=UTC).timestamp()
MAX_TS = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
MAX_ROWID = 2**63 - 1  # SQLite's largest integer
T = TypeVar("T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessLogger(AbstractAccessLogger):
    """Method, path (never the query string), status, user, seconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        user = request.get(USER)
        self.logger.info("%s %s %s %s %.3fs", request.method, request.path, response.status,
                         user.name if isinstance(user, User) else "-", time)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": code, "message": message}, status=status)


async def _run(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kw)


def _remote(request: web.Request) -> str:
    """The client's address, for the limiter and the audit log: the peer, or behind a
    trusted proxy the nearest X-Forwarded-For hop that is not itself a trusted proxy."""
    peer = request.remote or "-"
    trusted = request.app[CONSOLE].cs.trusted_proxies
    if not trusted or not _is_in(peer, trusted):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", [])
            for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:  # garbage from the client side of the proxy: stop there
            return peer
        if not _is_in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_in(address: str, networks: Sequence[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


class AuthLimiter:
    """Failed authentications per client address in a sliding minute: failed logins and
    wrong bearer tokens count alike, so a token cannot be guessed faster on the API than
    on the login form. Successes are never counted.

    Attempts from one address run one at a time (the check, the hash lookup in a thread,
    the count): otherwise a burst of concurrent guesses would all pass the check before
    the first failure was counted. Other addresses never wait on them."""

    def __init__(self, limit: int = MAX_FAILS_PER_MINUTE, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._fails: dict[str, collections.deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: collections.Counter[str] = collections.Counter()

    def throttled(self, remote: str) -> bool:
        now = self.clock()
        for addr in [a for a, d in self._fails.items() if not d or now - d[-1] > self.window]:
            del self._fails[addr]  # forget addresses quiet for a window
        fails = self._fails.get(remote)
        while fails and now - fails[0] > self.window:
            fails.popleft()
        return fails is not None and len(fails) >= self.limit

    def failed(self, remote: str) -> None:
        self._fails.setdefault(remote, collections.deque()).append(self.clock())

    async def attempt(self, remote: str, check: Callable[[], Awaitable[T | None]]
                      ) -> tuple[bool, T | None]:
        """``(False, None)`` when ``remote`` is over the limit (``check`` is not run, so
        even the right token waits: a guess must not be told apart by its answer);
        else ``(True, check())``, a None result counted as a failure."""
        lock = self._locks.setdefault(remote, asyncio.Lock())
        self._waiting[remote] += 1
        try:
            async with lock:
                if self.throttled(remote):
                    return False, None
                result = await check()
                if result is None:
                    self.failed(remote)
                return True, result
        finally:
            self._waiting[remote] -= 1
            if not self._waiting[remote]:
                del self._waiting[remote], self._locks[remote]


LIMITER: web.AppKey[AuthLimiter] = web.AppKey("limiter", AuthLimiter)


def _too_many(message: str) -> web.Response:
    resp = _error(429, "too_many_attempts", message)
    resp.headers["Retry-After"] = "60"
    return resp


def _user(request: web.Request) -> User:
    user = request[USER]
    assert isinstance(user, User)
    return user


async def _audit(request: web.Request, action: str, target: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    user = request.get(USER)
    name, role = (user.name, user.role) if isinstance(user, User) else (None, None)
    await _run(request.app[CONSOLE].state.audit, name, role, action, target, detail,
               _remote(request))


# --- middleware ---------------------------------------------------------------------------
def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.startswith("Bearer ") else None


async def _identify(request: web.Request) -> User | web.Response | None:
    """The user, None, or a 429 when this client has failed too often: a wrong bearer
    token counts against the login limiter. Session cookies do not (the page polls with
    its cookie, and an expired one must send it to /login, not lock its address out)."""
    console = request.app[CONSOLE]
    token = _bearer(request)
    if token:
        allowed, user = await request.app[LIMITER].attempt(
            _remote(request), lambda: _run(console.users.authenticate, token))
        if not allowed:
            return _too_many("too many failed authentications, wait a minute")
        return user
    name = await _run(console.state.session_user, request.cookies.get(COOKIE))
    return console.users.get(name) if name else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path in PUBLIC:
        return await handler(request)
    user = await _identify(request)
    if isinstance(user, web.Response):
        return user
    if user is None:
        if path.startswith("/api/"):
            return _error(401, "unauthorized", "login required")
        raise web.HTTPFound("/login")
    request[USER] = user
    if request.method in ("POST", "PUT", "DELETE", "PATCH") and \
            request.content_type != "application/json":
        return _error(415, "json_required", "state changes must be JSON requests")
    return await handler(request)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer, the raised ones too (a 400 for a bad parameter,
    a 404, a 413): an error page that echoes input is where a missing CSP hurts."""
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        _security_headers(request, exc.headers)
        raise
    _security_headers(request, resp.headers)
    return resp


def _security_headers(request: web.Request, headers: Any) -> None:
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/") or request.path in ("/", "/login"):
        headers.setdefault("Cache-Control", "no-store")


def require_manager(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        user = _user(request)
        if user.role != MATRIX_MANAGER:
            await _audit(request, "forbidden", request.path, {"method": request.method})
            return _error(403, "forbidden", "matrix-manager role required")
        return await handler(request)

    return wrapped


# --- params -------------------------------------------------------------------------------
def _bad_param(name: str, reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "bad_param", "message": f"{name}: {reason}"}),
        content_type="application/json")


def _opt(request: web.Request, name: str, allowed: tuple[str, ...] | None = None
         ) -> str | None:
    v = request.query.get(name, "").strip()
    if not v or v == "all":
        return None
    if allowed is not None and v not in allowed:
        raise web.HTTPBadRequest(text=json.dumps({"error": "bad_param", "message": name}),
                                 content_type="application/json")
    return v


def _num(request: web.Request, name: str, default: float, lo: float, hi: float) -> float:
    """A number clamped to [lo, hi] (so inf and 1e999 clamp too); absent or empty: the
    default. NaN and text are refused: min/max let NaN through and int(NaN) raised."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        raise _bad_param(name, "not a number") from None
    if math.isnan(v):
        raise _bad_param(name, "not a number")
    return min(max(v, lo), hi)


def _time(request: web.Request, name: str) -> float | None:
    """Epoch seconds or ISO-8601 with offset; absent or empty: None. NaN, infinities and
    times outside years 1..9999 are refused: they reached datetime (and ES) and raised."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    what = "not a time (epoch seconds or ISO-8601 with offset)"
    try:
        v = float(raw)
    except ValueError:
        try:
            v = epoch(raw)
        except ValueError:
            raise _bad_param(name, what) from None
    if math.isnan(v):
        raise _bad_param(name, what)
    if not MIN_TS <= v <= MAX_TS:
        raise _bad_param(name, "time out of range")
    return v


def _rowid(request: web.Request, name: str) -> int | None:
    """A whole number ≥ 0 (a row id), clamped to SQLite's largest integer, which a longer
    one overflowed; absent or empty: None. ``str.isdigit`` alone let "²" reach int()."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise _bad_param(name, "not a whole number")
    digits = raw.lstrip("0") or "0"
    return MAX_ROWID if len(digits) > 19 else min(int(digits), MAX_ROWID)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise web.HTTPRequestEntityTooLarge(
            MAX_BODY, request.content_length or 0,
            text=json.dumps({"error": "too_large",
                             "message": f"request body over {MAX_BODY // 2**20} MiB"}),
            content_type="application/json") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error":"bad_json"}',
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error":"bad_json"}', content_type="application/json")
    return data


# --- pages --------------------------------------------------------------------------------
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def login_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "login.html")


async def healthz(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


# --- session ------------------------------------------------------------------------------
async def login(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    remote = _remote(request)
    limiter = request.app[LIMITER]
    if limiter.throttled(remote):  # before reading the body; attempt() checks again
        return _too_many("too many failed logins, wait a minute")
    try:
        data = await request.json()
        token = str(data.get("token") or "") if isinstance(data, dict) else ""
    except (json.JSONDecodeError, UnicodeDecodeError):
        token = ""

    async def check() -> User | None:
        return await _run(console.users.authenticate, token) if token else None

    allowed, user = await limiter.attempt(remote, check)
    if not allowed:
        return _too_many("too many failed logins, wait a minute")
    if user is None:
        await _run(console.state.audit, None, None, "login_failed", None, None, remote)
        return _error(401, "bad_token", "unknown token")
    sid = await _run(console.state.create_session, user.name)
    request[USER] = user
    await _audit(request, "login")
    resp = _json({"user": user.public()})
    resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/",
                    secure=console.cs.secure_cookie, max_age=int(console.cs.session_ttl))
    return resp


async def logout(request: web.Request) -> web.Response:
    await _run(request.app[CONSOLE].state.end_session, request.cookies.get(COOKIE))
    await _audit(request, "logout")
    resp = _json({"ok": True})
    resp.del_cookie(COOKIE, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    return _json({"user": _user(request).public()})


async def meta(request: web.Request) -> web.Response:
    data = await _run(request.app[CONSOLE].meta)
    return _json({**data, "user": _user(request).public()})


# --- alerts -------------------------------------------------------------------------------
async def alerts(request: web.Request) -> web.Response:
    f = AlertFilter(severity=_opt(request, "severity"), rule=_opt(request, "rule"),
                    account=_opt(request, "account"), before=_time(request, "before"),
                    limit=int(_num(request, "limit", 100, 1, 500)))
    status = _opt(request, "status", ("open", "new", "acknowledged", "closed"))
    return _json(await _run(request.app[CONSOLE].alert_list, f, status))


async def alert_detail(request: web.Request) -> web.Response:
    try:
        return _json(await _run(request.app[CONSOLE].alert_detail,
                                request.match_info["alert_id"]))
    except NotFound:
        return _error(404, "not_found", "no such alert")


async def alert_action(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert_id"]
    body = await _body(request)
    action = str(body.get("action", ""))
    if action not in ACTIONS:
        return _error(400, "bad_action", f"action must be one of {', '.join(ACTIONS)}")
    assignee = body.get("assignee")
    note = body.get("note")
    user = _user(request)
    try:
        out = await _run(request.app[CONSOLE].act, alert_id, user.name, action,
                         assignee=str(assignee) if assignee else None,
                         note=str(note) if note else None)
    except NotFound:
        return _error(404, "not_found", "no such alert")
    except TransitionError as e:
        return _error(409, "conflict", str(e))
    await _audit(request, f"alert.{action}", alert_id,
                 {"assignee": assignee} if action == "assign" else None)
    return _json(out)


async def users(request: web.Request) -> web.Response:
    return _json({"users": [u.public() for u in request.app[CONSOLE].users.all()]})


async def handover(request: web.Request) -> web.Response:
    data = await _run(request.app[CONSOLE].handover, _time(request, "since"),
                      _time(request, "until"))
    return _json(data)


async def handover_note(request: web.Request) -> web.Response:
    text = str((await _body(request)).get("text", "")).strip()
    if not text:
        return _error(400, "empty", "a hand-over note needs text")
    await _run(request.app[CONSOLE].state.add_handover_note, _user(request).name, text)
    await _audit(request, "handover.note")
    return _json({"ok": True})


# --- live stream --------------------------------------------------------------------------
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``alert`` for each newly stored alert, ``state`` for workflow
    changes (by anyone), a comment line every 15 s to keep proxies from closing it."""
    console = request.app[CONSOLE]
    stop = request.app[STOP]
    cursor = request.query.get("cursor", "").strip()
    if cursor and not console.queries.valid_cursor(cursor):
        return _error(400, "bad_param", "cursor: not a cursor from /api/alerts")
    cursor = cursor or await _run(console.queries.alert_cursor)
    history = await _run(console.state.history_head)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    seen: collections.OrderedDict[str, None] = collections.OrderedDict()
    last_ping = time.monotonic()
    await resp.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
    try:
        while not stop.is_set():
            fresh, cursor = await _run(console.queries.alerts_after, cursor)
            fresh = [a for a in fresh if a["id"] not in seen]
            for a in fresh:
                seen[a["id"]] = None
                while len(seen) > 5000:
                    seen.popitem(last=False)
            if fresh:
                for a in await _run(console.decorate_many, fresh):
                    await _send(resp, "alert", {**a, "cursor": cursor})
            changed, history = await _run(console.state.changed_after, history)
            if changed:
                states = await _run(console.state.states, changed)
                await _send(resp, "state", {"states": {
                    i: s.asdict() for i, s in states.items()}})
            if time.monotonic() - last_ping > 15:
                await resp.write(b": ping\n\n")
                last_ping = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), console.cs.poll_interval)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def _send(resp: web.StreamResponse, event: str, data: Any) -> None:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    await resp.write(f"event: {event}\ndata: {payload}\n\n".encode())


# --- feed, board, charts ------------------------------------------------------------------
async def feed(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    data = await _run(
        console.feed, sentiment=_opt(request, "sentiment", SENTIMENTS),
        platform=_opt(request, "platform"), kind=_opt(request, "kind", FEED_KINDS),
        level=_opt(request, "level", LEVELS), unit=_opt(request, "unit"),
        account=_opt(request, "account"), q=(_opt(request, "q") or None),
        before=_time(request, "before"), limit=int(_num(request, "limit", 50, 1, 200)))
    return _json(data)


async def matrix_board(request: web.Request) -> web.Response:
    return _json(await _run(request.app[CONSOLE].board, _num(request, "days", 7, 1, 90)))


async def series(request: web.Request) -> web.Response:
    account, unit = _opt(request, "account"), _opt(request, "unit")
    if not (account or unit):
        return _error(400, "bad_param", "account or unit is required")
    return _json(await _run(request.app[CONSOLE].series, account=account, unit=unit,
                            platform=_opt(request, "platform"),
                            days=_num(request, "days", 1, 0.05, 90)))


async def linkage_rates(request: web.Request) -> web.Response:
    superior = _opt(request, "superior")
    if not superior:
        return _error(400, "bad_param", "superior is required")
    return _json(await _run(request.app[CONSOLE].linkage_rates, superior=superior,
                            platform=_opt(request, "platform") or "weibo",
                            days=_num(request, "days", 30, 1, 365)))


# --- manager only -------------------------------------------------------------------------
@require_manager
async def audit_log(request: web.Request) -> web.Response:
    rows = await _run(request.app[CONSOLE].state.audit_log,
                      int(_num(request, "limit", 200, 1, 1000)), _rowid(request, "before"))
    return _json({"audit": rows})


async def _registry_work(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Registry parsing in a thread, one at a time: a large or pathological upload took
    seconds of CPU and, run on the event loop, stalled every page and /healthz."""
    async with request.app[REGISTRY_LOCK]:
        return await _run(fn, *args)


@require_manager
async def registry_validate(request: web.Request) -> web.Response:
    text = str((await _body(request)).get("yaml", ""))
    _, report = await _registry_work(request, Console.validate_registry, text)
    await _audit(request, "registry.validate", None, {"ok": report["ok"]})
    return _json(report, status=200 if report["ok"] else 422)


@require_manager
async def registry_upload(request: web.Request) -> web.Response:
    text = str((await _body(request)).get("yaml", ""))
    try:
        report = await _registry_work(request, request.app[CONSOLE].replace_registry, text)
    except PermissionError as e:
        return _error(409, "no_registry_file", str(e))
    await _audit(request, "registry.upload", report.get("written"),
                 {"ok": report["ok"], "accounts": report.get("accounts")})
    return _json(report, status=200 if report["ok"] else 422)


# --- the app ------------------------------------------------------------------------------
def build_console(settings: Settings, users_file: Path | None = None,
                  csettings: ConsoleSettings | None = None) -> Console:
    """The Console for these settings: SQLite or ES reads, console.sqlite, users file."""
    cs = csettings or ConsoleSettings()
    if users_file is not None:
        cs = cs.model_copy(update={"users_file": users_file})
    if cs.users_file is None:
        raise UsersError("no users file: set MW_CONSOLE_USERS_FILE, or make the default one "
                         "with `matrixwatch console token --name NAME --role ROLE`")
    users = Users(cs.users_file)
    queries: ConsoleQueries
    if settings.es_url:
        from matrixwatch.dashboards.console.es import ESQueries

        queries = ESQueries.from_settings(settings)
    else:
        queries = SQLiteQueries(settings.store_path)
    state = ConsoleState(cs.db or settings.data_dir / "console.sqlite",
                         session_ttl=cs.session_ttl)
    return Console(settings, queries, state, users, cs)


def create_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[headers_middleware, auth_middleware],
                          client_max_size=MAX_BODY)
    app[CONSOLE] = console
    app[LIMITER] = AuthLimiter()
    app[REGISTRY_LOCK] = asyncio.Lock()

    async def on_startup(app: web.Application) -> None:
        app[STOP] = asyncio.Event()

    async def on_shutdown(app: web.Application) -> None:
        app[STOP].set()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_get("/", index)
    r.add_get("/login", login_page)
    r.add_get("/healthz", healthz)
    r.add_get("/favicon.ico", favicon)
    r.add_post("/api/login", login)
    r.add_post("/api/logout", logout)
    r.add_get("/api/me", me)
    r.add_get("/api/meta", meta)
    r.add_get("/api/users", users)
    r.add_get("/api/alerts", alerts)
    r.add_get("/api/alerts/{alert_id}", alert_detail)
    r.add_post("/api/alerts/{alert_id}/actions", alert_action)
    r.add_get("/api/handover", handover)
    r.add_post("/api/handover/notes", handover_note)
    r.add_get("/api/stream", stream)
    r.add_get("/api/feed", feed)
    r.add_get("/api/board", matrix_board)
    r.add_get("/api/series", series)
    r.add_get("/api/linkage-rates", linkage_rates)
    r.add_get("/api/audit", audit_log)
    r.add_post("/api/registry/validate", registry_validate)
    r.add_put("/api/registry", registry_upload)
    r.add_static("/static", STATIC, follow_symlinks=False)
    return app


async def serve(console: Console, host: str, port: int,
                ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None,
                sock: socket.socket | None = None) -> None:
    """Serve until ``stop`` is set (or forever); ``ready`` gets the bound port. ``sock``:
    a listening socket to serve instead of binding ``host:port`` (``matrixwatch run``
    binds it and hands it over, so the console its link leads to is certainly this one)."""
    app = create_app(console)
    runner = web.AppRunner(app, access_log_class=AccessLogger, access_log=log,
                           shutdown_timeout=2.0)
    await runner.setup()
    if sock is not None:
        await web.SockSite(runner, sock).start()
        bound = int(sock.getsockname()[1])
    else:
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1]) if runner.addresses else port
    if ready:
        ready(bound)
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()


class ServerThread:
    """The console in a background thread with its own loop (tests, embedding)."""

    def __init__(self, console: Console, host: str = "127.0.0.1", port: int = 0) -> None:
        self.console, self.host, self.port = console, host, port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="mw-console", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()

        def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        try:
            loop.run_until_complete(serve(self.console, self.host, self.port, ready,
                                          self._stop))
        except BaseException as e:  # surfaced by start()
            self.error = e
            self._ready.set()
        finally:
            loop.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"console did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
