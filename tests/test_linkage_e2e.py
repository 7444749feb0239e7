"""Linkage end to end through the embedded broker, on a generated matrix.

The simulator's feed has out-of-order deliveries, repost chains (pid, //@), reposts after
the deadline, inactive and non-subordinate accounts; the test adds duplicated lines. Every
task in linkage.jsonl must equal the reference computation over the same input, and a
worker killed with SIGKILL mid-replay must give byte-identical outputs after a restart.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from matrixwatch.broker import bootstrap_of
from matrixwatch.collectors.simulator import Simulator, build_matrix, write_registry
from matrixwatch.pipeline import ReplaySession, probe_for
from matrixwatch.settings import Settings
from tests.faults.harness import AS_OF, reference_tasks

pytestmark = pytest.mark.broker

N_EVENTS = 3000


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    tmp = tmp_path_factory.mktemp("linkage")
    matrix = build_matrix(seed=3)
    reg = tmp / "matrix.yaml"
    write_registry(reg, matrix)
    sim = Simulator(matrix, seed=3, activity=3.0)
    lines = [json.dumps(o, ensure_ascii=False).encode() for o in sim.events(N_EVENTS)]
    rng = random.Random(5)
    dup = [line for line in lines for _ in range(2 if rng.random() < 0.05 else 1)]
    return reg, dup


def tasks(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(x) for x in (out / "linkage.jsonl").read_text().splitlines()]
    return {r["post_id"]: {"expected": r["expected"], "linked": r["linked"], "rate": r["rate"]}
            for r in rows}


def settings() -> Settings:
    return Settings(partitions=4)


def run(reg: Path, lines: list[bytes], out: Path, *, kill_midway: bool = False) -> None:
    with ReplaySession(reg, out, settings()) as s:
        half = len(lines) // 2
        s.feed((AS_OF, x) for x in lines[:half])
        if kill_midway:
            # Mid-stream and after offsets were committed: the restarted worker must
            # take its state from the changelogs, not from reprocessing everything.
            probe = probe_for(bootstrap_of(s.url))
            raw = s.settings.topic("raw")
            deadline = time.monotonic() + 120
            while probe.committed(s.settings.app_id, raw) < half // 4:
                assert time.monotonic() < deadline, "worker committed no progress"
                time.sleep(0.1)
            s.restart_worker(kill=True)
        s.feed((AS_OF, x) for x in lines[half:])
        s.finish(timeout=600)
    s.export()
    if s.stall_restarts:  # visible in the test log: Tansu's group stall, healed
        print(f"watchdog restarts: {s.stall_restarts}")


@pytest.fixture(scope="module")
def uninterrupted(feed: tuple[Path, list[bytes]], tmp_path_factory: pytest.TempPathFactory,
                  ) -> Path:
    reg, lines = feed
    out = tmp_path_factory.mktemp("plain")
    run(reg, lines, out)
    return out


def test_every_task_equals_the_reference(feed: tuple[Path, list[bytes]],
                                         uninterrupted: Path) -> None:
    reg, lines = feed
    want = reference_tasks(reg, lines)
    got = tasks(uninterrupted)
    assert len(want) >= 20, "the scenario must open a real number of tasks"
    assert sum(len(t["linked"]) for t in want.values()) > 0
    assert any(0 < t["rate"] < 1 for t in want.values())
    assert got == want


def test_kill_9_mid_replay_gives_identical_outputs(
    feed: tuple[Path, list[bytes]], uninterrupted: Path, tmp_path: Path
) -> None:
    reg, lines = feed
    run(reg, lines, tmp_path, kill_midway=True)
    for name in ("linkage.jsonl", "events.jsonl", "alerts.jsonl"):
        assert (tmp_path / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    distinct = len({json.loads(x)["id"] for x in (tmp_path / "events.jsonl").open()})
    assert distinct == sum(1 for _ in (tmp_path / "events.jsonl").open())
