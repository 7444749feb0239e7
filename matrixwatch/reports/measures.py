"""Matrix measures per account over a period: pure functions over stored documents.

Definitions (DESIGN.md "Linkage" and the 新华网 集群指数):

* response rate: tasks linked / tasks expected, with median and p90 latency;
* 上级互动 (interactions_up): the account's reposts and comments on its superior's posts;
* 下级联动 (interactions_down): reposts and comments by its subordinates on its posts;
* 覆盖度 (coverage): subordinate units (``units:`` with ``parent_unit`` = the account's
  unit) that have an active account, over all subordinate units.

Counts are of distinct event ids, so a redelivered event never counts twice. Tasks are
attributed to the period their post was published in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import median, percentile
from matrixwatch.streams.records import epoch


@dataclass
class AccountMeasures:
    account_id: str
    platform: str
    name: str
    unit: str | None
    level: str | None
    parent: str | None
    period_start: str
    period_end: str
    tasks_expected: int = 0
    tasks_linked: int = 0
    response_rate: float | None = None
    median_latency: float | None = None
    p90_latency: float | None = None
    interactions_up: int = 0
    interactions_down: int = 0
    coverage: float | None = None
    last_post_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_period(ts: str, since: float, until: float) -> bool:
    t = epoch(ts)
    return since <= t < until


def coverage(registry: Registry, unit: str | None, at: float | None = None) -> float | None:
    """Share of the unit's subordinate units that have an account active at ``at`` (the
    period's start, as the index's peer groups; a closed_at decides whatever ``active``
    says); None if none."""
    if not unit:
        return None
    subs = {u.name for u in registry.units if u.parent_unit == unit}
    if not subs:
        return None
    with_account = {a.unit for a in registry.all()
                    if a.unit in subs and registry.active_at(a, at)}
    return round(len(with_account) / len(subs), 6)


def compute(
    registry: Registry,
    linkage: Iterable[dict[str, Any]],
    events: Iterable[dict[str, Any]],
    since: datetime,
    until: datetime,
) -> list[AccountMeasures]:
    """Measures for every registry account over [since, until)."""
    lo, hi = since.timestamp(), until.timestamp()
    rows = {
        (a.platform, a.id): AccountMeasures(
            account_id=a.id, platform=a.platform, name=a.name, unit=a.unit, level=a.level,
            parent=a.parent, period_start=since.isoformat(), period_end=until.isoformat(),
            coverage=coverage(registry, a.unit, lo),
        )
        for a in registry.all()
    }
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    for task in linkage:
        if not in_period(task["created_at"], lo, hi):
            continue
        for acct in task["expected"]:
            row = rows.get((task["platform"], acct))
            if row is None:
                continue
            row.tasks_expected += 1
            if acct in task["linked"]:
                row.tasks_linked += 1
                latencies[(task["platform"], acct)].append(float(task["linked"][acct]))
    up: dict[tuple[str, str], set[str]] = defaultdict(set)
    down: dict[tuple[str, str], set[str]] = defaultdict(set)
    last_post: dict[tuple[str, str], str] = {}
    for e in events:
        if not in_period(e["created_at"], lo, hi):
            continue
        platform, author = e["platform"], e["account_id"]
        if e["kind"] in ("post", "repost"):  # publishing either way counts as an update
            prev = last_post.get((platform, author))
            if prev is None or epoch(e["created_at"]) > epoch(prev):
                last_post[(platform, author)] = e["created_at"]
            if e["kind"] == "post":
                continue
        # The account whose post this repost/comment is about.
        target = e.get("root_account_id") if e["kind"] == "repost" else e.get("owner_id")
        acc = registry.get(platform, author)
        if acc is None or not target or target == author:
            continue
        if acc.parent == target:
            up[(platform, author)].add(e["id"])
            down[(platform, target)].add(e["id"])
    for key, row in rows.items():
        if row.tasks_expected:
            row.response_rate = round(row.tasks_linked / row.tasks_expected, 6)
        lat = latencies.get(key, [])
        row.median_latency = median(lat)
        row.p90_latency = percentile(lat, 0.9)
        row.interactions_up = len(up.get(key, ()))
        row.interactions_down = len(down.get(key, ()))
        row.last_post_at = last_post.get(key)
    return sorted(rows.values(), key=lambda r: (r.platform, r.account_id))


def laggards(rows: Iterable[AccountMeasures], limit: int = 20) -> list[AccountMeasures]:
    """Lowest response rate first (then most tasks missed), accounts with tasks only."""
    ranked = [r for r in rows if r.tasks_expected]
    ranked.sort(key=lambda r: (r.response_rate or 0.0, -(r.tasks_expected - r.tasks_linked),
                               r.account_id))
    return ranked[:limit]


def superior_matrix(
    registry: Registry, linkage: Iterable[dict[str, Any]], since: datetime, until: datetime,
    max_tasks: int = 12,
) -> dict[str, dict[str, Any]]:
    """Per superior: its latest tasks (columns) × subordinates (rows) → latency or None."""
    lo, hi = since.timestamp(), until.timestamp()
    by_sup: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in linkage:
        if in_period(t["created_at"], lo, hi):
            by_sup[t["account_id"]].append(t)
    out: dict[str, dict[str, Any]] = {}
    for sup, tasks in sorted(by_sup.items()):
        tasks = sorted(tasks, key=lambda t: epoch(t["created_at"]))[-max_tasks:]
        subs = sorted({a for t in tasks for a in t["expected"]})
        acc = registry.get(tasks[0]["platform"], sup)
        out[sup] = {
            "name": acc.name if acc else sup,
            "tasks": [t["post_id"] for t in tasks],
            "mean_rate": round(sum(t["rate"] for t in tasks) / len(tasks), 6),
            "rows": {s: [t["linked"].get(s) if s in t["expected"] else "n/a" for t in tasks]
                     for s in subs},
        }
    return out
