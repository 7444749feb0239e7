"""Soak: scheduled polling of a live fake world with injected faults and a mid-run restart.

Duration: ``MW_SOAK_SECONDS`` (default 20 s in CI; the 10-minute run is
``MW_SOAK_SECONDS=600 pytest -m soak -s tests/collectors/test_soak.py``). The world
keeps posting, commenting (in hot order, with replies) and reposting while ~8% of
requests fail (418, 429, 5xx, stalls past the client timeout, malformed pages) and
accounts get marked hot at random. Halfway through, the collector process "restarts"
(scheduler, HTTP client and SQLite closed and reopened). At the end faults stop and a
final drain runs; then every id in the world must have been published exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from matrixwatch.broker import proc_status_kib
from matrixwatch.collectors.base import Item, Sink
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.scheduler import CollectorScheduler, mark_hot
from matrixwatch.collectors.weibo_mobile import WeiboMobileCollector
from matrixwatch.streams.records import CollectorHealth
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FakeWeibo, FPost

GOV = [9000000001 + i for i in range(8)]
NETIZENS = [9000000101 + i for i in range(40)]
FAULTS = ("418", "429", "500", "502", "timeout", "malformed")


def ours_kib(snapshot: tracemalloc.Snapshot) -> int:
    """Live Python memory allocated by matrixwatch code (not the fake world, not pytest)."""
    flt = [tracemalloc.Filter(True, "*/matrixwatch/*", all_frames=True),
           tracemalloc.Filter(False, "*/tests/*", all_frames=True)]
    return sum(st.size for st in snapshot.filter_traces(flt).statistics("filename")) // 1024


def rss_kib() -> int:
    return proc_status_kib("self") or 0


class CountingSink(Sink):
    """Keeps only id → times published (bounded by the world's size) and health."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.health_records: list[CollectorHealth] = []

    async def send(self, items: Sequence[Item]) -> None:
        for it in items:
            o = it.obj()
            kind = "comment" if "status" in o else "status"
            self.counts[f"{kind}:{o.get('idstr') or o['id']}"] += 1
            self.kinds[kind] += 1

    async def health(self, record: CollectorHealth) -> None:
        self.health_records.append(record)


async def evolve(fw: FakeWeibo, rng: random.Random, stop: asyncio.Event) -> None:
    """The world keeps moving: posts, comments (replies too) and reposts on recent posts."""
    while not stop.is_set():
        uid = rng.choice(GOV)
        recent: list[FPost] = fw.by_user[uid][-8:]
        r = rng.random()
        if r < 0.12 or not recent:
            fw.add_post(uid, long=rng.random() < 0.1)
        elif r < 0.75:
            post = rng.choice(recent)
            tops = [c for c in post.comments if c.reply_to is None]
            if tops and rng.random() < 0.2:
                fw.add_comment(post, uid, "回复：已转相关部门办理", reply_to=rng.choice(tops))
            else:
                fw.add_comment(post, rng.choice(NETIZENS))
        else:
            post = rng.choice(recent)
            reposter = rng.choice(NETIZENS + GOV[:2])
            if reposter != uid:
                fw.add_repost(post, reposter)
        await asyncio.sleep(0.04)


@pytest.mark.soak
async def test_soak_no_gaps_no_duplicates_bounded_memory(tmp_path: Path) -> None:
    seconds = float(os.environ.get("MW_SOAK_SECONDS", "20"))
    rng = random.Random(20261121)
    fw = FakeWeibo(page_size=10, comment_page_size=5, repost_page_size=5, seed=7)
    for uid in GOV:
        fw.add_user(uid, f"某某{uid % 100}发布")
        for _ in range(3):
            fw.add_post(uid)
    for uid in NETIZENS:
        fw.add_user(uid, f"测试网友{uid % 1000}")
    fw.stall_seconds = 0.6
    db = tmp_path / "collectors.sqlite"
    sink = CountingSink()
    samples: list[int] = []
    stop = asyncio.Event()
    # Expected failures log a warning each; pytest would keep them all in memory.
    quiet_loggers = [logging.getLogger(n) for n in ("matrixwatch.collectors", "apscheduler")]
    levels = [lg.level for lg in quiet_loggers]
    for lg in quiet_loggers:
        lg.setLevel(logging.ERROR)
    tracemalloc.start(6)
    ours: list[int] = []

    async with fw.serve() as base:
        settings = make_settings(
            tmp_path, base, collector_db=db, poll_interval=1.0, hot_interval=0.3, hot_ttl=4.0,
            poll_jitter=0.1, http_timeout=0.3, retry_attempts=3, backoff_initial=0.02,
            backoff_max=0.2, host_rate=60.0, host_burst=10, failure_threshold=3,
            refresh_pages=1, comment_pages=4, repost_pages=4, max_pages=5)

        async def start() -> tuple[CollectorScheduler, WeiboMobileCollector, CursorStore]:
            store = CursorStore(db)
            col = WeiboMobileCollector(settings, sink, store)
            sched = CollectorScheduler(settings, store, weibo=col,
                                       accounts=[str(u) for u in GOV], hot_check=0.2)
            await sched.start()
            return sched, col, store

        async def shutdown(parts: tuple[CollectorScheduler, WeiboMobileCollector,
                                        CursorStore]) -> None:
            sched, col, store = parts
            await sched.stop()
            await asyncio.sleep(0.7)  # let in-flight polls finish or fail
            await col.close()
            store.close()

        fw.random_faults = (0.08, FAULTS)
        world = asyncio.create_task(evolve(fw, rng, stop))
        parts = await start()
        t0 = time.monotonic()
        restarted = False
        polls = 0
        warm = None
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(1.0)
            gc.collect()
            samples.append(rss_kib())
            if warm is None and time.monotonic() - t0 > min(10.0, seconds / 4):
                warm = samples[-1]
                ours.append(ours_kib(tracemalloc.take_snapshot()))
            if rng.random() < 0.15:
                mark_hot(db, "weibo", str(rng.choice(GOV)), ttl=4.0, reason="soak")
            if not restarted and time.monotonic() - t0 > seconds / 2:
                polls += parts[0].stats.runs
                await shutdown(parts)
                parts = await start()
                restarted = True
        ours.append(ours_kib(tracemalloc.take_snapshot()))
        stop.set()
        await world
        polls += parts[0].stats.runs
        await shutdown(parts)

        # Final drain without faults: poll every account until two quiet rounds.
        fw.random_faults = None
        store = CursorStore(db)
        col = WeiboMobileCollector(settings, sink, store)
        quiet, rounds = 0, 0
        while quiet < 2 and rounds < 12:
            rounds += 1
            got = 0
            for u in GOV:
                got += (await col.poll_account(str(u))).published
            quiet = quiet + 1 if got == 0 else 0
        await col.close()
        store.close()
    tracemalloc.stop()
    for lg, level in zip(quiet_loggers, levels, strict=True):
        lg.setLevel(level)

    truth = {f"status:{i}" for i in fw.all_ids()["status"]} | \
            {f"comment:{i}" for i in fw.all_ids()["comment"]}
    published = set(sink.counts)
    duplicates = sum(n - 1 for n in sink.counts.values())
    gaps = truth - published
    extra = published - truth
    report = {
        "seconds": seconds, "requests": sum(fw.hits.values()),
        "faults_injected": dict(fw.faults_injected),
        "faults_total": sum(fw.faults_injected.values()),
        "scheduled_polls": polls, "drain_rounds": rounds,
        "events": {"total": sum(sink.kinds.values()), **dict(sink.kinds)},
        "world": {"statuses": len(fw.all_ids()["status"]),
                  "comments": len(fw.all_ids()["comment"])},
        "duplicates": duplicates, "gaps": len(gaps), "unknown": len(extra),
        "health_records": Counter(h.status for h in sink.health_records),
        "rss_kib": {"start": samples[0] if samples else 0, "warm": warm,
                    "end": samples[-1] if samples else 0, "max": max(samples, default=0)},
        "matrixwatch_live_kib": {"warm": ours[0] if ours else None,
                                 "end": ours[-1] if ours else None},
    }
    print("SOAK " + json.dumps(report, ensure_ascii=False, default=dict))
    out = os.environ.get("MW_SOAK_REPORT")
    if out:
        Path(out).write_text(json.dumps(report, ensure_ascii=False, default=dict, indent=1))
    assert report["faults_total"] > 0
    assert duplicates == 0, f"{duplicates} duplicates"
    assert not gaps, f"{len(gaps)} gaps, e.g. {sorted(gaps)[:5]}"
    assert not extra
    # Bounded memory: what matrixwatch code holds live must not grow with time (it is
    # O(accounts), not O(events)); the whole process (with the growing fake world and
    # tracemalloc's own bookkeeping) must stay within 128 MiB of its warm size.
    if len(ours) == 2:
        assert ours[1] - ours[0] < 4 * 1024, ours
    if warm is not None:
        assert report["rss_kib"]["end"] - warm < 128 * 1024
