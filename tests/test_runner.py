"""`matrixwatch run`, the README's first command: it feeds, stores and shows results, and
stops feeding before the embedded broker (which keeps every record in memory) exhausts
the machine."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from matrixwatch.runner import MemoryCap


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


def _run(tmp_path: Path, seconds: float, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                               int]:
    """``matrixwatch run`` as the README runs it, in ``tmp_path``; (process, events stored)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MW_")}
    full.update(MW_DATA_DIR=str(tmp_path / "var"), COLUMNS="120", **env)
    res = subprocess.run(
        [sys.executable, "-m", "matrixwatch", "run", "--duration", str(seconds),
         "--console-port", "0"],
        cwd=tmp_path, env=full, capture_output=True, text=True, timeout=180)
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
