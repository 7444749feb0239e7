"""Polite HTTP for collectors: per-host rate limits, backoff with jitter, per-host
circuit breakers, auth detection.

Being banned is the main way a Weibo collector loses data (MediaCrawler #313), so
every request goes through one :class:`Fetcher` that

* spaces requests per host with a token bucket (``host_rate`` per second, ``host_burst``);
* retries 418 (Weibo's "I'm a teapot" throttle), 429, 5xx, timeouts and connection
  errors with exponential backoff and full jitter (tenacity), honouring ``Retry-After``
  up to ``backoff_max`` — for the whole host, not only the request that got it;
* stops sending to a host that failed ``circuit_threshold`` requests in a row
  (:class:`CircuitBreaker`), so a host that is down fails every poll within seconds
  instead of queueing every poll's retries behind the host's rate limit;
* never follows redirects: m.weibo.cn answers an expired cookie with a 302 to
  passport.weibo.cn / login, which must become :class:`AuthExpired`, not a login page
  parsed as data.
"""

from __future__ import annotations

import asyncio
import logging
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
    CircuitOpen,
    HttpError,
    MalformedResponse,
    RetryableError,
    describe,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504, 520, 521, 522, 524})
THROTTLE_STATUSES = frozenset({418, 429})  # retried, but not a sign the host is down
_LOGIN_MARKERS = ("passport.weibo", "/signin", "/login", "login.sina", "passport.sina")


class TokenBucket:
    """Requests per second with a small burst, shared by every collector of one host."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.hold_until = 0.0
        self._lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        """Send nothing to this host for ``seconds`` (its ``Retry-After``): every poll
        queues here, so one throttle answer slows all of them, not just its own retry."""
        self.hold_until = max(self.hold_until, time.monotonic() + seconds)

    async def acquire(self, admit: Callable[[], None] | None = None) -> None:
        """Wait for a slot and take it.

        ``admit`` (the host's circuit) runs right before the token is taken and may raise
        instead: requests queued here when the circuit opens then leave at once, without
        using a slot, rather than draining one per ``1/rate`` seconds.
        """
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self.hold_until:
                    await asyncio.sleep(self.hold_until - now)
                    continue
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    if admit is not None:
                        admit()
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class CircuitBreaker:
    """One host's circuit: ``closed`` → ``open`` → ``half_open`` → ``closed`` or ``open``.

    Why: every poll of a host shares its rate limit, so while the host is down each
    poll's retries queue behind every other poll's first attempt (208 accounts at 1
    request/s: the first failed poll, and with it the first collector_health record,
    came after ~14 minutes). After ``threshold`` consecutive failed requests
    (connection errors, timeouts, 5xx) the circuit opens: requests raise
    :class:`CircuitOpen` at once, are not retried and take no rate-limit slot, so every
    poll fails within seconds and the health tracker sees it. After ``cooldown``
    seconds the next request is a trial (``half_open``); requests arriving meanwhile
    wait for its verdict rather than fail a poll that may succeed a moment later. Any
    answer closes the circuit; a failure reopens it with the cooldown doubled, up to
    ``cooldown_max``.

    418/429 neither count nor reset: the host is up and asks us to slow down, which
    ``Retry-After`` and the backoff do; opening on throttling would turn a short
    throttle into a failed round. Any other answer (2xx, 3xx, 4xx, an expired login)
    shows the host is up and resets the count. ``threshold`` 0 never opens.
    """

    def __init__(self, host: str, threshold: int = 5, cooldown: float = 30.0,
                 cooldown_max: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self.threshold = threshold
        self.cooldown = cooldown
        self.cooldown_max = max(cooldown, cooldown_max)
        self.clock = clock
        self.state = "closed"
        self.failures = 0  # consecutive failed requests
        self.last_error = ""
        self.opened_for = 0.0  # the current cooldown
        self.retry_at = 0.0  # when the next trial may go out
        self.rejected = 0  # requests failed fast since the circuit opened
        self._verdict: asyncio.Event | None = None  # set when the trial in flight ends

    @property
    def trial(self) -> bool:
        """A half-open trial request is in flight."""
        return self._verdict is not None

    def _reject(self) -> CircuitOpen:
        self.rejected += 1
        return CircuitOpen(self.host, f"circuit open: {self.host} failed {self.failures} "
                                      f"times in a row: {self.last_error}")

    async def enter(self) -> bool:
        """Before a request queues for a rate-limit slot: raise :class:`CircuitOpen`
        while the circuit is open, wait for the verdict of a trial in flight, and
        return whether this request is the trial (the caller passes that back)."""
        while True:
            if self.state == "closed":
                return False
            if self.state == "open" and self.clock() < self.retry_at:
                raise self._reject()
            if self._verdict is None:
                self.state, self._verdict = "half_open", asyncio.Event()
                log.info("circuit for %s half-open: one trial request after %.0fs",
                         self.host, self.opened_for)
                return True
            await self._verdict.wait()

    def admit(self, trial: bool) -> None:
        """When the slot is taken, right before sending: a request that queued while
        the circuit was closed and has opened since leaves now, unsent."""
        if not trial and self.state != "closed":
            raise self._reject()

    def success(self) -> None:
        """The host answered: close (a late answer to a request sent before the circuit
        opened counts too; it shows the host is back)."""
        if self.state != "closed":
            log.warning("circuit for %s closed: the host answers again (%d failed requests "
                        "in a row, %d failed fast)", self.host, self.failures, self.rejected)
        self.state, self.failures, self.opened_for, self.rejected = "closed", 0, 0.0, 0
        self._end_trial()

    def failure(self, err: BaseException, trial: bool = False) -> None:
        """A connection error, timeout or 5xx: count it; open at the threshold, reopen
        (longer) when it was the trial. Late failures while open only count."""
        self.failures += 1
        self.last_error = describe(err)[:200]
        if trial and self.state == "half_open":
            self._open(min(self.cooldown_max, max(self.cooldown, self.opened_for * 2)))
        elif self.state == "closed" and self.threshold and self.failures >= self.threshold:
            self._open(self.cooldown)

    def settle(self, trial: bool) -> None:
        """A request ended without a verdict on the host (throttled, cancelled, a bug):
        if it was the trial, the next request becomes the trial."""
        if trial and self.state == "half_open":
            self._end_trial()

    def _end_trial(self) -> None:
        if self._verdict is not None:
            self._verdict.set()
            self._verdict = None

    def _open(self, seconds: float) -> None:
        first = self.state == "closed"
        self.state, self.opened_for = "open", seconds
        self.retry_at = self.clock() + seconds
        self._end_trial()  # requests waiting for the trial now fail fast
        (log.warning if first else log.info)(
            "circuit for %s open for %.0fs: %d failed requests in a row, last error: %s; "
            "its requests fail at once until a trial request succeeds", self.host, seconds,
            self.failures, self.last_error)


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
        circuit_threshold: int = 5,
        circuit_cooldown: float = 30.0,
        circuit_cooldown_max: float = 300.0,
        user_agent: str = "matrixwatch",
        headers: Mapping[str, str] | None = None,
        buckets: dict[str, TokenBucket] | None = None,
        breakers: dict[str, CircuitBreaker] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.rate, self.burst = rate, burst
        self.attempts = attempts
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.circuit_threshold = circuit_threshold
        self.circuit_cooldown, self.circuit_cooldown_max = circuit_cooldown, circuit_cooldown_max
        self.buckets = buckets if buckets is not None else {}
        self.breakers = breakers if breakers is not None else {}
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
            circuit_threshold=settings.circuit_threshold,
            circuit_cooldown=settings.circuit_cooldown,
            circuit_cooldown_max=settings.circuit_cooldown_max,
            user_agent=settings.user_agent, **kw,
        )

    async def close(self) -> None:
        await self.client.aclose()

    def _bucket(self, host: str) -> TokenBucket:
        b = self.buckets.get(host)
        if b is None:
            b = self.buckets[host] = TokenBucket(self.rate, self.burst)
        return b

    def breaker(self, url_or_host: str) -> CircuitBreaker:
        """The circuit of a host (``netloc`` of a URL, or the host itself)."""
        host = urlsplit(url_or_host).netloc if "//" in url_or_host else url_or_host
        b = self.breakers.get(host)
        if b is None:
            b = self.breakers[host] = CircuitBreaker(
                host, self.circuit_threshold, self.circuit_cooldown, self.circuit_cooldown_max)
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
        :class:`RetryableError` for body-level rate limits). Raises :class:`CircuitOpen`,
        not retried, while the host's circuit is open (also in the middle of retries)."""
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
        host = urlsplit(url).netloc
        breaker = self.breaker(host)
        bucket = self._bucket(host)
        try:
            trial = await breaker.enter()
        except CircuitOpen:
            metrics.REQUESTS.labels(source=self.source, outcome="circuit_open").inc()
            raise
        try:
            await bucket.acquire(lambda: breaker.admit(trial))
            self.requests += 1
            r = await self.client.get(url, params=params, headers=headers)
        except CircuitOpen:  # opened while this request queued (never the trial)
            metrics.REQUESTS.labels(source=self.source, outcome="circuit_open").inc()
            raise
        except httpx.TimeoutException as e:
            metrics.REQUESTS.labels(source=self.source, outcome="timeout").inc()
            raise _failed(breaker, trial, RetryableError("timeout"), e) from e
        except httpx.TransportError as e:
            metrics.REQUESTS.labels(source=self.source, outcome="error").inc()
            raise _failed(breaker, trial, RetryableError("connect"), e) from e
        except BaseException:  # cancelled (shutdown) or a bug: nothing learnt about the host
            breaker.settle(trial)
            raise
        metrics.REQUESTS.labels(source=self.source, outcome=str(r.status_code)).inc()
        resp = Response(r.status_code, r.headers, r.content, str(r.url))
        code = r.status_code
        if code in RETRY_STATUSES:
            err = RetryableError(str(code), _retry_after(r.headers.get("retry-after")))
            if err.retry_after:
                bucket.hold(min(err.retry_after, self.backoff_max))
            if code in THROTTLE_STATUSES:
                breaker.settle(trial)
            else:
                breaker.failure(err, trial)
            raise err
        breaker.success()
        if 300 <= code < 400 and code != 304:
            loc = r.headers.get("location", "")
            if is_login_url(loc):
                raise AuthExpired(f"redirected to login ({loc[:120]})")
            raise HttpError(f"unexpected redirect {code} to {loc[:120]}")
        if code == 401:
            raise AuthExpired(f"401 from {resp.url}")
        return resp


def _failed(breaker: CircuitBreaker, trial: bool, err: RetryableError,
            cause: BaseException) -> RetryableError:
    """Count a transport failure on the host's circuit, cause included in its reason."""
    err.__cause__ = cause
    breaker.failure(err, trial)
    return err
