"""docker/live_feed.py, the compose stack's demo feed: backfill, then real time."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

from matrixwatch.collectors.simulator import TZ, Simulator, build_matrix
from matrixwatch.streams.weibo_time import parse_weibo_time

PATH = Path(__file__).resolve().parents[2] / "docker" / "live_feed.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("live_feed", PATH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_backfills_then_sends_what_becomes_due() -> None:
    feed = load().feed
    t0 = datetime(2026, 11, 20, 12, 0, tzinfo=TZ)
    clock = {"now": t0 + timedelta(hours=6)}
    sent: list[tuple[datetime, dict[str, object]]] = []
    ticks: list[float] = []

    def sleep(s: float) -> None:
        ticks.append(s)
        clock["now"] += timedelta(minutes=30)

    sim = Simulator(build_matrix(seed=7), seed=7, start=t0)
    n = feed(sim, lambda b: sent.append((clock["now"], json.loads(b))),
             now=lambda: clock["now"], sleep=sleep, stopped=lambda: False,
             duration=3 * 3600, log=lambda m: None)
    assert n == len(sent) > 100
    assert len(ticks) == 6  # 3 h of live ticks of 30 min
    backfill = [o for when, o in sent if when == t0 + timedelta(hours=6)]
    assert 0 < len(backfill) < n
    # nothing is sent before it happened (late deliveries only make it later)
    for when, obj in sent:
        assert parse_weibo_time(str(obj["created_at"]), when) <= when
