"""Write-behind for Faust tables: changelog records go out at the next offset commit.

A table write normally sends one changelog record at once, through Faust's per-message
send path (future message, serializers, sensors, producer buffer). The owner-state table
is written for most events (0.84 records per input event on the 10k-account load run), and
that path was about a fifth of the worker's CPU. Most of those records are superseded
within the same second by the next write of the same key.

Here a write updates the table's in-memory store at once (reads see it immediately) and
marks the key dirty. Before Faust commits offsets, every dirty key's latest value is
produced to the changelog in one pass, straight to the producer, and Faust's commit then
waits for those records before it commits the offsets.

A value's record is encoded at the flush, from the live value. The engines fold a batch's
events into their state dicts in place and set them back only after the batch's outputs
are out, and a commit can run while a batch awaits those outputs: encoded then, a record
would hold part of an unfinished batch (a "fired" mark before its alert was sent), which a
crash would keep. So a batch changes state inside ``ChangeGate.changing`` and a flush
encodes inside ``ChangeGate.quiet``, which waits for the batches in progress and holds new
ones back until it has encoded. Encoding each state as it was set instead (the previous
design) encoded 0.93 states per input event on the load run against 0.41 at the flush,
and 8.4 % of the worker's main-thread samples went to it.

The invariant that makes a restart exact is "no committed offset is ahead of the state in
the changelog". Flushing more often than that (a timer, a sweep) is always safe: state
ahead of offsets only means the events after the committed offset are applied again,
which the rule engine and the linkage tracker absorb (distinct ids, earliest repost).

A flush is also skipped, with the offset commit it precedes, when this worker is no
longer a member of the generation its partitions were assigned in (:func:`fenced`). A
worker frozen past its session timeout (a stall, SIGSTOP in tests/faults/test_zombie.py),
or on Kafka one whose batch waits out a store outage past the rebalance timeout, is
evicted; flushed when it resumes, its stale records would land on changelog partitions
another worker now owns, and a later recovery there would read them. The
dirty keys stay dirty: after the rejoin they go out for the partitions still assigned.
A resumed worker learns of its eviction from its next heartbeat; a commit that ran
before that answer would still write, so a flush is also skipped while :class:`Liveness`
says the event loop was just stalled past the session timeout. A stall or an eviction
can also come in the middle of a flush's sends: the send loop checks both as it goes and
stops, the unsent keys dirty again. What remains is the records already handed to the
producer, which still go out; closing that window needs transactional fencing, which
Faust's exactly_once does not provide reliably (faust-streaming #517).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from contextlib import asynccontextmanager
from typing import Any

import orjson
from faust.stores.memory import Store as MemoryStore

from matrixwatch import metrics
from matrixwatch.streams.packs import partition_of

log = logging.getLogger(__name__)

# A flush asks fenced() again after this many records (the heartbeat runs in the
# consumer's thread, so an eviction can arrive while the records go out).
FENCE_CHECK_EVERY = 64

# Awaited before an offset commit; returning False cancels that commit.
BeforeCommit = Callable[[Mapping[Any, int]], Awaitable[bool | None]]


def fenced(app: Any) -> bool:
    """Whether the group coordinator has moved on from this worker's assignment.

    aiokafka resets the coordinator's generation to -1 when a heartbeat learns the
    member was evicted (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION), and Faust records the
    generation of each assignment in ``app.consumer_generation_id``. They differ from
    the eviction until the next assignment. False when there is no aiokafka consumer to
    ask (not started, another driver, tests).
    """
    try:
        generation = app.consumer._thread._ensure_consumer()._coordinator.generation
    except Exception:
        return False
    return bool(generation != app.consumer_generation_id)


class Liveness:
    """Whether the worker's event loop was just stalled long enough to be evicted.

    ``beat`` runs on a short timer. A gap between beats longer than ``limit`` (the
    session timeout) means the process was frozen; the group may have moved on before
    any heartbeat could say so. ``suspect`` is true during such a gap (a flush that runs
    before the first beat after it) and for ``grace`` seconds after it, time for the
    heartbeat's answer to reach :func:`fenced`.
    """

    def __init__(self, limit: float, grace: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.grace, self.clock = limit, grace, clock
        self.last: float | None = None  # no beat yet (start-up is not a stall)
        self.resumed = -math.inf

    def beat(self) -> None:
        now = self.clock()
        if self.last is not None and now - self.last > self.limit:
            self.resumed = now
            log.warning("the event loop stalled for %.1f s (session timeout %.1f s): "
                        "no changelog flush for %.1f s", now - self.last, self.limit,
                        self.grace)
        self.last = now

    def suspect(self) -> bool:
        now = self.clock()
        return ((self.last is not None and now - self.last > self.limit)
                or now - self.resumed < self.grace)


class ChangeGate:
    """Keeps flushes out of the batches that change table values in place.

    Never enter :meth:`changing` from inside :meth:`changing` (a flush waiting in between
    would wait forever), and never wait for a commit inside it.
    """

    def __init__(self) -> None:
        self._active = 0
        self._idle = asyncio.Event()  # no batch is changing state
        self._idle.set()
        self._open = asyncio.Event()  # no flush is waiting for quiet
        self._open.set()
        self._flushes = asyncio.Lock()

    @property
    def active(self) -> int:
        """Batches changing state now."""
        return self._active

    @asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """A batch's fold, outputs and ``set``: waits while a flush is encoding."""
        while not self._open.is_set():
            await self._open.wait()
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    @asynccontextmanager
    async def quiet(self) -> AsyncIterator[None]:
        """No batch is changing state until this exits; waits for those in progress."""
        async with self._flushes:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()


class WriteBehind:
    """One table's dirty keys and their flush. Reads go to the table as usual."""

    def __init__(self, table: Any, partitions: int, gate: ChangeGate | None = None,
                 liveness: Liveness | None = None) -> None:
        self.table = table
        self.partitions = partitions
        self.gate = gate if gate is not None else ChangeGate()
        self.liveness = liveness
        self.dirty: set[str] = set()  # keys whose record waits for the next flush
        self._lock = asyncio.Lock()
        self._written = metrics.child(metrics.CHANGELOG_RECORDS, table=table.name)
        self._bytes = metrics.child(metrics.CHANGELOG_BYTES, table=table.name)

    def _maps(self) -> tuple[MutableMapping[Any, Any], MutableMapping[Any, int] | None]:
        """The table's contents without Faust's per-access sensors and changelog (the
        memory store's own dict, else the store), and the memory store's key → partition
        map (None for another store)."""
        store = self.table.data
        if isinstance(store, MemoryStore):
            return store.data, store._key_partition
        return store, None

    @property
    def data(self) -> MutableMapping[Any, Any]:
        """The table's contents, read around Faust's sensors (table reads through Faust
        were ~2 % of the worker's CPU on the load run)."""
        return self._maps()[0]

    def get(self, key: str) -> Any:
        """The key's current value (None if absent), as ``table.get`` would read it."""
        return self.data.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        """(key, value) for every key (a snapshot of the keys: safe to set while
        iterating)."""
        return iter(list(self.data.items()))

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (None deletes) now; its changelog record waits for a flush.

        A memory store is also told the key's partition, as its own changelog recovery
        does: after a rebalance it then drops the keys of partitions this worker no
        longer owns (``Store.on_recovery_completed``). Written around it, they stayed in
        memory, and the periodic sweep kept evaluating owners another worker now has.
        """
        data, partitions = self._maps()
        if value is None:
            data.pop(key, None)
            if partitions is not None:
                partitions.pop(key, None)
        else:
            data[key] = value
            if partitions is not None and key not in partitions:
                partitions[key] = partition_of(key, self.partitions)
        self.dirty.add(key)

    def update(self, states: Mapping[str, Any]) -> None:
        """:meth:`set` for every (key, value) of ``states``."""
        for key, value in states.items():
            self.set(key, value)

    def records(self, assigned: set[int] | None = None, only: Iterable[str] | None = None
                ) -> list[tuple[int, bytes, bytes | None]]:
        """Take the dirty keys (those of ``only``, if given): (partition, key, value
        encoded now, or None for a delete) each. Keys of partitions not in ``assigned``
        (revoked in a rebalance: their offsets are no longer ours to commit) are dropped.
        Call it inside ``gate.quiet()``, as :meth:`flush` does."""
        if only is None:
            keys, self.dirty = self.dirty, set()
        else:
            keys = self.dirty.intersection(only)
            self.dirty -= keys
        data = self.data
        out = []
        for key in sorted(keys):
            partition = partition_of(key, self.partitions)
            if assigned is not None and partition not in assigned:
                continue
            value = data.get(key)
            out.append((partition, orjson.dumps(key),
                        None if value is None else orjson.dumps(value)))
        return out

    async def flush(self, app: Any, only: Iterable[str] | None = None) -> bool:
        """Produce every dirty key's record (or those of ``only``) and wait until the
        broker has them all. False, with nothing sent and the keys left dirty, if the
        worker is :func:`fenced` or its loop was just stalled (:class:`Liveness`); False
        too if that happens during the sends, which then stop, the unsent keys dirty.

        A timer that changed a few keys passes ``only``: under load the other dirty keys
        go out with the next commit anyway, and flushing them all from the timer too
        wrote every busy owner twice (1.7 % of the worker's CPU on the load run).
        """
        async with self._lock:  # a commit and a timer must not interleave their records
            topic = self.table.changelog_topic.get_topic_name()
            async with self.gate.quiet():  # encoded between batches, never mid-batch
                # Read after the wait: a rebalance may have moved partitions meanwhile,
                # or evicted this worker while a batch was stuck.
                stalled = self.liveness is not None and self.liveness.suspect()
                if stalled or fenced(app):
                    metrics.CHANGELOG_FLUSHES_SKIPPED.labels(
                        table=self.table.name, reason="stalled" if stalled else "evicted",
                    ).inc()
                    log.warning("%s: not flushing %d changed keys: %s; they go out after "
                                "the rejoin", self.table.name, len(self.dirty),
                                "the worker was just stalled past the session timeout"
                                if stalled else "this worker is no longer in the group "
                                "generation it was assigned in (evicted: stalled or "
                                "waiting past the group's timeouts)")
                    return False
                assigned = {tp.partition for tp in app.assignor.assigned_actives()
                            if tp.topic == topic}
                records = self.records(assigned, only)
            pending = []
            reason = None
            for i, (partition, key, value) in enumerate(records):
                # A freeze can also land in this loop (a commit under load sends
                # thousands of records): the records after it are not sent.
                if self.liveness is not None and self.liveness.suspect():
                    reason = "stalled"
                elif i % FENCE_CHECK_EVERY == FENCE_CHECK_EVERY - 1 and fenced(app):
                    reason = "evicted"
                if reason is not None:
                    break
                pending.append(await app.producer.send(topic, key, value, partition,
                                                       None, None))
            if pending:
                await asyncio.gather(*pending)
                self._written.inc(len(pending))
                self._bytes.inc(sum(len(k) + len(v or b"") for _, k, v in records[:len(pending)]))
            if reason is not None:
                unsent = records[len(pending):]
                self.dirty.update(orjson.loads(k) for _, k, _ in unsent)
                metrics.CHANGELOG_FLUSHES_SKIPPED.labels(table=self.table.name,
                                                         reason=reason).inc()
                log.warning("%s: flush stopped after %d of %d records (%s); the other %d "
                            "keys go out after the rejoin", self.table.name, len(pending),
                            len(records), reason, len(unsent))
                return False
            return True


def before_offset_commit(app: Any, hook: BeforeCommit) -> None:
    """Run ``hook`` (awaited) each time ``app``'s consumer is about to commit offsets."""
    patch_faust_commit()
    hooks: list[BeforeCommit] = app.__dict__.setdefault("_mw_before_commit", [])
    hooks.append(hook)


def flush_all(app: Any, tables: Iterable[WriteBehind]) -> BeforeCommit:
    """A hook that flushes ``tables`` before a commit (False, and no commit, if a flush
    was skipped)."""
    tables = list(tables)

    async def hook(_offsets: Mapping[Any, int]) -> bool:
        for wb in tables:
            if not await wb.flush(app):
                return False
        return True

    return hook


def with_hooks(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[bool]]:
    """``Consumer._commit_offsets`` that first awaits the app's before-commit hooks; a
    hook returning False cancels the commit (the offsets are committed next time)."""

    async def _commit_offsets(self: Any, offsets: Mapping[Any, int],
                              start_new_transaction: bool = True) -> bool:
        for hook in self.app.__dict__.get("_mw_before_commit", ()):
            if await hook(offsets) is False:
                log.warning("offset commit skipped: its changelog flush was not made")
                return False
        return bool(await original(self, offsets, start_new_transaction))

    return _commit_offsets


def patch_faust_commit() -> None:
    """Call the app's before-commit hooks in Faust's ``Consumer._commit_offsets``.

    That is the one place every offset commit goes through (the commit timer, a
    rebalance, shutdown), after the offsets to commit are chosen and before Faust
    flushes its producer and commits them (idempotent).
    """
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_mw_commit_patched", False):
        return
    Consumer._commit_offsets = with_hooks(Consumer._commit_offsets)  # type: ignore[method-assign]
    Consumer._mw_commit_patched = True  # type: ignore[attr-defined]
