"""retry_async: the backoff both the store writes and the alert deliveries use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from matrixwatch import retry
from matrixwatch.retry import retry_async


class _Flaky:
    """Fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits asked for, without waiting (tenacity sleeps through asyncio.sleep)."""
    waits: list[float] = []

    async def sleep(seconds: float, *_: Any) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return waits


async def test_retries_until_success_with_doubling_waits(sleeps: list[float]) -> None:
    call = _Flaky(*(OSError(f"busy {i}") for i in range(1, 6)))
    seen: list[tuple[str, int]] = []
    await retry_async(call, initial=0.5, max_wait=3.0,
                      on_retry=lambda e, n: seen.append((str(e), n)))
    assert call.calls == 6
    assert seen == [(f"busy {i}", i) for i in range(1, 6)]
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]  # doubles, capped at max_wait


async def test_jitter_adds_at_most_its_bound(sleeps: list[float]) -> None:
    await retry_async(_Flaky(OSError(), OSError(), OSError()), initial=0.5, max_wait=30.0,
                      on_retry=lambda e, n: None, jitter=0.25)
    base = [0.5, 1.0, 2.0]
    assert all(b <= w <= b + 0.25 for b, w in zip(base, sleeps, strict=True)), sleeps


async def test_gives_up_after_the_attempts_with_the_last_error(sleeps: list[float]) -> None:
    call = _Flaky(*(OSError(f"down {i}") for i in range(1, 10)))
    seen: list[int] = []
    with pytest.raises(OSError, match="down 3"):
        await retry_async(call, initial=0.1, max_wait=1.0, attempts=3,
                          on_retry=lambda e, n: seen.append(n))
    assert call.calls == 3 and seen == [1, 2]


async def test_one_attempt_means_no_retry(sleeps: list[float]) -> None:
    call = _Flaky(OSError("down"))
    with pytest.raises(OSError):
        await retry_async(call, initial=0.1, max_wait=1.0, attempts=1,
                          on_retry=lambda e, n: pytest.fail("retried"))
    assert call.calls == 1 and sleeps == []


@pytest.mark.parametrize("first", [True, False])
async def test_an_error_not_worth_retrying_is_raised_at_once(
        sleeps: list[float], first: bool) -> None:
    errors = [ValueError("bad request")] if first else [OSError("busy"), ValueError("bad")]
    call = _Flaky(*errors)
    with pytest.raises(ValueError):
        await retry_async(call, initial=0.1, max_wait=1.0, attempts=5,
                          on_retry=lambda e, n: None,
                          retryable=lambda e: isinstance(e, OSError))
    assert call.calls == len(errors)


async def test_a_first_try_that_succeeds_builds_no_retry_machinery(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tenacity(*a: Any, **kw: Any) -> Any:
        raise AssertionError("AsyncRetrying built for a call that succeeded")

    monkeypatch.setattr(retry, "AsyncRetrying", no_tenacity)
    call = _Flaky()
    await retry_async(call, initial=0.1, max_wait=1.0, on_retry=lambda e, n: None)
    assert call.calls == 1
