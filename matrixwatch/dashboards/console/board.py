"""The matrix board's read model: pure functions over store reads and the registry.

The pipeline stores only *closed* linkage tasks (the stream keeps open ones in a Faust
table). The board therefore derives open tasks from the store, with the stream's own
definitions (DESIGN.md "Linkage") and the same deadline policy:

* a task is an original post (kind=post) by an account that has subordinates in the
  registry, on a repost platform (content platforms such as WeChat are matched by text in
  the stream and are not derived here);
* its deadline is created_at + the deadline for that account or level
  (``LinkageTracker.deadline_for``, MW_LINKAGE_DEADLINE by default 24 h); it is *open* while
  the deadline is after the reference time and the pipeline has not closed it (a finite
  replay closes every task at its end: the store's record then wins);
* expected = the active subordinates when the post was published (MW_LINKAGE_DEPTH);
  linked = the distinct expected subordinates that published a repost whose root is the
  post, at or before the deadline, counted once at the earliest.

The reference time is the latest event time in the store by default ("event clock", so a
replay of last month shows last month's countdowns) or the wall clock (``clock="wall"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from matrixwatch.registry import Registry
from matrixwatch.reports.measures import compute as compute_measures
from matrixwatch.streams.linkage import LinkagePolicy, LinkageTracker
from matrixwatch.streams.records import Account, epoch

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 86400.0


def iso(ts: float | None) -> str | None:
    """Epoch → ISO-8601 in Asia/Shanghai (what people read; the offset keeps it exact)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).astimezone(SHANGHAI).isoformat()


def reference_time(latest_event: float | None, clock: str, now: float) -> float:
    if clock == "wall" or latest_event is None:
        return now
    return latest_event


def who(registry: Registry, platform: str, account_id: str) -> dict[str, Any]:
    acc = registry.get(platform, account_id)
    return {"id": account_id, "name": acc.name if acc else account_id,
            "unit": acc.unit if acc else None, "level": acc.level if acc else None}


def superiors(registry: Registry, policy: LinkagePolicy) -> list[tuple[str, str]]:
    """Accounts that open tasks: those with subordinates, on repost platforms."""
    return sorted({(a.platform, a.parent) for a in registry.all()
                   if a.parent is not None and a.platform not in policy.content_platforms})


def max_deadline(policy: LinkagePolicy) -> float:
    return max([policy.deadline, *policy.level_deadlines.values(),
                *policy.account_deadlines.values()])


@dataclass
class OpenTasks:
    tasks: list[dict[str, Any]]
    closed_elsewhere: int  # posts in the window that the pipeline already closed


def open_tasks(registry: Registry, policy: LinkagePolicy, posts: Iterable[dict[str, Any]],
               reposts: Iterable[dict[str, Any]], closed: set[tuple[str, str]],
               ref: float) -> OpenTasks:
    """Open linkage tasks at ``ref`` with progress, countdown and laggards (see module doc).

    Most urgent (nearest deadline) first.
    """
    tracker = LinkageTracker(registry, policy)
    earliest: dict[tuple[str, str], dict[str, float]] = {}
    for r in reposts:
        t = epoch(r["created_at"])
        by = earliest.setdefault((r["platform"], r["root_id"]), {})
        if r["account_id"] not in by or t < by[r["account_id"]]:
            by[r["account_id"]] = t
    out: list[dict[str, Any]] = []
    skipped = 0
    for p in posts:
        platform, pid, author = p["platform"], p["id"], p["account_id"]
        if (platform, pid) in closed:
            skipped += 1
            continue
        acc = registry.get(platform, author)
        if acc is None:
            continue
        t0 = epoch(p["created_at"])
        deadline = t0 + tracker.deadline_for(author, acc.level)
        if deadline <= ref or t0 > ref:
            continue
        expected = registry.subordinates(platform, author, at=t0, depth=policy.depth)
        if not expected:
            continue
        seen = earliest.get((platform, pid), {})
        linked = {a: seen[a] - t0 for a in expected if a in seen and seen[a] <= deadline}
        out.append({
            "platform": platform, "post_id": pid, **_named(acc),
            "account_id": author, "created_at": p["created_at"], "deadline": iso(deadline),
            "deadline_ts": deadline, "remaining": round(deadline - ref, 3),
            "expected": len(expected), "linked_count": len(linked),
            "progress": f"{len(linked)}/{len(expected)}",
            "rate": round(len(linked) / len(expected), 6),
            "linked": [{**who(registry, platform, a), "latency": round(lat, 3)}
                       for a, lat in sorted(linked.items(), key=lambda kv: kv[1])],
            "laggards": [who(registry, platform, a) for a in expected if a not in linked],
            "text": (p.get("text") or "")[:140], "url": p.get("url"),
        })
    out.sort(key=lambda t: (t["deadline_ts"], t["post_id"]))
    return OpenTasks(out, skipped)


def _named(acc: Account) -> dict[str, Any]:
    return {"name": acc.name, "unit": acc.unit, "level": acc.level}


def closed_summary(registry: Registry, tasks: Iterable[dict[str, Any]], limit: int = 30
                   ) -> list[dict[str, Any]]:
    """Recently closed tasks, newest first, with their laggards named."""
    out = []
    for t in list(tasks)[:limit]:
        platform = t.get("platform", "weibo")
        lag = [a for a in t["expected"] if a not in t["linked"]]
        out.append({
            "platform": platform, "post_id": t["post_id"], "account_id": t["account_id"],
            **{k: v for k, v in who(registry, platform, t["account_id"]).items() if k != "id"},
            "created_at": t["created_at"], "deadline": t.get("deadline"),
            "expected": len(t["expected"]), "linked_count": len(t["linked"]),
            "progress": f"{len(t['linked'])}/{len(t['expected'])}", "rate": t["rate"],
            "laggards": [who(registry, platform, a) for a in lag],
        })
    return out


def response_table(registry: Registry, tasks: Sequence[dict[str, Any]], since: float,
                   until: float, last_posts: dict[tuple[str, str], float]
                   ) -> list[dict[str, Any]]:
    """Per-account response rate over closed tasks (reports.measures), lowest first."""
    rows = compute_measures(registry, tasks, [], datetime.fromtimestamp(since, tz=SHANGHAI),
                            datetime.fromtimestamp(until, tz=SHANGHAI))
    out: list[dict[str, Any]] = []
    for r in rows:
        if not r.tasks_expected:
            continue
        parent = registry.get(r.platform, r.parent) if r.parent else None
        out.append({
            "platform": r.platform, "account_id": r.account_id, "name": r.name,
            "unit": r.unit, "level": r.level, "parent": r.parent,
            "parent_name": parent.name if parent else None,
            "tasks_expected": r.tasks_expected, "tasks_linked": r.tasks_linked,
            "response_rate": r.response_rate, "median_latency": r.median_latency,
            "last_post_at": iso(last_posts.get((r.platform, r.account_id))),
        })
    out.sort(key=lambda d: (d["response_rate"] if d["response_rate"] is not None else 1.0,
                            -(d["tasks_expected"] - d["tasks_linked"]), d["account_id"]))
    return out


def stale_accounts(registry: Registry, last_posts: dict[tuple[str, str], float], ref: float,
                   days: float = 14.0) -> list[dict[str, Any]]:
    """Active accounts with no post or repost in ``days`` before ``ref`` (单项否决), or never
    seen at all; the longest silent first."""
    limit = ref - days * DAY
    out = []
    for a in registry.all():
        if not registry.active_at(a, ref) or a.synthetic:
            continue
        last = last_posts.get(a.key_tuple)
        if last is not None and last >= limit:
            continue
        out.append({**who(registry, a.platform, a.id), "platform": a.platform,
                    "last_post_at": iso(last),
                    "silent_days": None if last is None else round((ref - last) / DAY, 1)})
    out.sort(key=lambda d: (d["silent_days"] is not None, -(d["silent_days"] or 0), d["id"]))
    return out


def subordinate_rates(registry: Registry, platform: str, superior: str,
                      closed: Iterable[dict[str, Any]], open_: Iterable[dict[str, Any]],
                      at: float | None = None) -> list[dict[str, Any]]:
    """Linkage rate per direct subordinate of ``superior`` active at ``at`` (the console's
    reference time; a closed_at decides whatever ``active`` says): closed tasks, and open
    ones so far (a replay in progress has only open tasks)."""
    subs = registry.subordinates(platform, superior, at=at, depth=1)
    stats = {s: [0, 0, 0, 0] for s in subs}  # closed expected, linked, open expected, linked
    for t in closed:
        if t["account_id"] != superior or t.get("platform", platform) != platform:
            continue
        for a in t["expected"]:
            if a in stats:
                stats[a][0] += 1
                stats[a][1] += a in t["linked"]
    for t in open_:
        if t["account_id"] != superior or t["platform"] != platform:
            continue
        linked = {x["id"] for x in t["linked"]}
        for a in [x["id"] for x in t["linked"]] + [x["id"] for x in t["laggards"]]:
            if a in stats:
                stats[a][2] += 1
                stats[a][3] += a in linked
    out = []
    for a, (ce, cl, oe, ol) in stats.items():
        out.append({**who(registry, platform, a), "closed_expected": ce, "closed_linked": cl,
                    "closed_rate": round(cl / ce, 6) if ce else None,
                    "open_expected": oe, "open_linked": ol,
                    "open_rate": round(ol / oe, 6) if oe else None})
    return out


def pick_bucket(span: float) -> int:
    """About 48 buckets over the span, on round sizes (5 min … 1 day)."""
    for b in (300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400):
        if span / b <= 60:
            return b
    return int(math.ceil(span / 60 / 86400) * 86400)


def fill_series(rows: Sequence[tuple[float, int, int]], since: float, until: float,
                bucket: int) -> list[dict[str, Any]]:
    """Dense buckets (zeros where nothing happened) with the negative share."""
    have = {int(r[0]): r for r in rows}
    start = int(since // bucket * bucket)
    out = []
    for t in range(start, int(until) + 1, bucket):
        _, total, neg = have.get(t, (t, 0, 0))
        out.append({"t": iso(float(t)), "total": total, "negative": neg,
                    "negative_share": round(neg / total, 4) if total else None})
    return out
