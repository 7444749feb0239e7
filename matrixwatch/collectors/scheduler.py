"""Continuous collection: APScheduler 3 jobs per account, persisted in SQLite.

Peers' crawlers end after one crawl (weibo-crawler #205). Here every registry account
(and every feed) is an APScheduler interval job whose id is ``<source>:<account>``,
stored with ``SQLAlchemyJobStore`` in the collector SQLite file: after a restart the
jobs keep their next run times, and overdue ones run once (coalesce) instead of in a
burst. Jobs reference a module-level coroutine and plain string arguments, so they
pickle; the live collectors are looked up in a process-local registry at run time.

Hot accounts: :func:`mark_hot` (callable from any process that can open the SQLite
file, e.g. an alert notifier, or ``matrixwatch collect hot``) records the account as
hot until a deadline. The scheduler checks the marks every few seconds, polls a newly
hot account at once and then every ``hot_interval`` seconds, and returns it to
``poll_interval`` when the mark expires.

Shutdown cancels the polls in flight and waits for them (each page is committed before
the next is fetched, so the next run resumes): they are counted as cut short, not as
failures, and log nothing. :class:`Stats` counts every poll as succeeded, failed or cut
short, so a run against a source that is down does not look healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.engine import PollResult, WeiboCollector
from matrixwatch.collectors.rss import FeedSpec, RssCollector
from matrixwatch.streams.weibo_time import SHANGHAI

log = logging.getLogger(__name__)

_RUNTIMES: dict[str, CollectorScheduler] = {}
JOB_FUNC = "matrixwatch.collectors.scheduler:run_job"


async def run_job(runtime: str, source: str, key: str) -> None:
    """The persisted job's entry point: dispatch to the live scheduler of this process."""
    rt = _RUNTIMES.get(runtime)
    if rt is None:  # a job left in the store by a process that is gone
        log.warning("no collector runtime %r for job %s:%s", runtime, source, key)
        return
    await rt.run(source, key)


def mark_hot(state_path: str | Path, platform: str, account_id: str, ttl: float,
             reason: str = "") -> float:
    """Ask the scheduler (any process) to poll an account often until now + ttl."""
    store = CursorStore(state_path)
    try:
        return store.mark_hot(platform, account_id, ttl, reason)
    finally:
        store.close()


@dataclass
class Stats:
    """Polls of one scheduler's lifetime: ``runs`` started = ``ok`` + ``failures`` +
    ``interrupted`` (cut short by shutdown) + the ones still running."""

    runs: int = 0
    ok: int = 0
    failures: int = 0
    interrupted: int = 0
    skipped: int = 0  # due while the previous poll of the same job was still running
    published: int = 0
    by_key: dict[str, int] = field(default_factory=dict)

    @property
    def none_succeeded(self) -> bool:
        """Polls ran and not one succeeded (each failed or was cut short)."""
        return self.runs > 0 and self.ok == 0


class _QuietSkips(logging.Filter):
    """Drops APScheduler's per-job "skipped: maximum number of running instances"
    warning: with a slow or failing source every account's job says it each round.
    The skips are counted in :class:`Stats` and logged at most every few minutes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


SKIP_LOG_INTERVAL = 300.0


class CollectorScheduler:
    """Owns the APScheduler instance, the job set and the hot-account policy."""

    def __init__(
        self,
        settings: Any,
        store: CursorStore,
        *,
        weibo: WeiboCollector | None = None,
        accounts: Iterable[str] = (),
        rss: RssCollector | None = None,
        runtime: str = "default",
        hot_check: float = 5.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.weibo = weibo
        self.accounts = sorted(set(accounts))
        self.rss = rss
        self.feeds: dict[str, FeedSpec] = {f.url: f for f in (rss.feeds if rss else [])}
        self.runtime = runtime
        self.hot_check = hot_check
        self.stats = Stats()
        self.scheduler: Any = None
        self._hot_applied: dict[str, bool] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._skips_unlogged = 0
        self._skips_logged_at = float("-inf")
        self._bugs_logged: set[str] = set()

    # --- lifecycle --------------------------------------------------------------------
    def _jobstore_url(self) -> str:
        return f"sqlite:///{Path(self.store.path).resolve()}"

    async def start(self) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES
        from apscheduler.executors.asyncio import AsyncIOExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        _RUNTIMES[self.runtime] = self
        self._stopping = False
        sched_log = logging.getLogger("apscheduler.scheduler")
        if not any(isinstance(f, _QuietSkips) for f in sched_log.filters):
            sched_log.addFilter(_QuietSkips())
        self.scheduler = AsyncIOScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(url=self._jobstore_url(),
                                              tablename="apscheduler_jobs"),
                "control": MemoryJobStore(),
            },
            executors={"default": AsyncIOExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(max(60, self.settings.poll_interval))},
            timezone=SHANGHAI,
        )
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        self.sync_jobs()
        self.scheduler.add_job(self.apply_hot, "interval", seconds=self.hot_check,
                               id="hot-refresh", jobstore="control", replace_existing=True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop scheduling, cancel the polls in flight and wait until they have unwound.

        ``shutdown(wait=False)`` alone cancels the job tasks but nobody awaits them: the
        summary was printed before they ended, and each cancellation reached
        APScheduler's ``except BaseException`` as a "raised an exception" traceback.
        """
        self._stopping = True
        if self.scheduler is not None:
            self.scheduler.pause()  # no new submissions while we wind down
            await asyncio.sleep(0)  # let tasks submitted just now enter run()
            tasks = [t for t in self._inflight if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=timeout)
                if pending:
                    log.warning("%d polls still running %.0fs after cancellation",
                                len(pending), timeout)
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        _RUNTIMES.pop(self.runtime, None)

    def _skipped(self, event: Any) -> None:
        """A job came due while its previous poll still ran: count it, log it rarely."""
        self.stats.skipped += 1
        self._skips_unlogged += 1
        now = time.monotonic()
        if now - self._skips_logged_at >= SKIP_LOG_INTERVAL:
            log.warning("%d scheduled polls skipped (e.g. %s): the previous poll of the "
                        "account was still running; the source is slow or failing",
                        self._skips_unlogged, event.job_id)
            self._skips_logged_at, self._skips_unlogged = now, 0

    # --- jobs -------------------------------------------------------------------------
    def wanted(self) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        if self.weibo is not None:
            for uid in self.accounts:
                out[f"{self.weibo.source}:{uid}"] = (self.weibo.source, uid)
        for url in self.feeds:
            out[f"rss:{url}"] = ("rss", url)
        return out

    def _interval(self, source: str, key: str, hot: set[str]) -> float:
        if source != "rss" and key in hot:
            return float(self.settings.hot_interval)
        return float(self.settings.poll_interval)

    def _trigger(self, seconds: float) -> Any:
        from apscheduler.triggers.interval import IntervalTrigger

        jitter = int(seconds * self.settings.poll_jitter) or None
        return IntervalTrigger(seconds=seconds, jitter=jitter, timezone=SHANGHAI)

    def _hot_ids(self) -> set[str]:
        return {a for (p, a) in self.store.hot() if p == "weibo"}

    def sync_jobs(self) -> None:
        """Make the job store match the registry; keep next run times of kept jobs."""
        hot = self._hot_ids()
        wanted = self.wanted()
        existing = {j.id: j for j in self.scheduler.get_jobs(jobstore="default")}
        for job_id, job in existing.items():
            if job_id not in wanted or job.args[:1] != (self.runtime,):
                self.scheduler.remove_job(job_id, jobstore="default")
        for job_id, (source, key) in wanted.items():
            seconds = self._interval(source, key, hot)
            job = existing.get(job_id)
            if job is not None and job.args[:1] == (self.runtime,):
                if abs(job.trigger.interval.total_seconds() - seconds) > 1e-6:
                    self.scheduler.reschedule_job(job_id, jobstore="default",
                                                  trigger=self._trigger(seconds))
                continue
            first = datetime.now(tz=SHANGHAI) + timedelta(
                seconds=min(seconds, 1.0) * (hash(job_id) % 100) / 100)
            self.scheduler.add_job(
                JOB_FUNC, trigger=self._trigger(seconds), args=(self.runtime, source, key),
                id=job_id, name=job_id, jobstore="default", replace_existing=True,
                next_run_time=first,
            )
        self._hot_applied = {k: (k in hot) for k in self.accounts}

    async def apply_hot(self) -> None:
        """Switch accounts between hot and normal intervals as marks come and go."""
        if self.weibo is None or self.scheduler is None:
            return
        hot = self._hot_ids()
        for uid in self.accounts:
            now_hot = uid in hot
            if self._hot_applied.get(uid) == now_hot:
                continue
            self._hot_applied[uid] = now_hot
            job_id = f"{self.weibo.source}:{uid}"
            seconds = self._interval(self.weibo.source, uid, hot)
            if self.scheduler.get_job(job_id, jobstore="default") is None:
                continue
            self.scheduler.reschedule_job(job_id, jobstore="default",
                                          trigger=self._trigger(seconds))
            if now_hot:  # newly hot: look now, not in one interval
                self.scheduler.modify_job(job_id, jobstore="default",
                                          next_run_time=datetime.now(tz=SHANGHAI))
            log.info("account %s is %s: polling every %.0fs", uid,
                     "hot" if now_hot else "back to normal", seconds)

    def mark_hot(self, account_id: str, ttl: float | None = None, reason: str = "") -> None:
        """In-process variant of :func:`mark_hot`; takes effect immediately."""
        self.store.mark_hot("weibo", account_id,
                            self.settings.hot_ttl if ttl is None else ttl, reason)
        if self.scheduler is not None:
            asyncio.get_running_loop().create_task(self.apply_hot())

    def interval_of(self, job_id: str) -> float | None:
        job = self.scheduler.get_job(job_id, jobstore="default") if self.scheduler else None
        return job.trigger.interval.total_seconds() if job is not None else None

    # --- running ----------------------------------------------------------------------
    async def run(self, source: str, key: str) -> None:
        """One scheduled poll, counted as succeeded, failed or cut short by :meth:`stop`.

        Never raises for a failed poll: APScheduler would log a traceback per run.
        """
        if not self._serves(source, key):
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        t0 = time.monotonic()
        self.stats.runs += 1
        try:
            outcome = await self._poll(source, key)
        except asyncio.CancelledError:
            self.stats.interrupted += 1
            if not self._stopping or task is None:
                raise
            # Our own shutdown: expected, and the cursors already hold every page done.
            task.uncancel()
            log.debug("%s:%s cut short by shutdown after %.2fs", source, key,
                      time.monotonic() - t0)
            return
        except Exception as e:  # the collectors catch their own; this is a bug here
            self.stats.failures += 1
            name = type(e).__name__
            if name not in self._bugs_logged:  # once per kind, not once per run
                self._bugs_logged.add(name)
                log.exception("%s:%s: poll failed unexpectedly", source, key)
            return
        finally:
            if task is not None:
                self._inflight.discard(task)
        n, failed = outcome
        self.stats.published += n
        if failed:
            self.stats.failures += 1
        else:
            self.stats.ok += 1
        self.stats.by_key[key] = self.stats.by_key.get(key, 0) + n
        log.debug("%s:%s polled in %.2fs: %d new%s", source, key, time.monotonic() - t0, n,
                  " (failed)" if failed else "")

    def _serves(self, source: str, key: str) -> bool:
        """Whether this runtime has a collector for the job (a stale one may remain)."""
        if source == "rss":
            return self.rss is not None and key in self.feeds
        return self.weibo is not None and source == self.weibo.source

    async def _poll(self, source: str, key: str) -> tuple[int, bool]:
        """(published, failed) of one poll."""
        if source == "rss":
            assert self.rss is not None
            res = await self.rss.poll_all([self.feeds[key]])
            n = sum(v for v in res.values() if isinstance(v, int))
            return n, any(isinstance(v, str) for v in res.values())
        assert self.weibo is not None
        r: PollResult = await self.weibo.poll_account(key)
        return r.published, r.error is not None
