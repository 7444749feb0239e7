"""Write-behind tables: reads see writes at once, the changelog gets each key's latest
value at the next flush, and only for partitions still assigned."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
from prometheus_client import REGISTRY

from matrixwatch.streams.packs import partition_of
from matrixwatch.streams.writebehind import (
    FENCE_CHECK_EVERY,
    ChangeGate,
    Liveness,
    WriteBehind,
    before_offset_commit,
    fenced,
    flush_all,
    patch_faust_commit,
    with_hooks,
)

TOPIC = "app-owner_state-changelog"


@dataclass
class _Topic:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class _Table:
    name: str = "owner_state"
    data: dict[str, Any] = field(default_factory=dict)
    changelog_topic: _Topic = field(default_factory=lambda: _Topic(TOPIC))


@dataclass(frozen=True)
class _TP:
    topic: str
    partition: int


class _App:
    """What flush() uses: the assignment and a producer that records sends."""

    def __init__(self, assigned: set[int]) -> None:
        self.assigned = assigned
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        outer = self

        class Assignor:
            def assigned_actives(self) -> set[_TP]:
                return {_TP(TOPIC, p) for p in outer.assigned} | {_TP("other", 0)}

        class Producer:
            async def send(self, topic: str, key: bytes, value: bytes | None,
                           partition: int, timestamp: Any, headers: Any) -> Any:
                outer.sent.append((topic, key, value, partition))
                fut = asyncio.get_running_loop().create_future()
                fut.set_result(None)
                return fut

        self.assignor = Assignor()
        self.producer = Producer()


async def _batch_holding(gate: ChangeGate) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A batch inside ``gate.changing()`` until the returned event is set."""
    release = asyncio.Event()

    async def batch() -> None:
        async with gate.changing():
            await release.wait()

    task = asyncio.create_task(batch())
    await asyncio.sleep(0)
    return task, release


def test_reads_see_writes_at_once_and_deletes_remove() -> None:
    table = _Table()
    wb = WriteBehind(table, 4)
    wb.set("weibo:1", {"n": 1})
    assert table.data["weibo:1"] == {"n": 1} and wb.get("weibo:1") == {"n": 1}
    wb.set("weibo:1", None)
    assert "weibo:1" not in table.data
    assert wb.dirty == {"weibo:1"}


def test_records_carry_the_latest_value_once_and_tombstones() -> None:
    wb = WriteBehind(_Table(), 4)
    for n in range(5):
        wb.set("weibo:1", {"n": n})
    wb.set("weibo:2", {"n": 9})
    wb.set("weibo:2", None)
    recs = wb.records()
    assert recs == [
        (partition_of("weibo:1", 4), b'"weibo:1"', orjson.dumps({"n": 4})),
        (partition_of("weibo:2", 4), b'"weibo:2"', None),
    ]
    assert wb.records() == []  # taken


def test_keys_of_revoked_partitions_are_dropped() -> None:
    wb = WriteBehind(_Table(), 4)
    keys = [f"weibo:{i}" for i in range(30)]
    for k in keys:
        wb.set(k, {"k": k})
    recs = wb.records(assigned={0, 2})
    assert {p for p, _, _ in recs} <= {0, 2}
    assert sorted(orjson.loads(k) for _, k, _ in recs) == sorted(
        k for k in keys if partition_of(k, 4) in {0, 2})


async def test_flush_produces_to_the_changelog_and_waits() -> None:
    app = _App(assigned={0, 1, 2, 3})
    wb = WriteBehind(_Table(), 4)
    wb.set("weibo:7", {"n": 1})
    await wb.flush(app)
    assert app.sent == [(TOPIC, b'"weibo:7"', b'{"n":1}', partition_of("weibo:7", 4))]
    await wb.flush(app)  # nothing dirty: nothing sent
    assert len(app.sent) == 1


async def test_commit_hooks_run_before_faust_commits_offsets() -> None:
    order: list[str] = []
    app = _App(assigned={0, 1, 2, 3})
    wb = WriteBehind(_Table(), 4)
    wb.set("weibo:1", {"n": 1})

    async def record(_offsets: Any) -> None:
        order.append(f"flushed {len(app.sent)}")

    before_offset_commit(app, flush_all(app, [wb]))
    before_offset_commit(app, record)

    async def faust_commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        order.append(f"offsets committed: {offsets}")
        return True

    consumer = type("FakeConsumer", (), {"app": app})()
    assert await with_hooks(faust_commit)(consumer, {"tp": 5}) is True
    assert order == ["flushed 1", "offsets committed: {'tp': 5}"]


def test_the_patch_wraps_faust_once() -> None:
    from faust.transport.consumer import Consumer

    patch_faust_commit()
    wrapped = Consumer._commit_offsets
    patch_faust_commit()
    assert Consumer._commit_offsets is wrapped
    assert wrapped.__code__.co_filename.endswith("writebehind.py")


def test_update_sets_every_key() -> None:
    wb = WriteBehind(_Table(), 4)
    wb.update({"weibo:1": {"n": 1}, "weibo:2": None})
    assert dict(wb.items()) == {"weibo:1": {"n": 1}} and wb.dirty == {"weibo:1", "weibo:2"}


async def test_a_flush_of_some_keys_leaves_the_others_dirty() -> None:
    app = _App(assigned={0, 1, 2, 3})
    wb = WriteBehind(_Table(), 4)
    wb.update({"weibo:1": {"n": 1}, "weibo:2": {"n": 2}, "weibo:3": None})
    await wb.flush(app, only={"weibo:2", "weibo:9"})  # weibo:9: not dirty, not sent
    assert [k for _, k, _, _ in app.sent] == [b'"weibo:2"']
    assert wb.dirty == {"weibo:1", "weibo:3"}
    await wb.flush(app)
    assert [k for _, k, _, _ in app.sent] == [b'"weibo:2"', b'"weibo:1"', b'"weibo:3"']


def test_a_memory_store_is_read_and_written_through_its_dict() -> None:
    """Faust's memory store keeps its contents in ``.data``: the write-behind goes to it
    directly (no sensors), and the table's own reads see the same values."""
    from faust.stores.memory import Store

    store = Store.__new__(Store)  # no app needed: only its dicts are used
    store.data, store._key_partition = {}, {}
    wb = WriteBehind(_Table(data=store), 4)  # type: ignore[arg-type]
    wb.set("weibo:1", {"n": 1})
    assert store.data == {"weibo:1": {"n": 1}} and store["weibo:1"] == {"n": 1}
    assert wb.get("weibo:1") == {"n": 1} and wb.get("weibo:2") is None
    wb.set("weibo:1", None)
    assert store.data == {} and wb.get("weibo:1") is None


async def test_keys_of_partitions_moved_away_are_dropped_after_a_rebalance() -> None:
    """Faust's memory store forgets keys of partitions no longer active once recovery
    completes, but only keys it knows the partition of: the write-behind tells it."""
    from faust.stores.memory import Store
    from faust.types import TP

    store = Store.__new__(Store)
    store.data, store._key_partition = {}, {}
    wb = WriteBehind(_Table(data=store), 4)  # type: ignore[arg-type]
    keys = [f"weibo:{i}" for i in range(40)]
    for k in keys:
        wb.set(k, {"k": k})
    wb.set(keys[0], None)
    kept = {0, 2}
    await store.on_recovery_completed({TP(TOPIC, p) for p in kept}, set())
    assert set(store.data) == {k for k in keys[1:] if partition_of(k, 4) in kept}
    assert set(store._key_partition) == set(store.data)


async def test_a_flush_waits_for_a_batch_changing_state_in_place() -> None:
    """The engines fold events into their state dicts in place and set them after the
    batch's alerts are out. A commit that comes mid-batch must not write the half-folded
    state (a "fired" mark whose alert was never sent); it writes the state after."""
    app = _App(assigned={0, 1, 2, 3})
    wb = WriteBehind(_Table(), 4)
    state = {"n": 1, "fired": []}
    wb.set("weibo:1", state)
    outputs_sent = asyncio.Event()

    async def batch() -> None:
        async with wb.gate.changing():
            state["n"], state["fired"] = 2, ["a1"]  # folded in place
            await outputs_sent.wait()  # the alert a1 is on its way to the broker
            wb.set("weibo:1", state)

    task = asyncio.create_task(batch())
    await asyncio.sleep(0)
    flush = asyncio.create_task(wb.flush(app))
    for _ in range(5):
        await asyncio.sleep(0)
    assert app.sent == [] and not flush.done()  # waits: the batch is half-done
    outputs_sent.set()
    await asyncio.wait_for(asyncio.gather(task, flush), 1)
    assert app.sent == [(TOPIC, b'"weibo:1"', b'{"n":2,"fired":["a1"]}',
                         partition_of("weibo:1", 4))]


async def test_a_batch_starting_during_a_flush_waits_until_it_has_encoded() -> None:
    gate = ChangeGate()
    wb = WriteBehind(_Table(), 4, gate)
    wb.set("weibo:1", {"n": 1})
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with gate.changing():
            order.append("first in")
            await release.wait()

    async def flush() -> None:
        async with gate.quiet():
            order.append("flush encodes")
            await asyncio.sleep(0)  # a batch trying to start now must not get in
            order.append("flush done")

    async def second() -> None:
        async with gate.changing():
            order.append("second in")

    t1 = asyncio.create_task(first())
    await asyncio.sleep(0)
    tf = asyncio.create_task(flush())
    await asyncio.sleep(0)
    t2 = asyncio.create_task(second())  # arrives while the flush waits for quiet
    for _ in range(3):
        await asyncio.sleep(0)
    assert order == ["first in"] and gate.active == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(t1, tf, t2), 1)
    assert order == ["first in", "flush encodes", "flush done", "second in"]
    assert gate.active == 0


async def test_a_batch_that_raises_leaves_the_gate_open() -> None:
    gate = ChangeGate()
    try:
        async with gate.changing():
            raise RuntimeError("poison")
    except RuntimeError:
        pass
    async with asyncio.timeout(1), gate.quiet():
        assert gate.active == 0


def test_a_record_is_the_value_at_the_flush() -> None:
    wb = WriteBehind(_Table(), 4)
    state = {"n": 1}
    wb.set("weibo:1", state)
    state["n"] = 2  # a later batch, finished, that changed it in place (and set it)
    assert wb.records() == [(partition_of("weibo:1", 4), b'"weibo:1"', b'{"n":2}')]


async def test_a_flush_reads_the_assignment_after_waiting_for_quiet() -> None:
    """A rebalance can take partitions away while the flush waits for a batch; their
    keys must then be dropped, not written over the new owner's state."""
    app = _App(assigned={0, 1, 2, 3})
    wb = WriteBehind(_Table(), 4)
    keys = [f"weibo:{i}" for i in range(20)]
    for k in keys:
        wb.set(k, {"k": k})
    task, release = await _batch_holding(wb.gate)
    flush = asyncio.create_task(wb.flush(app))
    await asyncio.sleep(0)
    app.assigned = {1}  # the rebalance, while the flush waits
    release.set()
    await asyncio.wait_for(asyncio.gather(task, flush), 1)
    assert {p for _, _, _, p in app.sent} == {1}
    assert len(app.sent) == sum(partition_of(k, 4) == 1 for k in keys)


class _Fenceable(_App):
    """An app whose aiokafka coordinator generation the test moves, as a heartbeat that
    learns of an eviction does (reset to -1)."""

    def __init__(self, assigned: set[int], generation: int) -> None:
        super().__init__(assigned)
        self.consumer_generation_id = generation  # what Faust noted at the assignment
        self.coordinator = SimpleNamespace(generation=generation)
        thread = SimpleNamespace(_ensure_consumer=lambda: SimpleNamespace(
            _coordinator=self.coordinator))
        self.consumer = SimpleNamespace(_thread=thread)


def test_fenced_when_the_coordinator_left_the_assigned_generation() -> None:
    app = _Fenceable({0}, generation=3)
    assert not fenced(app)
    app.coordinator.generation = -1  # evicted
    assert fenced(app)
    app.coordinator.generation = 4  # rejoined, not assigned yet
    assert fenced(app)
    app.consumer_generation_id = 4  # assigned
    assert not fenced(app)
    assert not fenced(_App({0}))  # no aiokafka consumer to ask


async def test_an_evicted_worker_neither_flushes_nor_commits_and_keeps_its_keys() -> None:
    """Evicted while a batch waited (store outage past the rebalance timeout): its
    records would land on partitions another worker owns now. Nothing is sent and the
    commit is cancelled; after the rejoin the keys still assigned go out."""
    app = _Fenceable({0, 1, 2, 3}, generation=3)
    wb = WriteBehind(_Table(), 4)
    keys = [f"weibo:{i}" for i in range(12)]
    for k in keys:
        wb.set(k, {"k": k})
    committed: list[Any] = []

    async def faust_commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        committed.append(offsets)
        return True

    before_offset_commit(app, flush_all(app, [wb]))
    commit = with_hooks(faust_commit)
    consumer = SimpleNamespace(app=app)
    task, release = await _batch_holding(wb.gate)
    pending = asyncio.create_task(commit(consumer, {"tp": 9}))
    await asyncio.sleep(0)
    app.coordinator.generation = -1  # the heartbeat learns of the eviction
    release.set()
    skipped = REGISTRY.get_sample_value(
        "matrixwatch_changelog_flushes_skipped_total",
        {"table": "owner_state", "reason": "evicted"}) or 0.0
    assert await asyncio.wait_for(pending, 1) is False
    await task
    assert app.sent == [] and committed == []
    assert REGISTRY.get_sample_value(
        "matrixwatch_changelog_flushes_skipped_total",
        {"table": "owner_state", "reason": "evicted"}) == skipped + 1
    assert wb.dirty == set(keys)
    app.coordinator.generation = app.consumer_generation_id = 5  # rejoined with {2}
    app.assigned = {2}
    assert await commit(consumer, {"tp": 12}) is True
    assert committed == [{"tp": 12}]
    assert sorted(orjson.loads(k) for _, k, _, _ in app.sent) == sorted(
        k for k in keys if partition_of(k, 4) == 2)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_liveness_suspects_a_stall_until_the_heartbeat_had_time_to_answer() -> None:
    clock = _Clock()
    live = Liveness(limit=6.0, grace=3.0, clock=clock)
    assert not live.suspect()  # no beat yet: start-up is not a stall
    live.beat()
    clock.now += 1.0
    live.beat()
    assert not live.suspect()
    clock.now += 12.0  # frozen; the commit timer runs before the beat
    assert live.suspect()
    live.beat()  # or the beat runs first: the gap is still seen
    assert live.suspect()
    clock.now += 2.0
    live.beat()
    assert live.suspect()
    clock.now += 1.5  # 3.5 s after the resume: heartbeats have answered by now
    live.beat()
    assert not live.suspect()


async def test_a_worker_just_resumed_from_a_stall_neither_flushes_nor_commits() -> None:
    """Frozen past its session timeout, it may be evicted before any heartbeat says so
    (fenced() still sees the old generation): nothing is written until the grace ends."""
    clock = _Clock()
    live = Liveness(limit=6.0, grace=3.0, clock=clock)
    app = _Fenceable({0, 1, 2, 3}, generation=3)
    wb = WriteBehind(_Table(), 4, liveness=live)
    live.beat()
    wb.set("weibo:1", {"n": 1})
    clock.now += 20.0
    assert await wb.flush(app) is False
    assert app.sent == [] and wb.dirty == {"weibo:1"}
    live.beat()
    clock.now += 3.5
    live.beat()
    assert await wb.flush(app) is True
    assert [k for _, k, _, _ in app.sent] == [b'"weibo:1"']


class _FreezingApp(_Fenceable):
    """Its producer runs ``on_send(n)`` after the n-th send (1-based): a freeze or an
    eviction that lands while a flush's records go out."""

    def __init__(self, on_send: Any) -> None:
        super().__init__({0, 1, 2, 3}, generation=3)
        send = self.producer.send

        async def frozen_send(*args: Any) -> Any:
            fut = await send(*args)
            on_send(len(self.sent))
            return fut

        self.producer = SimpleNamespace(send=frozen_send)


def _skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("matrixwatch_changelog_flushes_skipped_total",
                                     {"table": "owner_state", "reason": reason}) or 0.0


async def test_a_freeze_during_the_sends_stops_them_and_keeps_the_rest_dirty() -> None:
    clock = _Clock()
    live = Liveness(limit=6.0, grace=3.0, clock=clock)

    def freeze(n: int) -> None:
        if n == 3:
            clock.now += 20.0

    app = _FreezingApp(freeze)
    wb = WriteBehind(_Table(), 4, liveness=live)
    live.beat()
    keys = [f"weibo:{i}" for i in range(10)]
    for k in keys:
        wb.set(k, {"k": k})
    before = _skipped("stalled")
    assert await wb.flush(app) is False
    sent = {orjson.loads(k) for _, k, _, _ in app.sent}
    assert len(sent) == 3
    assert wb.dirty == set(keys) - sent
    assert _skipped("stalled") == before + 1
    clock.now += 1.0
    live.beat()
    clock.now += 3.5
    live.beat()
    assert await wb.flush(app) is True  # after the grace the rest go out
    assert {orjson.loads(k) for _, k, _, _ in app.sent} == set(keys)
    assert wb.dirty == set()


async def test_an_eviction_during_the_sends_stops_them() -> None:
    """The heartbeat runs in the consumer's thread: the generation can move mid-flush."""
    def evict(n: int) -> None:
        if n == 10:
            app.coordinator.generation = -1

    app = _FreezingApp(evict)
    wb = WriteBehind(_Table(), 4)
    keys = [f"weibo:{i}" for i in range(3 * FENCE_CHECK_EVERY)]
    for k in keys:
        wb.set(k, {"k": k})
    before = _skipped("evicted")
    assert await wb.flush(app) is False
    assert len(app.sent) == FENCE_CHECK_EVERY - 1  # noticed at the next check
    assert len(wb.dirty) == len(keys) - len(app.sent)
    assert _skipped("evicted") == before + 1
