"""`matrixwatch run`: the long-running main job on the embedded default.

Starts the broker (unless MW_KAFKA_URL is set), a Faust worker process and the
simulated matrix feed, and shows live results from the store until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from matrixwatch.broker import running_broker
from matrixwatch.pipeline import Feeder, WorkerProcess, close_probes, lag, prepare_topics
from matrixwatch.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
SEVERITY_STYLE = {"blue": "blue", "yellow": "yellow", "orange": "dark_orange", "red": "bold red"}


def default_broker_cap_mb() -> float:
    """A quarter of physical memory, MB."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 4 / 2**20


@dataclass
class MemoryCap:
    """Pauses the feed for good once the broker's memory reaches ``limit_mb`` (0: never):
    the embedded broker never frees a record, so it would not come back down."""

    limit_mb: float
    read: Callable[[], float | None]  # the broker's resident MB, None if unknown
    last: float | None = None
    reached: bool = False

    def allows_feeding(self) -> bool:
        self.last = self.read()
        if self.limit_mb and self.last is not None and self.last >= self.limit_mb:
            self.reached = True
        return not self.reached


@dataclass
class RestartBudget:
    """At most ``limit`` restarts of a crashed worker within ``window`` seconds. A worker
    that dies once (OOM kill, a crash) is restarted and recovers its state from the
    changelogs; one that dies on every start (bad settings, a bug) must stop ``run`` with
    its log instead of looping."""

    limit: int = 5
    window: float = 600.0
    times: list[float] = field(default_factory=list)

    def allow(self, now: float) -> bool:
        self.times = [t for t in self.times if now - t < self.window]
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


class SupervisedWorker:
    """The worker process of ``run``, started again when it exits (within the budget)."""

    def __init__(self, start: Callable[[], WorkerProcess],
                 budget: RestartBudget | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.start, self.budget, self.clock = start, budget or RestartBudget(), clock
        self.current: WorkerProcess | None = None
        self.restarts = 0

    def __enter__(self) -> SupervisedWorker:
        self.current = self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.current is not None:
            self.current.stop()

    def check(self) -> tuple[bool, str | None]:
        """(running, what happened): (True, None) while the worker runs; (True, message)
        after a restart; (False, message) when the budget is spent."""
        w = self.current
        if w is None or w.alive():
            return True, None
        code = w.proc.returncode
        tail = w.tail()
        if not self.budget.allow(self.clock()):
            return False, (f"worker exited with code {code} after {self.budget.limit} "
                           f"restarts within {self.budget.window / 60:.0f} min: giving up"
                           f"\n{tail}")
        self.current = self.start()
        self.restarts += 1
        return True, (f"worker exited with code {code}; restarted ({self.restarts} so far): "
                      f"its state comes back from the changelogs first\n{tail}")


def shanghai(ts: str) -> str:
    """Times shown to people are Asia/Shanghai."""
    return datetime.fromisoformat(ts).astimezone(SHANGHAI).strftime("%m-%d %H:%M:%S")


def _view(store: object, produced: int, current_lag: dict[str, int] | None,
          started: float, broker_mb: float | None = None, stored_before: int = 0) -> Group:
    """The live view. Rates count this run's events only, and "latest" means latest
    stored (rowid), not latest event time: the store keeps earlier runs, whose simulated
    clock ran ahead of this one's, so their rows would stay on top by time."""
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    assert isinstance(store, SQLiteStore)
    c = store.counts()
    elapsed = max(time.monotonic() - started, 1e-9)
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"produced [bold]{produced:,}[/]", f"stored [bold]{c['events']:,}[/]",
        f"alerts [bold]{c['alerts']:,}[/]", f"closed tasks [bold]{c['linkage']:,}[/]",
        f"dead letters [bold]{c['dead_letters']:,}[/]",
        f"lag [bold]{sum(current_lag.values()) if current_lag else '-'}[/]",
        f"{(c['events'] - stored_before) / elapsed:,.0f} ev/s",
        *([f"broker [bold]{broker_mb:,.0f}[/] MB"] if broker_mb is not None else []),
    )
    alerts = Table("时间 (Asia/Shanghai)", "级别", "规则", "内容", expand=True)
    for (doc,) in store.query("SELECT doc FROM alerts ORDER BY rowid DESC LIMIT 8"):
        a = json.loads(doc)
        alerts.add_row(shanghai(a["timestamp"]), f"[{SEVERITY_STYLE[a['severity']]}]"
                       f"{a['severity']}[/]", a["rule"], a.get("message", "")[:90])
    neg = Table("时间", "账号", "负面内容", expand=True)
    for (doc,) in store.query(
        "SELECT doc FROM events WHERE sentiment_label='negative' ORDER BY rowid DESC LIMIT 6"
    ):
        e = json.loads(doc)
        neg.add_row(shanghai(e["created_at"]), e.get("account_name") or e["account_id"],
                    e["text"][:80])
    return Group(Panel(head, title="matrixwatch"), Panel(alerts, title="最新告警"),
                 Panel(neg, title="负面动态"))


def run_main(settings: Settings, *, rate: float, duration: float = 0.0,
             console_port: int = 8080) -> int:
    from matrixwatch.collectors.simulator import Simulator, build_matrix, write_registry
    from matrixwatch.dashboards.console.process import running_console
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.registry is None:
        matrix = build_matrix()
        reg_path = settings.data_dir / "matrix.yaml"
        write_registry(reg_path, matrix)
        settings = settings.model_copy(update={"registry": reg_path})
    else:
        matrix = None
    stop = {"flag": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    from apscheduler.schedulers.background import BackgroundScheduler

    from matrixwatch.reports.linkage_jobs import add_jobs

    scheduler = BackgroundScheduler(timezone=SHANGHAI)
    add_jobs(scheduler, settings)  # daily and weekly linkage reports
    scheduler.start()
    with running_broker(settings.kafka_url, settings.data_dir / "broker.log") as (url, broker):
        limit = (settings.embedded_broker_max_mb if settings.embedded_broker_max_mb is not None
                 else default_broker_cap_mb())
        cap = MemoryCap(limit if broker is not None else 0.0,
                        broker.rss_mb if broker is not None else lambda: None)
        prepare_topics(settings, url)
        # The simulated clock starts now and runs ahead of the wall clock (~800x at the
        # default rate): the worker's far-future guard would refuse the feed within minutes.
        with SupervisedWorker(lambda: WorkerProcess.start(
                settings, url, settings.data_dir / "worker.log", MW_MAX_FUTURE_SKEW="inf",
        )) as worker, running_console(settings, console_port) as console:
            feeder = Feeder(settings, url)
            store = SQLiteStore(settings.store_path)
            stored_before = store.counts()["events"]
            sim = Simulator(matrix or build_matrix(), start=datetime.now(tz=SHANGHAI))
            feed = sim.events()
            produced, started, next_view = 0, time.monotonic(), 0.0
            current_lag: dict[str, int] | None = None
            with Live(refresh_per_second=2, transient=False) as live:
                # Its link (a new token shown once, on the first run only) and how to log
                # in, or why there is no console: the pipeline runs on either way.
                if console.notice:
                    live.console.print(console.notice if console.ok
                                       else f"[yellow]{escape(console.notice)}[/]",
                                       markup=not console.ok, soft_wrap=True)
                while not stop["flag"]:
                    now = time.monotonic()
                    if duration and now - started > duration:
                        break
                    if (gone := console.check()) is not None:
                        live.console.print(f"[yellow]{escape(gone)}[/]", soft_wrap=True)
                    running, happened = worker.check()
                    if happened is not None:
                        live.console.print(f"[red]{escape(happened)}[/]")
                    if not running:
                        close_probes()
                        return 1
                    due = int((now - started) * rate) - produced
                    for _ in range(max(due, 0) if not cap.reached else 0):
                        feeder.send_raw(json.dumps(next(feed), ensure_ascii=False).encode())
                        produced += 1
                    if now >= next_view:
                        feeder.flush()
                        if not cap.reached and not cap.allows_feeding():
                            live.console.print(
                                f"[yellow]simulated feed paused: the embedded broker holds "
                                f"{cap.last:,.0f} MB (limit {cap.limit_mb:,.0f} MB, "
                                "MW_EMBEDDED_BROKER_MAX_MB). It keeps every record in memory "
                                "and cannot trim them. The worker goes on with what was "
                                "sent; for long runs set MW_KAFKA_URL.[/]")
                        current_lag = lag(settings, url)
                        live.update(_view(store, produced, current_lag, started, cap.last,
                                          stored_before))
                        next_view = now + 1.0
                    time.sleep(0.05)
            feeder.close()
            store.close_sync()
            close_probes()
    scheduler.shutdown(wait=False)
    return 0
