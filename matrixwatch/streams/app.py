"""The Faust app: topics, tables and thin agents over the pure analysis modules.

Topology (every topic has ``settings.partitions`` partitions)::

    mw-raw (key "platform:owner") ──ingest──► store.events, rule state, mw-alerts
       │   (a line keyed otherwise is repartitioned: ──► mw-events ──analyze──► same)
       ├──► mw-linkage (key platform:root | content:platform:superior) ──linkage──►
       │        store.linkage, mw-alerts
       ├──► mw-activity (key author) ──activity──► rule state (stale accounts)
       └──► mw-dlq ──dead_letters──► store.dead_letters
    mw-health ──health──► mw-alerts (key rule|account) ──alerts──► store.alerts, notifiers

Agents process in batches (``stream.take``): Faust acks a batch only after the body
returns, so a batch's offsets are committed after its store write. State that must
survive a restart (volume baselines, linkage tasks) lives in tables with changelogs.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.transport.producer import ProducerBuffer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from matrixwatch import metrics
from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import (
    DeliveryFailed,
    Dispatcher,
    FanOut,
    HeldIndex,
    Throttle,
    deliver,
)
from matrixwatch.alerts.engine import END_OF_INPUT_GUARD, RuleEngine
from matrixwatch.alerts.notifiers.base import close_shared_clients
from matrixwatch.alerts.rules import load_rules
from matrixwatch.broker import patch_faust_fetch_wait, patch_faust_highwaters
from matrixwatch.registry import Registry
from matrixwatch.settings import Settings
from matrixwatch.streams import packs
from matrixwatch.streams.fastpath import patch_faust_drain
from matrixwatch.streams.linkage import LinkagePolicy, LinkageTracker
from matrixwatch.streams.normalize import InvalidInput, normalize_line
from matrixwatch.streams.packs import Packer
from matrixwatch.streams.records import (
    Alert,
    CollectorHealth,
    DeadLetter,
    Event,
    epoch,
)
from matrixwatch.streams.sentiment import get_model
from matrixwatch.streams.sinks import make_store
from matrixwatch.streams.sinks.base import Store, write_until_done
from matrixwatch.streams.watermark import PartitionWatermark
from matrixwatch.streams.writebehind import (
    ChangeGate,
    Liveness,
    WriteBehind,
    before_offset_commit,
    flush_all,
)

log = logging.getLogger(__name__)

REPARTITIONED = 1_000_000  # watermark ids of mw-events partitions, apart from mw-raw's
WATERMARK_KIND = "watermark"  # punctuation on mw-linkage: advances event time (end of input)
END_OF_INPUT = "9999-12-31T23:59:59+00:00"
DLQ_PAYLOAD_BYTES = 4096
HEADER_AS_OF = "mw-as-of"  # ISO time relative Weibo times ("3分钟前") are resolved against
HEADER_MODE = "mw-mode"  # "replay" for archives, absent for live collection


def read_headers(raw: Any) -> dict[str, str]:
    """Kafka headers (list of (key, bytes) or a mapping) → str dict."""
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    out = {}
    for k, v in items:
        key = k.decode() if isinstance(k, bytes) else str(k)
        out[key] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return out


def now_iso() -> str:
    return datetime.now(tz=UTC).isoformat()


def watermark_event(partition: int, created_at: str = END_OF_INPUT) -> Event:
    """A punctuation record for one partition of mw-linkage (in a pack of its own) or
    of mw-events."""
    return Event(platform="control", id=f"wm-{partition}", kind=WATERMARK_KIND,
                 account_id="", owner_id="", text="", created_at=created_at,
                 collected_at=now_iso())


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    registry: Registry
    store: Store
    topics: dict[str, faust.TopicT]


def tune_gc() -> None:
    """Fewer, later collections for a long-running worker.

    The worker holds tens of thousands of small state dicts, and with CPython's default
    thresholds (700, 10, 10) the collector ran often enough to take 10-13 % of the
    worker's CPU on the 10k-account load run (gc callbacks, 1.0-1.3 s per 10 s). Objects
    alive at start-up (modules, the model, the registry) are moved out of its reach.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def topic_names(settings: Settings) -> list[str]:
    return [settings.topic(n)
            for n in ("raw", "events", "linkage", "activity", "alerts", "health", "dlq")]


def create_app(
    settings: Settings, registry: Registry | None = None, store: Store | None = None
) -> Pipeline:
    registry = registry if registry is not None else (
        Registry.load(settings.registry) if settings.registry else Registry()
    )
    store = store or make_store(settings)
    if hasattr(store, "attach_registry"):  # ES: names, units and regions on documents
        store.attach_registry(registry)
    broker = settings.kafka_url or "kafka://127.0.0.1:9092"
    patch_faust_highwaters()
    patch_faust_fetch_wait(settings.fetch_max_wait)
    patch_faust_drain()
    app = faust.App(
        settings.app_id,
        broker=broker,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        broker_commit_interval=settings.broker_commit_interval,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host="127.0.0.1",
        producer_max_request_size=4 * 1024 * 1024,
        # Batch produce requests: with no linger every message is its own request, and
        # the broker round trip, not CPU, caps throughput (~1.5k msg/s measured on Tansu).
        producer_linger=settings.producer_linger,
        producer_max_batch_size=256 * 1024,
        producer_compression_type=settings.compression_type,
        consumer_max_fetch_size=4 * 1024 * 1024,
        table_standby_replicas=0,
        datadir=str(settings.data_dir / "faust"),
    )
    # Faust's own sensors (messages in/out, commit latency, end and committed offsets per
    # partition, rebalances) in the same registry that /metrics serves.
    app.monitor = metrics.lean_faust_monitor()
    # Notifier HTTP sessions hold on to their event loop: closed when the app stops,
    # after the agents and timers (so no delivery in progress is cut off).
    app.async_exit_stack.push_async_callback(close_shared_clients)

    @app.timer(interval=settings.lag_interval)
    async def _consumer_lag() -> None:
        """matrixwatch_consumer_lag: end offset − position, per assigned partition."""
        consumer = app.consumer
        for tp in consumer.assignment():
            try:
                end = consumer.highwater(tp)
                pos = await consumer.position(tp)
            except Exception:  # not fetched yet, or mid-rebalance
                continue
            if end is not None and pos is not None:
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(end - pos, 0))

    t = settings.topic
    topics: dict[str, Any] = {
        "raw": app.topic(t("raw"), key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw"),
        "events": app.topic(t("events"), key_type=str, value_type=Event,
                            key_serializer="json"),
        # Internal hops carry packs: a batch's events for one partition in one message.
        "linkage": app.topic(t("linkage"), key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw"),
        "activity": app.topic(t("activity"), key_type=bytes, value_type=bytes,
                              key_serializer="raw", value_serializer="raw"),
        "alerts": app.topic(t("alerts"), key_type=str, value_type=Alert,
                            key_serializer="json"),
        "health": app.topic(t("health"), key_type=str, value_type=CollectorHealth),
        "dlq": app.topic(t("dlq"), key_type=str, value_type=DeadLetter),
    }
    # use_partitioner: batched agents update tables outside Faust's per-event context;
    # the key's partition is then computed from the same JSON key bytes and murmur2
    # partitioner as the source topic's, so table and topic stay co-partitioned.
    table_opts: dict[str, Any] = {"default": None, "partitions": settings.partitions,
                                  "use_partitioner": True, "key_type": str}
    owner_table = app.Table("owner_state", **table_opts)  # rule state per owner account
    task_table = app.Table("linkage_tasks", **table_opts)
    dispatch_table = app.Table("alert_dispatch", **table_opts)  # realert/escalation per key
    # The tables write their changelogs at offset commits (writebehind.py). Every batch
    # that changes their values (in place, then set after its outputs) runs inside
    # gate.changing(), so a flush never encodes a batch half-done.
    gate = ChangeGate()
    liveness = Liveness(settings.broker_session_timeout,
                        grace=3 * settings.broker_heartbeat_interval)
    owner_state = WriteBehind(owner_table, settings.partitions, gate, liveness)
    task_state = WriteBehind(task_table, settings.partitions, gate, liveness)
    dispatch_state = WriteBehind(dispatch_table, settings.partitions, gate, liveness)
    before_offset_commit(app, flush_all(app, [owner_state, task_state, dispatch_state]))

    @app.timer(interval=min(1.0, settings.broker_heartbeat_interval))
    async def _beat() -> None:
        """The event loop's pulse, for the flushes' stall check (writebehind.Liveness)."""
        liveness.beat()

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def _beat_on_assignment(*_: Any, **__: Any) -> None:
        liveness.beat()  # a stall right after an assignment counts, before the timer's

    model = get_model(settings.sentiment_model)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentiment")
    rules = load_rules(settings.rules_dir)
    if not rules:
        log.warning("no alert rules in %s: this worker will raise no alerts",
                    settings.rules_dir)
    engine = RuleEngine(rules, registry)
    channels = ChannelConfig.load()
    dispatcher = Dispatcher(rules, channels)
    held = HeldIndex()  # keys holding alerts (quiet hours), and the dispatcher's clock
    dispatch_lock = asyncio.Lock()  # the alerts agent and the digest timer share the table
    tracker = LinkageTracker(registry, LinkagePolicy(
        deadline=settings.linkage_deadline, depth=settings.linkage_depth,
        level_deadlines=settings.linkage_level_deadlines,
        account_deadlines=settings.linkage_account_deadlines,
    ))
    batch, within = settings.batch_size, settings.batch_within
    # Alerts are few: their hop need not wait long to fill a batch (Faust's take() waits
    # out the whole interval), and every second of it is a duty officer's.
    alert_within = min(within, 0.05)
    # Packs per batch on the internal hops: each holds up to a whole upstream batch's
    # events for its partition, so a few of them make a batch of the usual size.
    pack_batch = max(1, batch // 64)
    # Faust pauses every stream once more than 100 changelog writes are buffered and
    # drains them 100 at a time; a batch of 1,024 events writes ~750 owner states, so
    # it stalled on every batch ("producer buffer full"). Commit still flushes it all.
    ProducerBuffer.max_messages = max(ProducerBuffer.max_messages, 4 * batch)

    @app.task
    async def _open_store() -> None:
        await store.open()

    # --- normalize --------------------------------------------------------------------
    @app.agent(topics["raw"])
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        """Normalize raw lines; analyze in place the ones already keyed by their owner.

        Collectors and the feeder key raw lines by the owner's table key, so mw-raw is
        co-partitioned with the owner state and most events skip the mw-events hop.
        A line keyed otherwise (or not at all) is repartitioned through mw-events.
        """
        loop = asyncio.get_running_loop()
        to_linkage = Packer(settings.partitions)
        async for events in stream.take_events(batch, within=within):
            local: list[Event] = []
            for ev in events:
                out = await normalize_one(ev)
                if out is None:
                    continue
                owner_wm.observe(ev.message.partition, out.ts)
                key = f"{out.platform}:{out.owner_id}"
                if ev.message.key == orjson.dumps(key):
                    local.append(out)
                else:
                    await topics["events"].send(key=key, value=out)
                for task_key in tracker.route(out):
                    to_linkage.add(task_key, out)
            await send_packs(topics["linkage"], to_linkage)
            if local:
                await isolated("analyze", local, lambda b: analyze_batch(loop, b))

    async def normalize_one(ev: Any) -> Event | None:
        """One raw message → an Event, or None (blank, or dead-lettered with a reason)."""
        now = datetime.now(tz=UTC)
        raw: bytes = ev.value if isinstance(ev.value, bytes) else bytes(ev.value or b"")
        source = f"{ev.message.topic}/{ev.message.partition}"
        events_in_raw.inc()
        if not raw.strip():
            return None
        headers = read_headers(ev.message.headers)
        as_of = headers.get(HEADER_AS_OF)
        try:
            collected = datetime.fromisoformat(as_of) if as_of else now
            out = normalize_line(
                raw, collected_at=collected, max_line_bytes=settings.max_line_bytes,
                max_text_bytes=settings.max_text_bytes, max_future=settings.max_future_skew,
            )
        except InvalidInput as e:
            await send_dead_letter(str(e.reason), source, raw, ev.message.offset)
            return None
        except ValueError as e:
            await send_dead_letter(f"bad header: {e}", source, raw, ev.message.offset)
            return None
        if headers.get(HEADER_MODE) == "replay":
            # An archive carries no collection time; created_at is the honest
            # bound, and keeps a replay's output independent of when it ran.
            out = out.derive(collected_at=out.created_at)
        return out

    async def send_dead_letter(reason: str, source: str, raw: bytes, offset: int | None) -> None:
        head = raw[:DLQ_PAYLOAD_BYTES].decode("utf-8", errors="replace")
        if len(raw) > DLQ_PAYLOAD_BYTES:
            head += f"…[{len(raw)} bytes]"
        metrics.DEAD_LETTERS.labels(reason=reason.split(":", 1)[0][:40]).inc()
        await topics["dlq"].send(
            key=source,
            value=DeadLetter(reason=reason, source=source, payload=head,
                             received_at=now_iso(), offset=offset),
        )

    # --- analyze: sentiment, store, volume spikes ---------------------------------------
    @app.agent(topics["events"])
    async def analyze(stream: faust.StreamT[Event]) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(batch, within=within):
            items: list[Event] = [ev.value for ev in events]
            for ev in events:
                if ev.value.kind != WATERMARK_KIND:  # repartitioned: their own time line
                    owner_wm.observe(REPARTITIONED + ev.message.partition, ev.value.ts)
            await isolated("analyze", items, lambda b: analyze_batch(loop, b))

    async def analyze_batch(loop: asyncio.AbstractEventLoop, items: list[Event]) -> None:
        final = any(e.kind == WATERMARK_KIND for e in items)
        items = [e for e in items if e.kind != WATERMARK_KIND]
        started = loop.time()
        scores = await loop.run_in_executor(
            pool, model.score_batch, [e.text for e in items]
        )
        metrics.SENTIMENT_SECONDS.observe(loop.time() - started)
        # In place, not derive(): the batch's events are this agent's own objects (already
        # serialized wherever they were sent), and a Record rebuild per event cost 7 % of
        # the worker's CPU in the load run.
        scored = items
        for e, s in zip(items, scores, strict=True):
            e.sentiment, e.sentiment_label = round(s.score, 4), s.label
            set_owner_fields(e)
        # The store write runs in its thread while the rules run here: one step lets it
        # encode its rows and hand them over; both finish before anything is emitted.
        stored = asyncio.ensure_future(write(store.write_events, scored, "events"))
        await asyncio.sleep(0)
        async with gate.changing():
            try:
                # Per owner key, in partition order; the states are persisted only after
                # the alerts are out. An event the engine cannot fold is dead-lettered
                # below.
                alerts, states, failed = engine.fold(scored, owner_state.get)
                if final:  # end of a finite input: time-driven rules see the last time
                    more, changes = sweep(owner_wm.latest(), states)
                    alerts += more
                    states.update(changes)
            finally:
                await stored
            now = datetime.now(tz=UTC).timestamp()
            out_by: Counter[tuple[str, str]] = Counter()
            for e in scored:
                out_by[e.kind, e.platform] += 1
                to_store.observe(max(now - epoch(e.collected_at), 0.0))
            for (kind, platform), n in out_by.items():
                metrics.child(metrics.EVENTS_OUT, kind=kind, platform=platform).inc(n)
            to_activity = Packer(settings.partitions)
            for e in scored:
                if (key := engine.activity_key(e)) is not None:
                    to_activity.add(key, e)
            await emit(alerts, await send_packs(topics["activity"], to_activity))
            owner_state.update(states)
        for e, exc in failed:
            await quarantine([e], "rules", exc)

    def set_owner_fields(e: Event) -> None:
        acc = registry.get(e.platform, e.owner_id)
        if acc is not None:
            e.owner_name, e.owner_unit = acc.name, acc.unit
            e.owner_level, e.owner_parent = acc.level, acc.parent

    events_in_raw = metrics.child(metrics.EVENTS_IN, source="raw")
    to_store = metrics.child(metrics.E2E_LATENCY, stage="store")

    owner_wm = PartitionWatermark(settings.allowed_lateness, settings.idle_partition_after)

    def sweep(watermark: float, overlay: dict[str, Any] | None = None,
              ) -> tuple[list[Alert], dict[str, Any]]:
        """Time-driven rules (stale accounts, unanswered questions) for every local owner.

        Their alerts carry computed event times and ids, so how often this runs changes
        only how soon they are seen, never what they say. ``overlay`` holds states not
        yet persisted; changed states are returned (None = delete).
        """
        if watermark == -math.inf:
            return [], {}
        alerts: list[Alert] = []
        changes: dict[str, Any] = {}
        keys = set(owner_state.data) | set(overlay or {})
        for key in sorted(keys):
            state = overlay[key] if overlay and key in overlay else owner_state.get(key)
            new, out = engine.sweep(key, state, watermark)
            if out or new != state:
                changes[key] = new
            alerts += out
        return alerts, changes

    @app.timer(settings.sweep_interval)
    async def periodic_sweep() -> None:
        """Time-driven rules on the wall clock's beat. An exception escaping a Faust timer
        crashes the whole worker (and the bad state would crash its restart too), so a
        failing sweep is logged and retried on the next beat instead."""
        try:
            async with gate.changing():
                alerts, changes = sweep(owner_wm.value())
                await emit(alerts)
                owner_state.update(changes)
            if changes:  # no offset commit may follow soon: sweeps see no new events
                await owner_state.flush(app, only=changes)
        except Exception:
            log.exception("periodic sweep failed; retrying at the next interval")

    async def emit(alerts: list[Alert], pending: list[Any] | None = None) -> None:
        """Send alerts and wait until the broker has them (and any ``pending`` sends).

        State that records "this fired" is written to its table only after this
        returns: a worker killed in between then re-fires (deduplicated downstream by
        the alert id) instead of remembering an alert that never left.
        """
        futures = list(pending or [])
        for a in alerts:
            futures.append(await send_alert(a))
        if futures:
            await asyncio.gather(*futures)

    async def send_packs(topic: Any, packer: Packer) -> list[Any]:
        """One message per partition with events; returns their delivery futures."""
        return [await topic.send(key=f"pack:{p}".encode(), value=value, partition=p)
                for p, value in packer.packs()]

    async def unpack(events: Iterable[Any], stage: str) -> list[tuple[int, Event]]:
        """(partition, event) of every event in the packs; a message that is not a pack
        is dead-lettered with the reason (only a foreign producer could write one)."""
        out: list[tuple[int, Event]] = []
        for ev in events:
            raw: bytes = ev.value if isinstance(ev.value, bytes) else b""
            try:
                out += [(ev.message.partition, e) for e in packs.decode(raw)]
            except (ValueError, TypeError) as e:
                await send_dead_letter(f"{stage} error: not a pack: {e}"[:500],
                                       f"{ev.message.topic}/{ev.message.partition}", raw,
                                       ev.message.offset)
        return out

    @app.agent(topics["activity"])
    async def activity(stream: faust.StreamT[bytes]) -> None:
        """A matrix account's repost of another owner's post still counts as its update."""
        async for packed in stream.take_events(pack_batch, within=within):
            items = [e for _, e in await unpack(packed, "activity")]
            alerts: list[Alert] = []
            states: dict[str, Any] = {}
            async with gate.changing():
                for e in items:
                    key = f"{e.platform}:{e.account_id}"
                    states[key], out = engine.on_author_activity(
                        states[key] if key in states else owner_state.get(key), e)
                    alerts += out
                await emit(alerts)
                owner_state.update(states)

    @app.agent(topics["health"])
    async def health(stream: faust.StreamT[CollectorHealth]) -> None:
        """Collector reports → collector_health alerts. A record the engine cannot read is
        dead-lettered with its reason; an exception escaping here would stop the agent."""
        async for events in stream.take_events(batch, within=within):
            alerts: list[Alert] = []
            for ev in events:
                try:
                    alerts += engine.on_health(ev.value)
                except Exception as e:
                    raw = ev.message.value
                    if not isinstance(raw, bytes):
                        raw = ev.value.dumps()
                    await send_dead_letter(
                        f"health error: {type(e).__name__}: {e}"[:500],
                        f"{ev.message.topic}/{ev.message.partition}", raw, ev.message.offset)
            await emit(alerts)

    async def send_alert(a: Alert) -> Any:
        """Queue one alert (keyed for the dispatcher); returns its delivery future."""
        acc = registry.get(a.platform, a.account_id)
        if acc is not None and a.unit is None:
            a = a.derive(account_name=acc.name, unit=acc.unit, level=acc.level)
        return await topics["alerts"].send(key=Dispatcher.key(a), value=a)

    # --- linkage ----------------------------------------------------------------------
    # Event-time watermark of this worker's linkage partitions, and a heap of when each
    # container next needs the clock. The heap is derived state: it is rebuilt from the
    # table after every rebalance, so only the table needs a changelog.
    clock: dict[str, Any] = {"heap": [], "due": {}, "stale": True}
    link_wm = PartitionWatermark(settings.allowed_lateness, settings.idle_partition_after)

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def _heap_stale(*_: Any, **__: Any) -> None:
        clock["stale"] = True
        link_wm.forget(set(link_wm.max_ts))  # rebuilt from the partitions now owned

    checkpoint_fractions = sorted({f for r in engine.lagging_rules for f in r.params.checkpoints})

    def next_due(box: Any, after: float) -> float | None:
        return tracker.wakeup(box, checkpoint_fractions, after)

    def schedule(key: str, due: float | None) -> None:
        """Remember when ``key`` next needs the clock (one live heap entry per key)."""
        if due is None:
            clock["due"].pop(key, None)
        elif clock["due"].get(key) != due:
            clock["due"][key] = due
            heapq.heappush(clock["heap"], (due, key))

    def due_keys(watermark: float) -> list[str]:
        heap: list[tuple[float, str]] = clock["heap"]
        if clock["stale"]:
            heap.clear()
            clock["due"].clear()
            for key, box in task_state.items():  # never evaluated here: every time counts
                schedule(key, next_due(box, -math.inf) if box else None)
            clock["stale"] = False
        keys = []
        while heap and heap[0][0] < watermark:
            due, key = heapq.heappop(heap)
            if clock["due"].get(key) == due:  # else superseded by a later schedule()
                del clock["due"][key]
                keys.append(key)
        return keys

    @app.agent(topics["linkage"])
    async def linkage(stream: faust.StreamT[bytes]) -> None:
        async for packed in stream.take_events(pack_batch, within=within):
            events = await unpack(packed, "linkage")
            for partition, e in events:
                link_wm.observe(partition, e.ts, end=e.kind == WATERMARK_KIND)
            await isolated("linkage", [e for _, e in events], linkage_batch)

    async def linkage_batch(items: list[Event]) -> None:
        async with gate.changing():
            watermark = link_wm.value()
            done = tracker.fold(
                [e for e in items if e.kind != WATERMARK_KIND], task_state.get,
                due_keys(watermark), watermark, engine.on_linkage_progress,
                engine.on_linkage_closed, settings.task_retention)
            # Outputs first, state after: a task marked closed (or a checkpoint marked
            # fired) in the changelog must never stand for a result that was not written.
            if done.closed:
                await write(store.write_linkage, done.closed, "linkage")
            await emit(done.alerts)
            task_state.update(done.states)
        for key, box in done.states.items():
            schedule(key, next_due(box, watermark) if box is not None else None)
        metrics.OPEN_TASKS.set(len(clock["due"]))
        for e, exc in done.failed:
            await quarantine([e], "linkage", exc)
        for key, exc in done.failed_keys:  # left as it was; evaluated again when next due
            log.error("linkage failed on container %s; dead-lettering it", key, exc_info=exc)
            box = orjson.dumps(task_state.get(key), default=repr)
            await send_dead_letter(f"linkage error: {type(exc).__name__}: {exc}"[:500],
                                   f"linkage:{key}", box, None)

    # --- alerts and dead letters to the store ----------------------------------------
    @app.agent(topics["alerts"])
    async def alerts_agent(stream: faust.StreamT[Alert]) -> None:
        """Realert, escalation, quiet hours and routing per alert key; then the store and
        the notifiers at once. Quiet-hours digests due by the batch's latest alert time go
        out first."""
        async for items in stream.take(batch, within=alert_within):
            async with dispatch_lock, gate.changing():
                keep: list[Alert] = []
                deliveries: list[tuple[Alert, str]] = []
                states: dict[str, Any] = {}
                for a in items:
                    key = Dispatcher.key(a)
                    states[key], decision = dispatcher.decide(
                        states[key] if key in states else dispatch_state.get(key), a)
                    held.advance(epoch(a.timestamp))
                    if decision.store:
                        keep.append(decision.alert)
                        deliveries += [(decision.alert, ch) for ch in decision.channels]
                digests = flush_held(states)
                # The store and the duty officer at once: neither waits for the other.
                await asyncio.gather(
                    store_alerts(keep),
                    notify([(d.alert, d.channel) for d in digests] + deliveries))
                dispatch_state.update(states)  # after both: a crash re-sends, never loses
                held.note(states.items())

    async def store_alerts(keep: list[Alert]) -> None:
        await write(store.write_alerts, keep, "alerts")
        for a in keep:
            metrics.ALERTS_FIRED.labels(rule=a.rule, severity=a.severity).inc()
            observe_latency("alert", a)

    def observe_latency(stage: str, a: Alert) -> None:
        """Collection of the firing event → now. Time-driven alerts (stale, unanswered,
        linkage) have no firing event and are not counted."""
        if a.observed_at is not None:
            lag = datetime.now(tz=UTC).timestamp() - epoch(a.observed_at)
            metrics.child(metrics.E2E_LATENCY, stage=stage).observe(max(lag, 0.0))

    async def deliver_one(a: Alert, channel: str) -> None:
        try:
            await deliver(a, channel, channels, registry)
            observe_latency("notify", a)
        except DeliveryFailed as e:
            await send_dead_letter(f"delivery failed: {channel}: {e}",
                                   f"alerts:{channel}", a.dumps(), None)

    # Each channel's send budget (its robot's rate limit, this worker's share); what
    # does not fit waits for one summary per channel (alerts/throttle.py).
    throttle = Throttle.from_channels(channels, settings.notify_budget_workers)
    notify = FanOut(deliver_one, settings.notify_concurrency, throttle)

    def flush_held(states: dict[str, Any]) -> list[Any]:
        """Digests of the alerts held in quiet windows that ended by the dispatcher's
        clock; ``states`` (decided, not saved yet) is read first and takes the changes."""
        keys = held.keys_due(dispatch_state.items, states)
        changes, digests = dispatcher.flush(
            [(k, states[k] if k in states else dispatch_state.get(k)) for k in keys],
            held.clock)
        states.update(changes)
        held.note([(k, states[k] if k in states else dispatch_state.get(k)) for k in keys])
        return digests

    @dispatch_table.on_recover  # type: ignore[untyped-decorator]
    async def _held_stale() -> None:
        held.stale = True  # rebuilt from the recovered table

    @app.timer(settings.sweep_interval)
    async def quiet_digests() -> None:
        """Digests when no alert moves the clock past a window's end. Live, the pipeline's
        event time moves it; a finite replay (infinite lateness) only its alerts, so its
        digests do not depend on wall-clock timing."""
        if math.isfinite(settings.allowed_lateness):
            held.advance(owner_wm.latest())
        if dispatch_lock.locked():  # the agent is at it; it flushes with this clock too
            return
        async with dispatch_lock, gate.changing():
            states: dict[str, Any] = {}
            digests = flush_held(states)
            await notify([(d.alert, d.channel) for d in digests])
            dispatch_state.update(states)
            held.note(states.items())
        if states:  # a timer: no offset commit may follow soon
            await dispatch_state.flush(app, only=states)

    @app.timer(settings.sweep_interval)
    async def rate_summaries() -> None:
        """Rate-limit summaries once a channel's window has room again: a burst's last
        overflow would otherwise wait for the channel's next alert. No lock: the throttle
        takes the slot and clears the overflow in one synchronous step, and it touches no
        table (the overflowed alerts are stored by the batches that decided them)."""
        try:
            await notify.flush()
        except Exception:  # a timer that raises stops the worker; the alerts are stored
            log.exception("sending rate-limit summaries failed")

    @app.timer(settings.alert_key_expiry_interval)
    async def expire_alert_keys() -> None:
        """Delete dispatch states idle past ``alert_key_retention`` (Dispatcher.expired).

        Event time decides, by the input watermark: a finite replay (infinite lateness)
        never has one, so its decisions never depend on when this ran. A failure is
        logged and retried at the next interval (an exception would stop the worker).
        """
        watermark = owner_wm.value()
        if not math.isfinite(watermark) or watermark >= END_OF_INPUT_GUARD:
            return
        try:
            async with dispatch_lock, gate.changing():
                gone: dict[str, Any] = {
                    key: None for key, st in dispatch_state.items()
                    if dispatcher.expired(st, watermark, settings.alert_key_retention, key)}
                dispatch_state.update(gone)
                held.note(gone.items())
            if gone:
                metrics.ALERT_KEYS_EXPIRED.inc(len(gone))
                await dispatch_state.flush(app, only=gone)
        except Exception:
            log.exception("expiring alert keys failed; retrying at the next interval")

    @app.agent(topics["dlq"])
    async def dead_letters(stream: faust.StreamT[DeadLetter]) -> None:
        async for items in stream.take(batch, within=within):
            await write(store.write_dead_letters, items, "dead_letters")

    async def isolated(stage: str, items: list[Event],
                       fn: Callable[[list[Event]], Awaitable[None]]) -> None:
        """Run ``fn`` on a batch; if it raises, again event by event, and dead-letter only
        the events that still raise: one poison event must not take its batch with it.

        Retrying is safe: the batch functions save table state last, store writes are
        upserts by id, and alert ids are deterministic (a re-sent alert is deduplicated).
        """
        try:
            await fn(items)
            return
        except Exception as e:  # a bug must not crash the agent: Faust would skip
            if len(items) <= 1:
                await quarantine(items, stage, e)
                return
            log.warning("%s failed on a batch of %d (%s: %s); retrying event by event",
                        stage, len(items), type(e).__name__, e)
        for item in items:
            try:
                await fn([item])
            except Exception as e:
                await quarantine([item], stage, e)

    async def quarantine(items: list[Event], stage: str, exc: Exception) -> None:
        """Dead-letter a batch that raised, with the reason, and keep the partition moving.

        An exception escaping an agent makes Faust restart it past the batch, losing it
        silently; here every event of the batch is kept in the DLQ instead.
        """
        log.error("%s failed on a batch of %d; dead-lettering it", stage, len(items),
                  exc_info=exc)
        reason = f"{stage} error: {type(exc).__name__}: {exc}"[:500]
        for e in items:
            await send_dead_letter(reason, f"{stage}:{e.platform}:{e.id}", e.dumps(), None)

    async def write(fn: Any, items: list[Any], kind: str) -> None:
        """Write or keep retrying: never let the batch be acked unwritten.

        Raising here would crash the agent, and Faust would then commit past the
        batch. Waiting instead stops the partition (back-pressure) until the store
        is back; the metric and the log make the outage visible.
        """
        def failed(exc: BaseException | None, attempt: int) -> None:
            metrics.SINK_ERRORS.labels(store=type(store).__name__, kind=kind).inc()
            log.warning("store write of %d %s failed (%r); retry %d",
                        len(items), kind, exc, attempt)

        await write_until_done(lambda: fn(items), failed, settings.sink_retry_max_wait)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return Pipeline(app=app, settings=settings, registry=registry, store=store, topics=topics)
