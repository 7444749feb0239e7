"""Poison messages: each goes to the DLQ with its reason and its partition keeps moving.

One worker, four partitions. Every partition of ``mw-raw`` starts and ends with a poison
line, and a short run of good lines is sent once per position with a poison line at
that position (0 … K), so poison sits first, in the middle and last of partitions and
of runs. The twelve poison kinds cover what the normalizer must refuse: broken JSON,
invalid UTF-8, NUL, deep nesting, non-objects, envelopes, missing or mistyped fields,
bad times, a bad normalized kind, an oversized line and an oversized text.

Two more send event times that used to pass the normalizer and fail downstream: year 1
at +14:00 (the periodic sweep crashed the worker formatting it) and year 9999 (it moved
the linkage watermark and closed open tasks). Both are dead-lettered by the normalizer now.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from matrixwatch.pipeline import owner_key
from tests.factories import T0, status
from tests.faults.harness import Cluster, partition_of, simulated_feed, valid_ids

pytestmark = [pytest.mark.broker, pytest.mark.faults]

PARTITIONS = 4
LINE_CAP = 32 * 1024  # MW_MAX_LINE_BYTES of the worker
TEXT_CAP = 8 * 1024  # MW_MAX_TEXT_BYTES
RUN = 6  # good lines per run; one run per poison position 0..RUN

_T = "Sat Nov 21 10:00:00 +0800 2026"


def _j(o: Any) -> bytes:
    return json.dumps(o, ensure_ascii=False).encode()


# (kind, line, the start of the DLQ reason it must get)
POISONS: list[tuple[str, bytes, str]] = [
    ("broken json", b'{"id": 1, "text": "broken', "json: "),
    ("invalid utf-8", b'{"id": 5000000997, "text": "\xff\xfe bad"}', "invalid utf-8 at byte"),
    ("nul byte", b"\x00", "json: "),
    ("deep nesting", b"[" * 3000 + b"]" * 3000, "json: "),
    ("not an object", b"[1, 2, 3]", "not an object"),
    ("envelope", b'{"statuses": [], "total_number": 0}', "unknown object shape"),
    ("missing user", _j({"id": 5000000996, "created_at": _T, "text": "无用户"}),
     "missing field: user"),
    ("mistyped id", _j({"id": {"x": 1}, "created_at": _T, "text": "t", "user": {"id": 1}}),
     "wrong type: id"),
    ("bad time", _j({"id": 5000000995, "created_at": "Sat Nov 99 99:00:00 +0800 2026",
                     "text": "t", "user": {"id": 1}}), "bad time: created_at"),
    ("bad normalized kind", _j({"platform": "weibo", "id": "5000000994", "kind": "like",
                                "account_id": "1", "owner_id": "1", "text": "t",
                                "created_at": "2026-11-21T10:00:00+08:00"}), "bad kind"),
    ("line too large", b'{"id": 5000000993, "text": "' + b"a" * LINE_CAP + b'"}',
     "line too large"),
    ("text too large", _j({"id": 5000000992, "created_at": _T, "text": "长" * TEXT_CAP,
                           "user": {"id": 1}}), "text too large"),
]


def run_lines(i: int) -> list[bytes]:
    """RUN good statuses with ids unique to run ``i`` (so each run is checked on its own)."""
    return [_j(status(6100000000 + i * 100 + j, "8000000001", T0 + timedelta(minutes=j),
                      f"第{i}组第{j}条")) for j in range(RUN)]


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("poison")
    registry, feed = simulated_feed(root / "sim", 400)
    sent: list[tuple[str, str, int, Any]] = []  # (kind, reason prefix, partition, future)
    poison = iter(POISONS * 4)

    def send_poison(c: Cluster, p: int) -> None:
        kind, line, reason = next(poison)
        sent.append((kind, reason, p, c.send(line, p)))

    with Cluster(root, registry, partitions=PARTITIONS, env={
        "MW_MAX_LINE_BYTES": str(LINE_CAP), "MW_MAX_TEXT_BYTES": str(TEXT_CAP),
    }) as c:
        c.start_worker("w")
        for p in range(PARTITIONS):  # first message of every partition
            send_poison(c, p)
        goods: list[bytes] = []
        for line in feed:
            c.send(line, partition_of(owner_key(line), PARTITIONS))
            goods.append(line)
        for i in range(RUN + 1):  # poison at position i of run i
            good = run_lines(i)
            p = i % PARTITIONS
            for line in good[:i]:
                c.send(line, p)
            send_poison(c, p)
            for line in good[i:]:
                c.send(line, p)
            goods += good
        for p in range(PARTITIONS):  # last message of every partition
            send_poison(c, p)
        c.feeder.flush()
        offsets = [(k, r, p, f.get(timeout=30).offset) for k, r, p, f in sent]
        c.finish(timeout=240)
        alive = c.workers["w"].alive()
        log = c.log("w")
        events = c.rows("events")
        letters = c.rows("dead_letters")
    return {"goods": goods, "offsets": offsets, "alive": alive, "log": log,
            "events": events, "letters": letters}


def test_every_poison_is_dead_lettered_with_its_reason(poisoned: dict[str, Any]) -> None:
    letters = {(d["source"], d["offset"]): d for d in poisoned["letters"]}
    for kind, reason, p, offset in poisoned["offsets"]:
        d = letters.get((f"mw-raw/{p}", offset))
        assert d is not None, f"{kind} at mw-raw/{p}@{offset} is not in the DLQ"
        assert d["reason"].startswith(reason), (kind, d["reason"])
        assert d["payload"], kind  # the payload (head) is kept for the operator
    assert len(poisoned["letters"]) == len(poisoned["offsets"])  # nothing else rejected
    kinds = Counter(k for k, *_ in poisoned["offsets"])
    assert set(kinds) == {k for k, *_ in POISONS}


def test_the_partitions_keep_moving(poisoned: dict[str, Any]) -> None:
    """Every good line, before and after each poison, is stored exactly once."""
    ids = [e["id"] for e in poisoned["events"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == valid_ids(poisoned["goods"])
    for i in range(RUN + 1):  # the lines right after the poison of run i are there too
        assert {str(6100000000 + i * 100 + j) for j in range(RUN)} <= set(ids)


def test_the_worker_never_crashed(poisoned: dict[str, Any]) -> None:
    assert poisoned["alive"]
    log = poisoned["log"]
    assert "crashed" not in log.lower() and "Traceback" not in log, log[-3000:]


# ------------------------------------------------------------------- downstream poison


def _quiet_accounts(registry: Path, feed: list[bytes]) -> list[str]:
    """Active registered accounts that never author anything in the feed."""
    import yaml

    authors = set()
    for line in feed:
        o = json.loads(line)
        authors.add(str(o["user"]["id"]))
    accounts = yaml.safe_load(registry.read_text(encoding="utf-8"))["accounts"]
    return sorted(a["id"] for a in accounts
                  if a.get("active", True) and a["platform"] == "weibo" and a["id"] not in authors)


def test_a_poison_that_fails_downstream(tmp_path: Path) -> None:
    """Year 1 at +14:00 for a quiet registered account: accepted, it became the account's
    last post and the stale_account sweep (to_local: year 0) crashed the periodic_sweep
    timer, so the worker exited, and again after each restart (the state is changelogged).
    Now the normalizer refuses it, and to_local and the timer no longer raise anyway."""
    registry, feed = simulated_feed(tmp_path / "sim", 200)
    quiet = _quiet_accounts(registry, feed)
    assert quiet, "the scenario needs a registered account with no posts"
    poison = _j({"platform": "weibo", "id": "5000000777", "kind": "post",
                 "account_id": quiet[0], "owner_id": quiet[0], "text": "year one",
                 "created_at": "0001-01-01T00:00:00+14:00"})
    with Cluster(tmp_path, registry, partitions=PARTITIONS,
                 env={"MW_SWEEP_INTERVAL": "1"}) as c:
        c.start_worker("w")
        c.feed(feed[:100])
        c.feed([poison])
        c.feed(feed[100:])
        finished = True
        try:
            c.finish(timeout=90)
            time.sleep(3)  # a few periodic sweeps (MW_SWEEP_INTERVAL=1)
        except RuntimeError:
            finished = False
        alive = c.workers["w"].alive()
        log = c.log("w")
        ids = {e["id"] for e in c.rows("events")}
        letters = c.rows("dead_letters")
    problems = []
    if not finished or not alive:
        problems.append(f"worker alive={alive}, drained={finished}")
    if ids != valid_ids(feed) | {"5000000777"} and not any(
            "5000000777" in d["payload"] for d in letters):
        problems.append("the poison is neither stored nor dead-lettered")
    lost = valid_ids(feed) - ids
    if lost:
        problems.append(f"{len(lost)} good events lost")
    if "year 0 is out of range" in log or "Crashed" in log:
        problems.append("year 0 error or a crash in the worker log")
    if [d["reason"].split(":", 2)[:2] for d in letters if "5000000777" in d["payload"]] \
            != [["bad time", " created_at"]]:
        problems.append(f"dead letters: {[(d['source'], d['reason']) for d in letters]}")
    assert not problems, problems


def test_a_far_future_date_does_not_close_other_tasks(tmp_path: Path) -> None:
    """A netizen's repost of p1 dated year 9999 used to move the linkage watermark (max
    event time - lateness) to 9999, closing p1 with {A} at once; B's repost then opened a
    new task and was lost from p1's result. It is dead-lettered by the normalizer now."""
    from tests.factories import REGISTRY_YAML, repost

    prov, a, b = "9100000001", "9100000011", "9100000012"
    registry = tmp_path / "matrix.yaml"
    registry.write_text(REGISTRY_YAML, encoding="utf-8")
    p1 = status(5000000001, prov, T0, "关于做好今冬明春防汛工作的通知")
    r_a = repost(5000000101, a, T0 + timedelta(minutes=30), p1)
    r_b = repost(5000000102, b, T0 + timedelta(hours=2), p1)
    future = repost(5000000888, "8000000002", T0, p1, "来自未来的转发")  # any netizen
    future["created_at"] = "Fri Dec 31 10:00:00 +0800 9999"
    with Cluster(tmp_path, registry, partitions=PARTITIONS) as c:
        c.start_worker("w")
        c.feed([_j(p1), _j(r_a)])
        c.drain(90)
        c.feed([_j(future)])
        c.drain(90)
        c.feed([_j(r_b)])
        c.finish(90)
        tasks = {t["post_id"]: t for t in c.rows("linkage")}
        letters = c.rows("dead_letters")
    problems = []
    if "5000000001" not in tasks or set(tasks["5000000001"]["linked"]) != {a, b}:
        problems.append(f"p1 linked: {tasks.get('5000000001', {}).get('linked')}")
    if not any("5000000888" in d["payload"] and d["source"].startswith("mw-raw/")
               and d["reason"].startswith("bad time: created_at: more than")
               for d in letters):
        problems.append("the year-9999 status was not dead-lettered by the normalizer")
    if any(d["source"].startswith("linkage:") for d in letters):
        problems.append("a linkage batch was quarantined")
    assert not problems, problems
