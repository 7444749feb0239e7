"""Linkage at matrix scale: 10,000 accounts, 2,000 open tasks, 1,000,000 repost events.

Folds every event into its task container exactly as the linkage agent does, including
one JSON encoding per changed container per batch (what the table's changelog costs), then
closes every task. Prints events/s and peak memory (max RSS of this process). It measures
the linkage logic and its state, not the broker (bench/pipeline_bench.py does that).

    python bench/linkage_bench.py [--accounts 10000 --tasks 2000 --events 1000000]
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import sys
import time
from datetime import datetime, timedelta, timezone

import orjson

from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import LinkageTracker
from matrixwatch.streams.records import Event

CST = timezone(timedelta(hours=8))


def build(accounts: int, cities: int) -> Registry:
    rows = [{"id": "1", "platform": "weibo", "name": "省发布", "level": "province"}]
    rows += [{"id": f"2{c:04d}", "platform": "weibo", "name": f"市{c}", "level": "city",
              "parent": "1"} for c in range(cities)]
    for i in range(accounts - 1 - cities):
        rows.append({"id": f"3{i:06d}", "platform": "weibo", "name": f"县{i}",
                     "level": "county", "parent": f"2{i % cities:04d}",
                     "active": i % 50 != 0})
    return Registry.from_dict({"accounts": rows})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--cities", type=int, default=100)
    ap.add_argument("--tasks", type=int, default=2_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=256, help="events per agent batch")
    args = ap.parse_args()
    rng = random.Random(1)
    registry = build(args.accounts, args.cities)
    tracker = LinkageTracker(registry)
    t0 = datetime(2026, 11, 1, 8, tzinfo=CST)
    posts = []
    for k in range(args.tasks):
        author = f"2{k % args.cities:04d}"
        created = (t0 + timedelta(minutes=k)).isoformat()
        posts.append((f"9{k:08d}", author, created,
                      registry.subordinates("weibo", author)))
    events: list[Event] = []
    for pid, author, created, _ in posts:
        events.append(Event(platform="weibo", id=pid, kind="post", account_id=author,
                            owner_id=author, text="通知", created_at=created,
                            collected_at=created))
    all_ids = [a.id for a in registry.all()]
    for n in range(args.events - len(events)):
        pid, author, created, subs = posts[rng.randrange(len(posts))]
        who = rng.choice(subs) if subs and rng.random() < 0.9 else rng.choice(all_ids)
        t = (datetime.fromisoformat(created) + timedelta(seconds=rng.expovariate(1 / 7200))
             ).isoformat()
        events.append(Event(platform="weibo", id=f"r{n}", kind="repost", account_id=who,
                            owner_id=author, text="转发微博", created_at=t, collected_at=t,
                            root_id=pid, root_account_id=author, root_created_at=created))
    print(f"{len(registry):,} accounts, {len(posts):,} tasks "
          f"(mean expected {sum(len(p[3]) for p in posts) / len(posts):.0f}), "
          f"{len(events):,} events; generated", flush=True)

    boxes: dict[str, object] = {}
    changelog_bytes = 0
    dirty: set[str] = set()
    start = time.perf_counter()
    for i, e in enumerate(events):
        for key in tracker.route(e):
            box, changed = tracker.apply_changed(boxes.get(key), e, key)  # type: ignore[arg-type]
            boxes[key] = box
            if changed:
                dirty.add(key)
        if i % args.batch == args.batch - 1 or i == len(events) - 1:
            # As the agent: each changed container is written once per batch.
            changelog_bytes += sum(len(orjson.dumps(boxes[k])) for k in dirty)
            dirty.clear()
    fold = time.perf_counter() - start
    closed = sum(len(tracker.close_due(b, math.inf)) for b in boxes.values() if b)  # type: ignore[arg-type]
    total = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fold: {len(events) / fold:,.0f} events/s ({fold:.1f}s); with closing: "
          f"{len(events) / total:,.0f} events/s; {closed:,} tasks closed")
    print(f"changelog volume: {changelog_bytes / 1e9:.2f} GB ({changelog_bytes / len(events):,.0f}"
          f" B/event); peak RSS: {peak_mb:,.0f} MB (includes the generated events)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
