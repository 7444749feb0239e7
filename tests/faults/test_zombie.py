"""A frozen worker comes back after the group moved on (a zombie), then a restart from
the changelogs.

Workers ``a`` and ``b`` split the partitions. ``b`` is frozen (SIGSTOP: a long GC pause,
a VM stall) mid-stream, long enough for its session to expire, so ``a`` takes over its
partitions and goes on from ``b``'s last committed offsets with the state in the
changelogs. Then ``b`` is resumed: its timers and batches pick up where they stopped,
with state and an assignment the group no longer gives it. After the input is drained
both stop and a fresh worker ``c`` recovers every table from the changelogs and takes
the rest of the input.

What must hold: each distinct valid input stored once, every linkage task and alert
equal to the offline reference, nothing dead-lettered. Records ``b`` wrote to the
changelogs after it was resumed would be read by ``c``'s recovery over ``a``'s newer
ones, and show as missing or different alerts.

Measured: without the fence (``writebehind.fenced``) this failed 3 runs of 3. The resumed
``b`` flushed its stale linkage tasks in the commit of its revocation, and ``c`` then
lacked reposts ``a`` had linked (a task at rate 0.17 instead of 0.33). With the fence
alone, 4 of 4 passed: ``b``'s heartbeat learned of the eviction before its commit ran.
In later runs the commit ran first, before the heartbeat's answer and before the loop's
next beat; the stall check (``writebehind.Liveness``: 12.8 s between beats, session
timeout 6 s) skipped that flush and 1-4 more, and those runs passed too.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.harness import Cluster, Watchdog, simulated_feed, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.faults]

EVENTS = 2000
PARTITIONS = 4
TOPICS = 7


def test_a_resumed_zombie_worker_corrupts_nothing(tmp_path: Path) -> None:
    registry, lines = simulated_feed(tmp_path / "sim", EVENTS)
    all_parts = TOPICS * PARTITIONS
    first, second = EVENTS * 2 // 5, EVENTS * 7 // 10
    with Cluster(tmp_path, registry, partitions=PARTITIONS) as c:
        on_stall = Watchdog(c)
        c.start_split("a", "b")
        c.feed(lines[:first])
        wait_for(lambda: c.counts()["events"] >= first // 3, 90, "mid-stream")
        pid = c.workers["b"].proc.pid
        os.kill(pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            c.feed(lines[first:second])
            takeover = wait_for(lambda: len(c.assigned("a")) == all_parts, 60,
                                "a owns every partition")
            time.sleep(3.0)  # a is processing b's former partitions
        finally:
            os.kill(pid, signal.SIGCONT)
        print(f"\nb frozen {time.monotonic() - frozen:.1f}s; a took over after "
              f"{takeover:.1f}s")
        c.drain(timeout=240, on_stall=on_stall, stall_after=30.0)
        logs_b = c.log("b")
        c.stop_all()
        c.start_worker("c")
        c.wait_ready("c")
        c.feed(lines[second:])
        c.finish(timeout=240, on_stall=on_stall, stall_after=30.0)
        out = c.outputs()
    print(f"b after the resume: flush skipped {logs_b.count('not flushing')}x, commit "
          f"skipped {logs_b.count('offset commit skipped')}x; watchdog restarts: "
          f"{on_stall.restarts or 'none'}")
    on_stall.warn()
    out.assert_exact(registry, lines)
