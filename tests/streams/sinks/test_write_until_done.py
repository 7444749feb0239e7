"""Store writes are retried until they succeed, and the usual path builds no cycles."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from matrixwatch.streams.sinks import base
from matrixwatch.streams.sinks.base import write_until_done


class _Batch(list[Any]):
    """A list that can be weakly referenced: the batch a write holds on to."""


async def test_a_write_that_fails_is_retried_until_it_succeeds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "RETRY_INITIAL", 0.001)
    calls: list[int] = []
    failures: list[tuple[str, int]] = []

    async def write() -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise OSError(f"disk busy {len(calls)}")

    await write_until_done(write, lambda e, n: failures.append((str(e), n)), max_wait=0.001)
    assert len(calls) == 4
    assert failures == [("disk busy 1", 1), ("disk busy 2", 2), ("disk busy 3", 3)]


async def test_a_write_that_succeeds_leaves_its_batch_to_reference_counting() -> None:
    """The failure callback names the batch (its size goes to the log), as the agents'
    does; built into tenacity's cyclic objects, it held the batch until a collection."""
    written: list[int] = []

    async def write(items: list[Any]) -> None:
        written.append(len(items))

    async def one_batch() -> weakref.ref[_Batch]:
        batch = _Batch(range(1000))

        def failed(exc: BaseException | None, attempt: int) -> None:
            print(f"write of {len(batch)} failed ({exc!r}); retry {attempt}")

        await write_until_done(lambda: write(batch), failed, max_wait=1)
        return weakref.ref(batch)

    gc.disable()
    try:
        ref = await one_batch()
        assert written == [1000] and ref() is None
    finally:
        gc.enable()
