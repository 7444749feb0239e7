"""Retrying an async call with exponential backoff: the store writes and the alert
deliveries both retry this way."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random,
)

OnRetry = Callable[[BaseException | None, int], None]


def _always(exc: BaseException) -> bool:
    return True


async def retry_async(call: Callable[[], Awaitable[None]], *, initial: float,
                      max_wait: float, on_retry: OnRetry, attempts: int | None = None,
                      jitter: float = 0.0,
                      retryable: Callable[[BaseException], bool] = _always) -> None:
    """Await ``call()`` until it succeeds.

    The waits between tries start at ``initial`` and double, at most ``max_wait``, plus
    up to ``jitter`` seconds at random (so workers that failed together do not retry in
    step). ``on_retry(exception, attempt)`` runs after each failed attempt that will be
    tried again. The last exception is raised after ``attempts`` tries (None: never give
    up), or at once if ``retryable`` says it is not worth another try.

    The first try runs without tenacity: its per-call objects form reference cycles, and
    each kept the call's arguments (a batch of events, an alert) alive until the
    collector's next pass; on the load run they were most of the cyclic garbage.
    """
    try:
        await call()
        return
    except Exception as exc:
        if not retryable(exc) or (attempts is not None and attempts <= 1):
            raise
        on_retry(exc, 1)
    await asyncio.sleep(min(initial, max_wait) + (random.uniform(0, jitter) if jitter else 0))
    async for attempt in AsyncRetrying(  # the waits go on doubling from there
        stop=stop_never if attempts is None else stop_after_attempt(attempts - 1),
        wait=wait_exponential(multiplier=2 * initial, max=max_wait) + wait_random(0, jitter),
        retry=retry_if_exception(retryable),
        before_sleep=lambda rs: on_retry(
            rs.outcome.exception() if rs.outcome else None, rs.attempt_number + 1),
        reraise=True,
    ):
        with attempt:
            await call()
