"""Polite HTTP for collectors: per-host rate limits, backoff with jitter, auth detection.

Being banned is the main way a Weibo collector loses data (MediaCrawler #313), so
every request goes through one :class:`Fetcher` that

* spaces requests per host with a token bucket (``host_rate`` per second, ``host_burst``);
* retries 418 (Weibo's "I'm a teapot" throttle), 429, 5xx, timeouts and connection
  errors with exponential backoff and full jitter (tenacity), honouring ``Retry-After``
  up to ``backoff_max``;
* never follows redirects: m.weibo.cn answers an expired cookie with a 302 to
  passport.weibo.cn / login, which must become :class:`AuthExpired`, not a login page
  parsed as data.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from matrixwatch.collectors import metrics
from matrixwatch.collectors.base import (
    AuthExpired,
    HttpError,
    MalformedResponse,
    RetryableError,
)

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504, 520, 521, 522, 524})
_LOGIN_MARKERS = ("passport.weibo", "/signin", "/login", "login.sina", "passport.sina")


class TokenBucket:
    """Requests per second with a small burst, shared by every collector of one host."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def is_login_url(url: str) -> bool:
    u = url.lower()
    return any(m in u for m in _LOGIN_MARKERS)


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    def json(self) -> Any:
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as e:
            head = self.content[:80].decode("utf-8", "replace")
            raise MalformedResponse(f"not JSON from {self.url}: {e} ({head!r})") from None


class Fetcher:
    """One httpx client with per-host buckets and tenacity retries."""

    def __init__(
        self,
        source: str,
        *,
        timeout: float = 15.0,
        rate: float = 1.0,
        burst: int = 3,
        attempts: int = 5,
        backoff_initial: float = 2.0,
        backoff_max: float = 120.0,
        user_agent: str = "matrixwatch",
        headers: Mapping[str, str] | None = None,
        buckets: dict[str, TokenBucket] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.rate, self.burst = rate, burst
        self.attempts = attempts
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.buckets = buckets if buckets is not None else {}
        self._sleep = sleep
        self.requests = 0
        self.retries = 0
        self.client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            headers={"User-Agent": user_agent, "Accept": "application/json, */*",
                     **(headers or {})},
            trust_env=False,
        )

    @classmethod
    def from_settings(cls, source: str, settings: Any, **kw: Any) -> Fetcher:
        return cls(
            source, timeout=settings.http_timeout, rate=settings.host_rate,
            burst=settings.host_burst, attempts=settings.retry_attempts,
            backoff_initial=settings.backoff_initial, backoff_max=settings.backoff_max,
            user_agent=settings.user_agent, **kw,
        )

    async def close(self) -> None:
        await self.client.aclose()

    def _bucket(self, url: str) -> TokenBucket:
        host = urlsplit(url).netloc
        b = self.buckets.get(host)
        if b is None:
            b = self.buckets[host] = TokenBucket(self.rate, self.burst)
        return b

    def _wait(self, state: RetryCallState) -> float:
        """Full jitter on an exponential ceiling; Retry-After is a floor (capped)."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** (state.attempt_number - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, self.backoff_max))
        return wait

    async def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, RetryableError) else type(exc).__name__
        self.retries += 1
        metrics.RETRIES.labels(source=self.source, reason=reason).inc()

    async def get(
        self, url: str, params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        check: Callable[[Response], None] | None = None,
    ) -> Response:
        """GET with retries; returns the response (4xx included: API error bodies are
        read by ``check``, which runs inside the retry loop and may raise
        :class:`RetryableError` for body-level rate limits)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                resp = await self._once(url, params, headers)
                if check is not None:
                    check(resp)
                return resp
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None
    ) -> Response:
        await self._bucket(url).acquire()
        self.requests += 1
        try:
            r = await self.client.get(url, params=params, headers=headers)
        except httpx.TimeoutException as e:
            metrics.REQUESTS.labels(source=self.source, outcome="timeout").inc()
            raise RetryableError("timeout") from e
        except httpx.TransportError as e:
            metrics.REQUESTS.labels(source=self.source, outcome="error").inc()
            raise RetryableError("connect") from e
        metrics.REQUESTS.labels(source=self.source, outcome=str(r.status_code)).inc()
        resp = Response(r.status_code, r.headers, r.content, str(r.url))
        code = r.status_code
        if 300 <= code < 400 and code != 304:
            loc = r.headers.get("location", "")
            if is_login_url(loc):
                raise AuthExpired(f"redirected to login ({loc[:120]})")
            raise HttpError(f"unexpected redirect {code} to {loc[:120]}")
        if code in RETRY_STATUSES:
            raise RetryableError(str(code), _retry_after(r.headers.get("retry-after")))
        if code == 401:
            raise AuthExpired(f"401 from {resp.url}")
        return resp
