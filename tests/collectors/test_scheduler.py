"""APScheduler loop: persisted jobs, per-account intervals, hot accounts, restarts."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from matrixwatch.collectors.base import MemorySink
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.scheduler import CollectorScheduler, mark_hot
from matrixwatch.collectors.weibo_mobile import WeiboMobileCollector
from tests.collectors.conftest import make_settings
from tests.collectors.fakeweibo import FakeWeibo

ACCOUNTS = [9000000001, 9000000002, 9000000003]
GET_INDEX = "/api/container/getIndex"


def jobs_in_db(db: Path) -> dict[str, float]:
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall())


async def wait_for(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_scheduled_polling_hot_accounts_and_restart(tmp_path: Path) -> None:
    fw = FakeWeibo()
    for uid in ACCOUNTS:
        fw.add_user(uid, f"账号{uid % 10}")
        fw.add_post(uid)
    db = tmp_path / "collectors.sqlite"
    settings = make_settings(tmp_path, poll_interval=0.6, hot_interval=0.1, hot_ttl=0.8,
                             poll_jitter=0.0, collector_db=db)
    async with fw.serve() as base:
        settings = settings.model_copy(update={"weibo_mobile_url": base})
        store = CursorStore(db)
        sink = MemorySink()
        col = WeiboMobileCollector(settings, sink, store)
        sched = CollectorScheduler(settings, store, weibo=col,
                                   accounts=[str(a) for a in ACCOUNTS], hot_check=0.1)
        await sched.start()
        try:
            await wait_for(lambda: len(sink.items) == 3)  # first runs come at once
            assert set(jobs_in_db(db)) == {f"weibo_mobile:{a}" for a in ACCOUNTS}
            assert sched.interval_of("weibo_mobile:9000000002") == 0.6

            # An alert marks the district hot, through the SQLite file (another process).
            mark_hot(db, "weibo", "9000000002", ttl=0.8, reason="alert:volume_spike")
            await wait_for(lambda: sched.interval_of("weibo_mobile:9000000002") == 0.1)
            before = sched.stats.runs
            fresh = fw.add_post(9000000002)
            await wait_for(lambda: str(fresh.id) in {o["id"] for o in sink.objects()},
                           timeout=1.0)
            await asyncio.sleep(0.5)
            assert sched.stats.runs - before >= 4  # ~every 0.1 s while hot
            await wait_for(lambda: sched.interval_of("weibo_mobile:9000000002") == 0.6,
                           timeout=3.0)  # the mark expired
        finally:
            await sched.stop()
        saved = jobs_in_db(db)

        # Restart with one account removed from the registry: its job goes, others keep
        # their stored next run times (no burst of catch-up polls, no lost schedule).
        sched2 = CollectorScheduler(settings, store, weibo=col,
                                    accounts=[str(a) for a in ACCOUNTS[:2]], hot_check=0.1)
        await sched2.start()
        try:
            kept = jobs_in_db(db)
            assert set(kept) == {f"weibo_mobile:{a}" for a in ACCOUNTS[:2]}
            assert all(kept[k] == saved[k] for k in kept)
            late = fw.add_post(9000000001)
            await wait_for(lambda: str(late.id) in {o["id"] for o in sink.objects()})
        finally:
            await sched2.stop()
            await col.close()
            store.close()
    got = [o["id"] for o in sink.objects()]
    assert len(got) == len(set(got)) == 5


async def test_stop_cuts_polls_short_quietly_and_counts_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Polls still retrying at stop() are cancelled and awaited: counted as cut short,
    no CancelledError traceback per poll (APScheduler's "raised an exception"), and the
    runs that came due meanwhile are counted as skipped, not warned about one by one."""
    db = tmp_path / "collectors.sqlite"
    with socket.socket() as dead:  # bound, never listening: connections are refused
        dead.bind(("127.0.0.1", 0))
        settings = make_settings(tmp_path, f"http://127.0.0.1:{dead.getsockname()[1]}",
                                 poll_interval=0.1, poll_jitter=0.0, backoff_initial=30.0,
                                 backoff_max=60.0, collector_db=db)
        store = CursorStore(db)
        col = WeiboMobileCollector(settings, MemorySink(), store)
        sched = CollectorScheduler(settings, store, weibo=col,
                                   accounts=[str(a) for a in ACCOUNTS], hot_check=0.1)
        await sched.start()
        try:
            await wait_for(lambda: sched.stats.runs == 3 and sched.stats.skipped >= 6)
        finally:
            await sched.stop()
        await asyncio.sleep(0.1)  # anything left to unwind would log now
        await col.close()
        store.close()
    s = sched.stats
    assert (s.runs, s.ok, s.failures, s.interrupted) == (3, 0, 0, 3)
    assert s.none_succeeded
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "skipped" in warned[0], warned


def test_mark_hot_store_roundtrip(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "s.sqlite")
    store.mark_hot("weibo", "1", 100)
    store.mark_hot("weibo", "2", -1)
    assert set(store.hot()) == {("weibo", "1")}
    store.clear_hot("weibo", "1")
    assert store.hot() == {}
    store.close()
