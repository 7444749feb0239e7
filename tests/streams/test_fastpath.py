"""The inline first step of Faust's delivery loop: same results, fewer tasks."""

from __future__ import annotations

import asyncio

import pytest

from matrixwatch.streams.fastpath import Resumed, patch_faust_drain, step_inline


async def test_a_coroutine_that_never_blocks_finishes_inline_without_a_task() -> None:
    async def deliver() -> str:
        return "delivered"

    before = len(asyncio.all_tasks())
    done, value = step_inline(deliver())
    assert (done, value) == (True, "delivered")
    assert len(asyncio.all_tasks()) == before


async def test_a_blocked_coroutine_resumes_with_the_value_it_waited_for() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[int] = []

    async def deliver() -> str:
        seen.append(await gate)
        await asyncio.sleep(0)  # a bare yield after the first block
        seen.append(await asyncio.sleep(0, result=7))
        return "late"

    done, rest = step_inline(deliver())
    assert not done and isinstance(rest, Resumed)
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result(3)
    assert await task == "late"
    assert seen == [3, 7]


async def test_cancellation_reaches_the_blocked_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def deliver() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    _, rest = step_inline(deliver())
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]


async def test_errors_propagate_on_the_inline_step_and_after_a_block() -> None:
    async def fails_at_once() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        step_inline(fails_at_once())

    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def fails_later() -> None:
        await gate
        raise KeyError("late")

    _, rest = step_inline(fails_later())
    task = asyncio.ensure_future(rest)
    gate.set_result(None)
    with pytest.raises(KeyError):
        await task


class _Consumer:
    """Just what the patched wait_first reads: the flow-suspension event."""

    def __init__(self) -> None:
        self.suspend_flow = asyncio.Event()


async def test_patched_wait_first_delivers_inline_or_races_the_suspension() -> None:
    from faust.transport.consumer import Consumer

    patch_faust_drain()
    patch_faust_drain()  # idempotent
    wait_first = Consumer.wait_first
    consumer = _Consumer()
    delivered: list[int] = []

    async def deliver(n: int) -> None:
        delivered.append(n)

    res = await wait_first(consumer, deliver(1), consumer.suspend_flow.wait())
    assert delivered == [1] and not res.stopped

    # A delivery blocked on a full buffer is abandoned when the flow is suspended,
    # as with Faust's own wait_first.
    full: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def blocked() -> None:
        await full
        delivered.append(2)

    async def suspend() -> None:
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()

    with_stop = _with_service_events(consumer)
    suspender = asyncio.ensure_future(suspend())
    res = await wait_first(with_stop, blocked(), consumer.suspend_flow.wait())
    await suspender
    assert delivered == [1]
    assert res.done  # the suspension won the race


def _with_service_events(consumer: _Consumer) -> _Consumer:
    """mode's wait_first also watches the service's stopped/crashed events."""
    consumer._stopped = asyncio.Event()  # type: ignore[attr-defined]
    consumer._crashed = asyncio.Event()  # type: ignore[attr-defined]
    consumer.loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
    return consumer
