"""What every notifier shares: safe errors, the HTTP call, and log redaction.

A notifier error must never carry a token, a signature or a password: robot URLs embed
their token (DingTalk ``access_token``, WeCom ``key``, the Feishu hook id) and the signed
query string. So errors are built here from the status, the platform's error code and a
redacted excerpt, and httpx's own request log lines (the collectors use httpx) are passed
through a filter that keeps only the scheme and host of URLs; aiohttp's client logger, which
logs no request URL, gets the same filter.

The transport is aiohttp, not httpx: alert delivery was 14 % of a busy worker's CPU, and a
delivery through :func:`~matrixwatch.alerts.dispatch.deliver` took 0.49 ms of CPU instead
of 1.20 ms (8 concurrent, keep-alive server in another process).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.request import getproxies, proxy_bypass_environment

import aiohttp
import httpx
import orjson
import yarl

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.text import redact_urls

MAX_RESPONSE_BYTES = 64 * 1024  # robots answer a few dozen bytes; never read more than this
KEEPALIVE_SECONDS = 5.0  # idle connections closed after this, as httpx did (keepalive_expiry)


class NotifyError(Exception):
    """One failed attempt. ``reason`` is a short label for metrics; ``retryable`` says
    whether another attempt may succeed (network, 5xx, 429, "busy"). A robot's "sending
    too fast" answer is a :class:`RateLimitError` instead."""

    def __init__(self, reason: str, retryable: bool, detail: str = "") -> None:
        self.reason = reason
        self.retryable = retryable
        self.detail = redact_urls(detail)[:300]
        super().__init__(f"{reason}{': ' + self.detail if self.detail else ''}")


class RateLimitError(NotifyError):
    """The platform answered that the robot sends too fast. Never retried: the platform
    goes on refusing for ``cooldown`` seconds (a DingTalk robot is throttled for 10
    minutes), and each retry in between is one more refused request. The caller waits
    the cooldown out and summarises instead (alerts/throttle.py)."""

    def __init__(self, reason: str, cooldown: float, detail: str = "") -> None:
        super().__init__(reason, False, detail)
        self.cooldown = cooldown


class _Undelivered(Exception):
    """What :class:`RateLimited` and :class:`DeliveryFailed` both carry: the channel, its
    type, the reason and the attempts. Never caught as such: the two mean different
    things to the caller. The message names the channel, its type and host, never secrets."""

    def __init__(self, channel: str, ctype: str, reason: str, attempts: int, detail: str,
                 message: str) -> None:
        self.channel = channel
        self.type = ctype
        self.reason = reason
        self.attempts = attempts
        self.detail = detail
        super().__init__(f"{message}: {reason}{': ' + detail if detail else ''}")


class RateLimited(_Undelivered):
    """A delivery the platform refused as too fast (:class:`RateLimitError`), raised by
    :func:`~matrixwatch.alerts.dispatch.deliver` after that one attempt.

    Deliberately not a :class:`DeliveryFailed`: nothing failed for good, the alert goes
    into the channel's rate-limit summary once ``cooldown`` seconds have passed
    (:class:`~matrixwatch.alerts.dispatch.FanOut` with a throttle), so a sender that
    records DeliveryFailed (dead letter) lets this one through to the fan-out."""

    def __init__(self, channel: str, ctype: str, target: str, reason: str, cooldown: float,
                 attempts: int, detail: str = "") -> None:
        self.cooldown = cooldown
        super().__init__(channel, ctype, reason, attempts, detail,
                         f"channel {channel} ({ctype} → {target}) is rate-limited by the "
                         f"platform for {cooldown:g} s")


class DeliveryFailed(_Undelivered):
    """A notification that could not be delivered after every attempt. The caller records
    it (store, metric)."""

    def __init__(self, channel: str, ctype: str, target: str, reason: str, attempts: int,
                 detail: str = "") -> None:
        super().__init__(channel, ctype, reason, attempts, detail,
                         f"delivery to channel {channel} ({ctype} → {target}) failed after "
                         f"{attempts} attempt(s)")


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_urls(str(a)) if isinstance(a, httpx.URL | yarl.URL)
                or (isinstance(a, str) and "://" in a) else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_urls(record.msg)
        return True


def _install_filter() -> None:
    for name in ("httpx", "httpcore", "aiohttp.client"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _RedactFilter) for f in lg.filters):
            lg.addFilter(_RedactFilter())


_install_filter()


@functools.lru_cache(maxsize=16)
def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """Verifying TLS context, built once per CA bundle: building one loads the whole CA
    store (~10 ms), which per delivery was a third of a busy worker's CPU (profiled)."""
    if cafile is None:
        return httpx.create_ssl_context()  # certifi (or SSL_CERT_FILE/DIR), verification on
    return ssl.create_default_context(cafile=cafile)


@functools.lru_cache(maxsize=1)
def _unverified_context() -> ssl.SSLContext:
    """``verify: false`` only: no certificate or host name check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _env_proxies() -> dict[str, str]:
    """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, read once per client as httpx did
    (aiohttp's own ``trust_env`` rereads them, and ~/.netrc, in a thread per request)."""
    found = getproxies()
    out = {k: v if "://" in v else f"http://{v}"
           for k, v in found.items() if k in ("http", "https", "all") and v}
    if out and found.get("no"):
        out["no"] = found["no"]
    return out


class HttpClient:
    """The notifiers' HTTP client: one aiohttp session with its connection pool, opened
    on first use inside the running loop (a session belongs to one loop), no redirects,
    a total timeout per request. ``ssl_context`` is what HTTPS connections verify with."""

    def __init__(self, ssl_context: ssl.SSLContext, trust_env: bool, timeout: float) -> None:
        self.ssl_context = ssl_context
        self.trust_env = trust_env
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._proxies = _env_proxies() if trust_env else {}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed or (self._session is not None and self._session.closed)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context,
                                               keepalive_timeout=KEEPALIVE_SECONDS),
                timeout=self.timeout,
                trust_env=False,  # proxies: proxy_for(), from the environment read once
            )
        return self._session

    def proxy_for(self, url: yarl.URL) -> str | None:
        if not self._proxies:
            return None
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if proxy is None or proxy_bypass_environment(url.host or "", self._proxies):
            return None
        return proxy

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


def client_for(channel: Channel) -> HttpClient:
    """An HTTP client with TLS verification on (or a CA bundle), no redirects."""
    ctx = _tls_context(None)
    if isinstance(channel.verify, str):
        ctx = _tls_context(channel.verify)
    elif channel.verify is False:
        ctx = _unverified_context()
    return HttpClient(ctx, channel.trust_env, channel.retry.timeout)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, HttpClient]] = (
    weakref.WeakKeyDictionary())
_CLOSING: set[asyncio.Task[None]] = set()


def shared_client(channel: Channel) -> HttpClient:
    """One long-lived client per channel settings and event loop, so a burst of alerts
    reuses the connection instead of building a client (and a TLS handshake) per alert.
    Weakly keyed by the loop: a client never outlives, or crosses, its loop. Close them
    with :func:`close_shared_clients` before the loop ends (an open session holds its
    loop; clients of a loop closed without that are dropped when another loop comes)."""
    loop = asyncio.get_running_loop()
    per_loop = _SHARED.get(loop)
    if per_loop is None:
        _drop_closed_loops(loop)
        per_loop = _SHARED[loop] = {}
    key = (channel.name, str(channel.verify), channel.trust_env, channel.retry.timeout)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        client = per_loop[key] = client_for(channel)
    return client


def _drop_closed_loops(running: asyncio.AbstractEventLoop) -> None:
    for loop in [lp for lp in _SHARED if lp.is_closed()]:
        for client in _SHARED.pop(loop).values():
            # Their loop is gone, so this only marks the sessions closed (no "Unclosed
            # client session" at exit); a kept-alive socket is left to the collector.
            task = running.create_task(client.aclose())
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)


async def close_shared_clients() -> None:
    """Close the running loop's shared clients (worker shutdown, test teardown)."""
    clients = _SHARED.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(c.aclose() for c in clients.values()))


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON, the body that is sent (and signed). orjson: the stdlib encoder
    was 7 % of a webhook delivery's CPU."""
    return orjson.dumps(payload)


_VALID_URL = re.compile(r"(?:[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*")


def _target(url: str) -> yarl.URL:
    """The URL as built, byte for byte, when it is already valid (yarl would otherwise
    decode a signature's ``%2F``); anything else is percent-encoded."""
    return yarl.URL(url, encoded=_VALID_URL.fullmatch(url) is not None)


async def _read_capped(resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """At most MAX_RESPONSE_BYTES of the body, and whether there was more."""
    content = resp.content
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_RESPONSE_BYTES and not content.at_eof():
        chunk = await content.read(MAX_RESPONSE_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_RESPONSE_BYTES:
        resp.close()  # the rest stays unread: the connection is not reused
        return b"".join(chunks)[:MAX_RESPONSE_BYTES], True
    return b"".join(chunks), False


def _text(resp: aiohttp.ClientResponse, raw: bytes) -> str:
    try:
        return raw.decode(resp.charset or "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


async def post(client: HttpClient, url: str, body: bytes,
               headers: dict[str, str] | None = None) -> Any:
    """POST a JSON body; return the decoded JSON response (or None: not JSON, or longer
    than MAX_RESPONSE_BYTES). Raises NotifyError."""
    hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    target = _target(url)
    try:
        async with client.session().post(target, data=body, headers=hdrs,
                                         allow_redirects=False,
                                         proxy=client.proxy_for(target)) as resp:
            code = resp.status
            raw, truncated = await _read_capped(resp)
    except TimeoutError as e:  # the total timeout, and aiohttp's ServerTimeoutError
        raise NotifyError("timeout", True, type(e).__name__) from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError, OSError) as e:
        # Refused, DNS, TLS handshake or certificate, disconnected, a malformed or cut
        # response, a proxy that refused: what httpx called a TransportError.
        raise NotifyError("network", True, type(e).__name__) from None
    except aiohttp.ClientError as e:
        raise NotifyError("http_error", False, type(e).__name__) from None
    if code == 429 or code >= 500:
        raise NotifyError(f"http_{code}", True, _text(resp, raw[:800])[:200])
    if code >= 300:
        raise NotifyError(f"http_{code}", False, _text(resp, raw[:800])[:200])
    if truncated:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def check_code(data: Any, field: str, retryable_codes: frozenset[int], msg_field: str,
               rate_limits: Mapping[int, float] | None = None) -> None:
    """Robot APIs answer HTTP 200 with an error code in the body: 0 is success.
    ``rate_limits`` maps the platform's "sending too fast" codes to their cooldown in
    seconds: those raise :class:`RateLimitError` (not retried)."""
    if not isinstance(data, dict) or field not in data:
        return
    try:
        code = int(data[field])
    except (TypeError, ValueError):
        raise NotifyError("bad_response", False, str(data)[:200]) from None
    if code != 0:
        reason, detail = f"errcode_{code}", str(data.get(msg_field, ""))[:200]
        if rate_limits is not None and code in rate_limits:
            raise RateLimitError(reason, rate_limits[code], detail)
        raise NotifyError(reason, code in retryable_codes, detail)
