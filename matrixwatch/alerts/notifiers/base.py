"""What every notifier shares: safe errors, the HTTP call, and log redaction.

A notifier error must never carry a token, a signature or a password: robot URLs embed
their token (DingTalk ``access_token``, WeCom ``key``, the Feishu hook id) and the signed
query string. So errors are built here from the status, the platform's error code and a
redacted excerpt, and httpx's own request log lines are passed through a filter that keeps
only the scheme and host of URLs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import weakref
from typing import Any

import httpx

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.text import redact_urls


class NotifyError(Exception):
    """One failed attempt. ``reason`` is a short label for metrics; ``retryable`` says
    whether another attempt may succeed (network, 5xx, 429, platform rate limits)."""

    def __init__(self, reason: str, retryable: bool, detail: str = "") -> None:
        self.reason = reason
        self.retryable = retryable
        self.detail = redact_urls(detail)[:300]
        super().__init__(f"{reason}{': ' + self.detail if self.detail else ''}")


class DeliveryFailed(Exception):
    """A notification that could not be delivered after every attempt. The caller records
    it (store, metric); the message names the channel, its type and host, never secrets."""

    def __init__(self, channel: str, ctype: str, target: str, reason: str, attempts: int,
                 detail: str = "") -> None:
        self.channel = channel
        self.type = ctype
        self.reason = reason
        self.attempts = attempts
        self.detail = detail
        super().__init__(
            f"delivery to channel {channel} ({ctype} → {target}) failed after {attempts} "
            f"attempt(s): {reason}{': ' + detail if detail else ''}"
        )


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_urls(str(a)) if isinstance(a, httpx.URL)
                or (isinstance(a, str) and "://" in a) else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_urls(record.msg)
        return True


def _install_filter() -> None:
    for name in ("httpx", "httpcore"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _RedactFilter) for f in lg.filters):
            lg.addFilter(_RedactFilter())


_install_filter()


@functools.lru_cache(maxsize=16)
def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """Verifying TLS context, built once per CA bundle: building one loads the whole CA
    store (~10 ms), which per delivery was a third of a busy worker's CPU (profiled)."""
    if cafile is None:
        return httpx.create_ssl_context()  # httpx's default: certifi, verification on
    return ssl.create_default_context(cafile=cafile)


def client_for(channel: Channel) -> httpx.AsyncClient:
    """An HTTP client with TLS verification on (or a CA bundle), no redirects."""
    verify: bool | ssl.SSLContext = _tls_context(None)
    if isinstance(channel.verify, str):
        verify = _tls_context(channel.verify)
    elif channel.verify is False:
        verify = False
    return httpx.AsyncClient(verify=verify, trust_env=channel.trust_env,
                             timeout=channel.retry.timeout, follow_redirects=False)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary())


def shared_client(channel: Channel) -> httpx.AsyncClient:
    """One long-lived client per channel settings and event loop, so a burst of alerts
    reuses the connection instead of building a client (and a TLS handshake) per alert.
    Weakly keyed by the loop: a client never outlives, or crosses, its loop."""
    per_loop = _SHARED.setdefault(asyncio.get_running_loop(), {})
    key = (channel.name, str(channel.verify), channel.trust_env, channel.retry.timeout)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        client = per_loop[key] = client_for(channel)
    return client


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def post(client: httpx.AsyncClient, url: str, body: bytes,
               headers: dict[str, str] | None = None) -> Any:
    """POST a JSON body; return the decoded JSON response (or None). Raises NotifyError."""
    hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    try:
        resp = await client.post(url, content=body, headers=hdrs)
    except httpx.TimeoutException as e:
        raise NotifyError("timeout", True, type(e).__name__) from None
    except httpx.TransportError as e:
        raise NotifyError("network", True, type(e).__name__) from None
    except httpx.HTTPError as e:
        raise NotifyError("http_error", False, type(e).__name__) from None
    code = resp.status_code
    if code == 429 or code >= 500:
        raise NotifyError(f"http_{code}", True, resp.text[:200])
    if code >= 300:
        raise NotifyError(f"http_{code}", False, resp.text[:200])
    try:
        return resp.json()
    except ValueError:
        return None


def check_code(data: Any, field: str, retryable_codes: frozenset[int], msg_field: str) -> None:
    """Robot APIs answer HTTP 200 with an error code in the body: 0 is success."""
    if not isinstance(data, dict) or field not in data:
        return
    try:
        code = int(data[field])
    except (TypeError, ValueError):
        raise NotifyError("bad_response", False, str(data)[:200]) from None
    if code != 0:
        raise NotifyError(f"errcode_{code}", code in retryable_codes,
                          str(data.get(msg_field, ""))[:200])
