"""Matrix measures on hand-made tasks and events, with exact expected numbers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import yaml

from matrixwatch.registry import Registry
from matrixwatch.reports.measures import compute, coverage, laggards, superior_matrix
from tests.factories import REGISTRY_YAML, T0

PROV, A, B, C, A1, A2 = ("9100000001", "9100000011", "9100000012", "9100000013",
                         "9100000111", "9100000112")


def reg() -> Registry:
    return Registry.from_dict(yaml.safe_load(REGISTRY_YAML))


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def task(pid: str, author: str, hours: float, expected: list[str],
         linked: dict[str, float]) -> dict[str, Any]:
    return {"post_id": pid, "account_id": author, "platform": "weibo", "created_at": at(hours),
            "expected": expected, "linked": linked, "rate": len(linked) / len(expected)}


def ev(eid: str, kind: str, author: str, hours: float, **kw: Any) -> dict[str, Any]:
    return {"id": eid, "platform": "weibo", "kind": kind, "account_id": author,
            "created_at": at(hours), **kw}


TASKS = [
    task("p1", PROV, 0, [A, B, C], {A: 600.0, B: 7200.0}),
    task("p2", PROV, 10, [A, B, C], {A: 1200.0}),
    task("p3", A, 5, [A1, A2], {A1: 300.0}),
    task("old", PROV, -200, [A, B, C], {}),  # outside the period
]
EVENTS = [
    ev("p1", "post", PROV, 0), ev("p3", "post", A, 5),
    ev("r1", "repost", A, 0.2, root_account_id=PROV),
    ev("r2", "repost", A, 10.3, root_account_id=PROV),
    ev("c1", "comment", A, 1, owner_id=PROV),        # 上级互动 for A
    ev("c1", "comment", A, 1, owner_id=PROV),        # duplicate: counted once
    ev("r3", "repost", A1, 5.1, root_account_id=A),  # 下级联动 for A, 上级互动 for A1
    ev("c2", "comment", "8000000001", 2, owner_id=A),  # a netizen: neither
]
SINCE, UNTIL = T0 - timedelta(hours=1), T0 + timedelta(days=2)


def rows() -> dict[str, Any]:
    return {r.account_id: r for r in compute(reg(), TASKS, EVENTS, SINCE, UNTIL)}


def test_response_rate_and_latency() -> None:
    r = rows()
    assert (r[A].tasks_expected, r[A].tasks_linked, r[A].response_rate) == (2, 2, 1.0)
    assert r[A].median_latency == 900.0 and r[A].p90_latency == 1200.0
    assert (r[B].tasks_expected, r[B].tasks_linked, r[B].response_rate) == (2, 1, 0.5)
    assert (r[C].tasks_linked, r[C].response_rate, r[C].median_latency) == (0, 0.0, None)
    assert r[A2].response_rate == 0.0 and r[PROV].response_rate is None


def test_interactions_up_and_down_count_distinct_ids() -> None:
    r = rows()
    assert r[A].interactions_up == 3   # r1, r2, c1 (c1 twice in the input)
    assert r[PROV].interactions_down == 3
    assert r[A].interactions_down == 1  # r3
    assert r[A1].interactions_up == 1
    assert r[B].interactions_up == 0


def test_coverage_uses_units() -> None:
    registry = reg()
    # 甲市人民政府's subordinate units: 东区 (has an account) and 南区 (none).
    assert coverage(registry, "甲市人民政府") == 0.5
    assert coverage(registry, "无下级单位") is None


def test_coverage_counts_an_account_closed_before_the_period_as_none() -> None:
    """甲市东区 left at active: true but closed before the period: no longer covers its
    unit (it did before its closed_at); the report's period decides, not the flag."""
    data = yaml.safe_load(REGISTRY_YAML)
    for row in data["accounts"]:
        if row["id"] == A1:
            row["closed_at"] = (SINCE - timedelta(days=1)).isoformat()
        if row["id"] == A:
            row["unit"] = "甲市人民政府"  # so that compute() reports 甲市's coverage
    registry = Registry.from_dict(data)
    assert coverage(registry, "甲市人民政府") == 0.5  # no time: active decides, as before
    assert coverage(registry, "甲市人民政府", SINCE.timestamp()) == 0.0
    assert coverage(registry, "甲市人民政府", (SINCE - timedelta(days=2)).timestamp()) == 0.5
    r = {m.account_id: m for m in compute(registry, TASKS, EVENTS, SINCE, UNTIL)}
    assert r[A].coverage == 0.0
    assert rows()[A].coverage is None  # the plain matrix: unchanged


def test_laggards_rank_lowest_rate_first() -> None:
    order = [r.account_id for r in laggards(compute(reg(), TASKS, EVENTS, SINCE, UNTIL))]
    assert order[:3] == [C, A2, B]


def test_superior_matrix_cells() -> None:
    m = superior_matrix(reg(), TASKS, SINCE, UNTIL)
    assert m[PROV]["tasks"] == ["p1", "p2"]
    assert m[PROV]["rows"][B] == [7200.0, None]
    assert m[PROV]["mean_rate"] == round((2 / 3 + 1 / 3) / 2, 6)
    assert isinstance(SINCE, datetime)
