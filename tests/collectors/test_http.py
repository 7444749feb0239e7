"""The fetcher's per-host circuit breaker, against the loopback fake server or a port
that refuses connections: when it opens, that it fails fast without the network, the
half-open trial, what resets it, and the outage it exists for (a dead host with many
accounts must reach collector_health within seconds, not after every poll's retries)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from matrixwatch.collectors.base import AuthExpired, CircuitOpen, MemorySink, RetryableError
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.http import CircuitBreaker, Fetcher
from matrixwatch.collectors.weibo_mobile import WeiboMobileCollector
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FakeWeibo

GET_INDEX = "/api/container/getIndex"


def fetcher(**kw: Any) -> Fetcher:
    """No retries and no rate limit unless asked: each get is one request."""
    args: dict[str, Any] = dict(timeout=2.0, rate=1000.0, burst=100, attempts=1,
                                backoff_initial=0.01, backoff_max=0.05, circuit_threshold=3,
                                circuit_cooldown=60.0)
    args.update(kw)
    return Fetcher("test", **args)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound for the test, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_breaker_states_and_growing_cooldown() -> None:
    now = [0.0]
    b = CircuitBreaker("h", threshold=2, cooldown=30.0, cooldown_max=100.0,
                       clock=lambda: now[0])
    err = RetryableError("503")
    assert await b.enter() is False
    b.failure(err)
    assert b.state == "closed"
    b.failure(err)
    assert (b.state, b.opened_for) == ("open", 30.0)
    with pytest.raises(CircuitOpen, match="circuit open: h failed 2 times in a row: "
                                          "RetryableError: 503"):
        await b.enter()
    with pytest.raises(CircuitOpen):
        b.admit(False)  # queued for a slot while it opened: leaves unsent
    now[0] = 30.0
    assert await b.enter() is True and b.state == "half_open"  # the trial
    b.admit(True)
    waiter = asyncio.create_task(b.enter())  # others wait for the trial's verdict
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.failure(err, trial=True)
    assert (b.state, b.opened_for) == ("open", 60.0)
    with pytest.raises(CircuitOpen):
        await waiter
    now[0] = 90.0
    assert await b.enter() is True
    b.failure(err, trial=True)
    assert (b.state, b.opened_for) == ("open", 100.0)  # doubled, capped
    now[0] = 190.0
    b.settle(await b.enter())  # a throttled trial says nothing: the next one is the trial
    assert b.state == "half_open" and await b.enter() is True
    waiter = asyncio.create_task(b.enter())
    await asyncio.sleep(0.01)
    b.success()
    assert await waiter is False
    assert (b.state, b.failures, b.opened_for) == ("closed", 0, 0.0)
    b.failure(err)
    assert b.state == "closed"  # the count starts again

    never = CircuitBreaker("h", threshold=0)
    for _ in range(50):
        never.failure(err)
    assert never.state == "closed"


async def test_circuit_opens_after_consecutive_failures_and_fails_fast() -> None:
    fw = FakeWeibo()
    fw.inject(GET_INDEX, *["500"] * 10)
    async with fw.serve() as base:
        # After the burst of 3, one slot per 1000 s: a rejected request that queued for a
        # slot would hang here instead of failing.
        f = fetcher(rate=0.001, burst=3)
        for _ in range(3):
            with pytest.raises(RetryableError, match="500"):
                await f.get(base + GET_INDEX)
        with pytest.raises(CircuitOpen) as exc:
            await asyncio.wait_for(f.get(base + GET_INDEX), 5)
        await f.close()
    host = base.removeprefix("http://")
    assert fw.hits[GET_INDEX] == 3 and f.requests == 3  # the network was not touched
    assert str(exc.value) == f"circuit open: {host} failed 3 times in a row: RetryableError: 500"
    assert f.breaker(host).state == "open" and f.breaker(host).rejected == 1


async def test_retries_stop_when_the_circuit_opens(dead_url: str) -> None:
    f = fetcher(attempts=5)
    with pytest.raises(CircuitOpen, match=r"failed 3 times in a row: RetryableError: connect "
                                          r"\(ConnectError"):
        await f.get(dead_url + GET_INDEX)
    await f.close()
    assert f.requests == 3 and f.retries == 3  # attempt 4 failed fast and was not retried


async def open_circuit(f: Fetcher, url: str) -> None:
    for _ in range(3):
        with pytest.raises(RetryableError):
            await f.get(url)
    with pytest.raises(CircuitOpen):
        await f.get(url)


@contextlib.asynccontextmanager
async def trial_in_flight(trial_fault: str) -> AsyncIterator[
        tuple[FakeWeibo, Fetcher, CircuitBreaker, str, asyncio.Task[Any]]]:
    """A circuit opened by three 500s, its cooldown (0.2 s) over, and the half-open trial
    sent: the host answers it with ``trial_fault`` after 0.3 s."""
    fw = FakeWeibo()
    fw.stall_seconds = 0.3
    fw.inject(GET_INDEX, "500", "500", "500", trial_fault)
    async with fw.serve() as base:
        f = fetcher(circuit_cooldown=0.2)
        b = f.breaker(base)
        await open_circuit(f, base + GET_INDEX)
        await asyncio.sleep(0.3)
        trial = asyncio.create_task(f.get(base + GET_INDEX))
        await until(lambda: b.trial)
        yield fw, f, b, base, trial


async def test_half_open_trial_success_closes_the_circuit() -> None:
    async with trial_in_flight("slow") as (fw, f, b, base, trial):
        # Arriving during the trial: waits for its verdict, then goes out.
        other = await f.get(base + GET_INDEX)
        assert trial.done() and (await trial).status == 200
        await f.close()
    assert other.status == 200 and (b.state, b.failures) == ("closed", 0)
    assert fw.hits[GET_INDEX] == 5


async def test_half_open_trial_failure_reopens_for_longer() -> None:
    # "timeout" fault: a 500 after 0.3 s (the client waits 2 s)
    async with trial_in_flight("timeout") as (fw, f, b, base, trial):
        with pytest.raises(CircuitOpen, match="failed 4 times in a row"):
            await f.get(base + GET_INDEX)  # waited for the verdict: failed, so fail fast
        with pytest.raises(RetryableError, match="500"):
            await trial
        assert (b.state, b.opened_for, b.failures) == ("open", pytest.approx(0.4), 4)
        with pytest.raises(CircuitOpen):
            await f.get(base + GET_INDEX)
        assert fw.hits[GET_INDEX] == 4  # only the trial went out
        await asyncio.sleep(0.5)
        r = await f.get(base + GET_INDEX)
        await f.close()
    assert r.status == 200 and (b.state, b.opened_for) == ("closed", 0.0)


async def test_an_answer_resets_the_count_and_auth_errors_are_unchanged() -> None:
    fw = FakeWeibo()
    fw.inject(GET_INDEX, "500", "502", None, "500", "502", None, "500", "500")
    async with fw.serve() as base:
        f = fetcher()
        b = f.breaker(base)
        counts = []
        for _ in range(6):
            with contextlib.suppress(RetryableError):
                await f.get(base + GET_INDEX)
            counts.append(b.failures)
        assert counts == [1, 2, 0, 1, 2, 0] and b.state == "closed"
        for _ in range(2):
            with pytest.raises(RetryableError):
                await f.get(base + GET_INDEX)
        # An expired login is an answer: not retried, not a host failure.
        fw.cookie = "SUB=fresh"
        f.attempts = 4
        hits = fw.hits[GET_INDEX]
        with pytest.raises(AuthExpired, match="redirected to login"):
            await f.get(base + GET_INDEX)
        await f.close()
    assert fw.hits[GET_INDEX] == hits + 1
    assert (b.state, b.failures) == ("closed", 0)


@pytest.mark.parametrize("status", ["418", "429"])
async def test_throttling_does_not_open_the_circuit(status: str) -> None:
    fw = FakeWeibo()
    fw.inject(GET_INDEX, *[status] * 6, "500", "500", status, "500")
    async with fw.serve() as base:
        f = fetcher()
        b = f.breaker(base)
        for _ in range(6):
            with pytest.raises(RetryableError, match=status):
                await f.get(base + GET_INDEX)
        assert (b.state, b.failures) == ("closed", 0)
        for _ in range(4):  # a throttle between failures neither counts nor resets
            with pytest.raises(RetryableError):
                await f.get(base + GET_INDEX)
        await f.close()
    assert (b.state, b.failures) == ("open", 3)


async def test_retry_after_pauses_the_whole_host() -> None:
    fw = FakeWeibo()
    fw.retry_after = "30"
    fw.inject(GET_INDEX, "429")
    async with fw.serve() as base:
        f = fetcher(backoff_max=0.3)  # caps Retry-After
        with pytest.raises(RetryableError, match="429"):
            await f.get(base + GET_INDEX)
        bucket = f.buckets[base.removeprefix("http://")]
        assert 0 < bucket.hold_until - time.monotonic() <= 0.3
        r = await f.get(base + GET_INDEX)  # another request to the host waits it out
        sent_after = time.monotonic()
        await f.close()
    assert r.status == 200 and sent_after >= bucket.hold_until


async def test_dead_host_with_many_accounts_is_reported_within_seconds(
    tmp_path: Path, dead_url: str
) -> None:
    """The outage as measured: every account of one host polled at once, host down.

    Without the breaker each poll needs all 5 attempts, and each retry queues behind
    every other poll's first attempt at the host's rate: 100 accounts at 5 requests/s
    put a poll's second attempt ~20 s after its first, so no poll fails for over a
    minute. With it the failing health record has to come within 10 s.
    """
    sink = MemorySink()
    settings = make_settings(
        tmp_path, dead_url, host_rate=5.0, host_burst=1, retry_attempts=5,
        backoff_initial=0.2, backoff_max=1.0, failure_threshold=3, circuit_threshold=5,
        circuit_cooldown=60.0)
    store = CursorStore(tmp_path / "state.sqlite")
    col = WeiboMobileCollector(settings, sink, store)
    tasks = [asyncio.create_task(col.poll_account(str(9_000_000_000 + i)))
             for i in range(100)]
    try:
        await until(lambda: bool(sink.health_records), timeout=10.0)
        first = sink.health_records[0]
        assert first.status == "failing" and first.consecutive_failures == 3
        assert "circuit open" in (first.last_error or "")
        assert "ConnectError" in (first.last_error or "")  # the real cause is kept
        done, _ = await asyncio.wait(tasks, timeout=10.0)
        assert len(done) == 100 and all(t.result().error for t in done)
        assert col.health.consecutive == 100 and col.health.state == "failing"
        assert col.fetcher.requests < 10  # the threshold's requests, not 5 per account
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await col.close()
        store.close()


async def test_collector_recovers_through_the_trial(tmp_path: Path) -> None:
    """Health goes failing while the circuit is open and back to ok after the trial."""
    fw = FakeWeibo()
    fw.add_user(9000000001, "某某市发布")
    fw.add_post(9000000001)
    fw.inject(GET_INDEX, *["502"] * 3)
    async with fw.serve() as base:
        sink = MemorySink()
        settings = make_settings(tmp_path, base, retry_attempts=5, failure_threshold=2,
                                 circuit_threshold=3, circuit_cooldown=0.2)
        store = CursorStore(tmp_path / "state.sqlite")
        col = WeiboMobileCollector(settings, sink, store)
        r1 = await col.poll_account("9000000001")  # 3 attempts, then the circuit opens
        r2 = await col.poll_account("9000000001")  # fails fast
        assert r1.error and "CircuitOpen" in r1.error and r2.error
        assert fw.hits[GET_INDEX] == 3
        await asyncio.sleep(0.3)
        r3 = await col.poll_account("9000000001")  # the trial succeeds
        await col.close()
        store.close()
    assert r3.error is None and r3.published == 1
    assert [h.status for h in sink.health_records] == ["failing", "ok"]
    assert "circuit open" in (sink.health_records[0].last_error or "")
