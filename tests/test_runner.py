"""`matrixwatch run`, the README's first command: it feeds, stores and shows results, and
stops feeding before the embedded broker (which keeps every record in memory) exhausts
the machine."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from matrixwatch.runner import MemoryCap, RestartBudget, SupervisedWorker


def test_the_cap_pauses_for_good_once_reached() -> None:
    readings = iter([100.0, 250.0, 300.0, 120.0])
    cap = MemoryCap(300.0, lambda: next(readings))
    assert cap.allows_feeding() and cap.allows_feeding()
    assert not cap.allows_feeding() and cap.reached and cap.last == 300.0
    assert not cap.allows_feeding()  # it never frees records: a lower reading is noise


def test_no_limit_or_no_reading_never_pauses() -> None:
    assert MemoryCap(0.0, lambda: 10**6).allows_feeding()
    unknown = MemoryCap(1.0, lambda: None)
    assert unknown.allows_feeding() and unknown.last is None


def test_the_restart_budget_slides_over_its_window() -> None:
    budget = RestartBudget(limit=2, window=60.0)
    assert budget.allow(0.0) and budget.allow(10.0)
    assert not budget.allow(30.0)  # a third crash within a minute: give up
    assert budget.allow(61.0)  # the first has left the window


class _FakeWorker:
    def __init__(self, n: int) -> None:
        self.n, self.exit_code = n, None

    @property
    def proc(self) -> Any:
        return self

    @property
    def returncode(self) -> int | None:
        return self.exit_code

    def alive(self) -> bool:
        return self.exit_code is None

    def tail(self) -> str:
        return f"log of worker {self.n}"

    def stop(self) -> None:
        self.exit_code = self.exit_code if self.exit_code is not None else 0


def test_a_crashed_worker_is_restarted_until_the_budget_is_spent() -> None:
    started: list[_FakeWorker] = []

    def start() -> Any:
        started.append(_FakeWorker(len(started)))
        return started[-1]

    now = [0.0]
    with SupervisedWorker(start, RestartBudget(limit=1, window=600.0), lambda: now[0]) as sup:
        assert sup.check() == (True, None)
        started[0].exit_code = -9
        running, msg = sup.check()
        assert running and msg is not None and "code -9" in msg and "restarted (1" in msg
        assert "log of worker 0" in msg and sup.current is started[1]
        now[0] = 5.0
        started[1].exit_code = 1
        running, msg = sup.check()
        assert not running and msg is not None and "giving up" in msg
        assert len(started) == 2  # not started a third time
    assert all(not w.alive() for w in started)


def _run_command(tmp_path: Path, seconds: float, **env: str
                 ) -> tuple[list[str], dict[str, str]]:
    """``matrixwatch run`` as the README runs it, with its data in ``tmp_path``/var and
    none of the caller's MW_ settings: (argv, environment)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MW_")}
    full.update(MW_DATA_DIR=str(tmp_path / "var"), COLUMNS="120", **env)
    return ([sys.executable, "-m", "matrixwatch", "run", "--duration", str(seconds),
             "--console-port", "0"], full)


def _run(tmp_path: Path, seconds: float, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                               int]:
    """``matrixwatch run`` in ``tmp_path``, to its end; (process, events stored)."""
    argv, full = _run_command(tmp_path, seconds, **env)
    res = subprocess.run(argv, cwd=tmp_path, env=full, capture_output=True, text=True,
                         timeout=180)
    store = tmp_path / "var" / "store.sqlite"
    with sqlite3.connect(store) as db:
        stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
    return res, stored


@pytest.mark.broker
def test_run_feeds_the_worker_and_shows_what_it_stored(tmp_path: Path) -> None:
    res, stored = _run(tmp_path, 20)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert stored > 0
    assert "produced" in res.stdout and "最新告警" in res.stdout
    assert "broker" in res.stdout and "MB" in res.stdout  # the embedded broker's memory
    assert "paused" not in res.stdout


@pytest.mark.broker
def test_run_pauses_the_feed_at_the_broker_memory_limit(tmp_path: Path) -> None:
    res, stored = _run(tmp_path, 10, MW_EMBEDDED_BROKER_MAX_MB="1")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "simulated feed paused" in res.stdout
    assert "MW_EMBEDDED_BROKER_MAX_MB" in res.stdout
    assert stored == 0  # nothing was sent: Tansu holds more than 1 MB from the start


@pytest.mark.broker
def test_run_restarts_a_killed_worker_and_goes_on_storing(tmp_path: Path) -> None:
    """kill -9 of `run`'s worker: it is started again, recovers, and events keep being
    stored; `run` still ends normally."""
    argv, full = _run_command(tmp_path, 300)
    runner = subprocess.Popen(argv, cwd=tmp_path, env=full, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    store = tmp_path / "var" / "store.sqlite"

    def stored() -> int:
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            return 0

    try:
        deadline = time.monotonic() + 40
        while stored() == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        before = stored()
        assert before > 0, "nothing stored before the kill"
        workers = subprocess.run(["pgrep", "-P", str(runner.pid), "-f", "matrixwatch worker"],
                                 capture_output=True, text=True).stdout.split()
        assert len(workers) == 1, workers
        os.kill(int(workers[0]), signal.SIGKILL)
        deadline = time.monotonic() + 120
        while stored() <= before and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.5)
        after = stored()
        runner.send_signal(signal.SIGINT)  # `run` stops on Ctrl-C
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out[-3000:]
    assert "worker exited with code -9; restarted (1 so far)" in out
    assert after > before, out[-3000:]


@pytest.mark.broker
def test_run_warns_and_goes_on_when_its_console_port_is_taken(tmp_path: Path) -> None:
    """The user audit: with another program on --console-port, `run` printed a console
    link (to that program) and the only trace of its own console's failure was in
    var/console.log. Now: a one-line warning with the way out, no link, and the pipeline
    runs and stores as before."""
    import socket

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    argv, full = _run_command(tmp_path, 4)
    argv[argv.index("--console-port") + 1] = str(port)
    try:
        res = subprocess.run(argv, cwd=tmp_path, env=full, capture_output=True, text=True,
                             timeout=180)
    finally:
        held.close()
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert (f"值班台 console not started: port {port} on 127.0.0.1 is already in use" in out
            and "--console-port 0 for none" in out), out[-3000:]
    assert "http://127.0.0.1" not in out
    assert "produced" in res.stdout
    assert not (tmp_path / "var" / "console-users.yaml").exists()  # first-run token kept


def test_the_live_view_shows_the_latest_stored_alert_first(tmp_path: Path) -> None:
    """A second `run` in the same checkout: the store keeps the first run's rows, dated
    ahead (the simulated clock runs fast), and they stayed on top of 最新告警 by event
    time."""
    import asyncio

    from rich.console import Console

    from matrixwatch.runner import _view
    from matrixwatch.streams.records import Alert
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "store.sqlite")

    def alert(n: int, when: str) -> Alert:
        return Alert(id=f"a{n}", rule="keyword_watchlist", type="keyword", severity="yellow",
                     timestamp=when, message=f"message {n}")

    async def fill() -> None:
        await store.write_alerts([alert(1, "2026-12-20T10:00:00+08:00")])  # earlier run
        await store.write_alerts([alert(2, "2026-12-06T10:00:00+08:00")])  # this run
    asyncio.run(fill())
    out = Console(record=True, width=200)
    out.print(_view(store, produced=0, current_lag=None, started=time.monotonic() - 10,
                    stored_before=0))
    text = out.export_text()
    assert text.index("message 2") < text.index("message 1")
    store.close_sync()
