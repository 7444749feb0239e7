"""Linkage task logic on hand-made events, against the definitions in DESIGN.md."""

from __future__ import annotations

import itertools
from datetime import timedelta

import yaml

from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import LinkagePolicy, LinkageTracker
from matrixwatch.streams.records import Event
from tests.factories import REGISTRY_YAML, T0

PROV, A, B, C, D, A1, A2 = (
    "9100000001", "9100000011", "9100000012", "9100000013", "9100000014",
    "9100000111", "9100000112",
)


def reg() -> Registry:
    return Registry.from_dict(yaml.safe_load(REGISTRY_YAML))


def post(pid: str, author: str, minutes: float = 0) -> Event:
    t = (T0 + timedelta(minutes=minutes)).isoformat()
    return Event(platform="weibo", id=pid, kind="post", account_id=author, owner_id=author,
                 text="通知", created_at=t, collected_at=t)


def rp(rid: str, author: str, root: Event, minutes: float) -> Event:
    t = (T0 + timedelta(minutes=minutes)).isoformat()
    return Event(platform="weibo", id=rid, kind="repost", account_id=author,
                 owner_id=root.account_id, text="转发微博", created_at=t, collected_at=t,
                 root_id=root.id, root_account_id=root.account_id,
                 root_created_at=root.created_at)


def run(tracker: LinkageTracker, events: list[Event]) -> dict:
    state = None
    for e in events:
        state = tracker.apply(state, e)
    assert state is not None
    return tracker.close(state).asdict()


def test_expected_set_is_active_direct_subordinates() -> None:
    tr = LinkageTracker(reg())
    p = post("1", PROV)
    res = run(tr, [p])
    assert res["expected"] == [A, B, C]  # D is inactive; A1/A2 are not direct
    assert res["linked"] == {} and res["rate"] == 0.0


def test_earliest_repost_counts_once_and_late_ones_do_not() -> None:
    tr = LinkageTracker(reg())
    p = post("1", PROV)
    evs = [p, rp("11", A, p, 90), rp("12", A, p, 30), rp("13", B, p, 24 * 60 + 1),
           rp("14", A1, p, 5), rp("15", D, p, 5)]
    res = run(tr, evs)
    assert res["linked"] == {A: 1800.0}
    assert res["rate"] == round(1 / 3, 6)


def test_any_arrival_order_gives_the_same_result() -> None:
    tr = LinkageTracker(reg())
    p = post("1", PROV)
    evs = [p, rp("11", A, p, 90), rp("12", B, p, 30), rp("13", C, p, 600), rp("14", A, p, 10)]
    results = {repr(run(tr, list(order))) for order in itertools.permutations(evs)}
    assert len(results) == 1


def test_task_opens_from_a_repost_seen_first() -> None:
    tr = LinkageTracker(reg())
    p = post("1", PROV)
    state = tr.apply(None, rp("12", B, p, 30))
    assert state is not None and state["post_id"] == "1"
    assert tr.close(state).linked == {B: 1800.0}


def test_no_task_for_accounts_without_active_subordinates() -> None:
    tr = LinkageTracker(reg())
    assert tr.task_key(post("9", A1)) is None
    assert tr.apply(None, post("9", A1)) is None


def test_deadline_per_level_and_due() -> None:
    tr = LinkageTracker(reg(), LinkagePolicy(deadline=3600, level_deadlines={"city": 600}))
    city_post = post("2", A)
    s = tr.apply(None, city_post)
    assert s is not None and s["deadline"] - s["t0"] == 600
    assert not tr.due(s, s["deadline"])
    assert tr.due(s, s["deadline"] + 1)


def test_closed_account_counts_until_closed_at() -> None:
    data = yaml.safe_load(REGISTRY_YAML)
    for row in data["accounts"]:
        if row["id"] == D:
            row["closed_at"] = (T0 + timedelta(days=1)).isoformat()
    tr = LinkageTracker(Registry.from_dict(data))
    assert tr.open(post("1", PROV))["expected"] == [A, B, C, D]  # type: ignore[index]
    assert tr.open(post("1", PROV, minutes=2 * 24 * 60))["expected"] == [A, B, C]  # type: ignore[index]
