"""Reposts whose embedded root is incomplete: no ``created_at`` (the root came without a
time) or no author (the root was deleted). Such a repost cannot open a task, but it links
to the task its root opened, whichever arrives first (DESIGN.md, "Linkage": linked if it
publishes a repost whose root is the task post within the deadline)."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

import yaml

from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import LinkagePolicy, LinkageTracker, reference_linkage
from matrixwatch.streams.records import Event
from tests.factories import REGISTRY_YAML, T0
from tests.streams.test_linkage import (
    PROV,
    A,
    B,
    C,
    _boxes,
    _closed,
    _progress_at_half,
    post,
    reg,
    rp,
    run,
)


def no_time(e: Event) -> Event:
    """The repost as collected when the embedded root carries no ``created_at``."""
    e.root_created_at = None
    return e


def deleted(e: Event) -> Event:
    """The repost as collected when its root was deleted: an id (and a time), no user."""
    e.root_account_id = None
    e.owner_id = e.account_id
    return e


def test_repost_whose_root_lacks_created_at_links_in_either_order() -> None:
    """Audit: post …008 and 甲市's repost …191 (root without created_at) — 甲市 was missing."""
    p = post("1", PROV)
    evs = [p, no_time(rp("11", A, p, 30)), rp("12", B, p, 40)]
    tr = LinkageTracker(reg())
    for order in itertools.permutations(evs):
        res = run(tr, list(order))["1"]
        assert res["linked"] == {A: 1800.0, B: 2400.0}, [e.id for e in order]
        assert res["rate"] == round(2 / 3, 6)


def test_repost_of_a_deleted_root_links_in_either_order() -> None:
    """Audit: post …009 and 乙市's repost …195 of it once deleted — 乙市 was missing."""
    p = post("1", PROV)
    gone = deleted(rp("11", B, p, 30))
    tr = LinkageTracker(reg())
    assert tr.route(gone) == ["weibo:1"]  # keyed by the root id, as the post is
    evs = [p, gone, rp("12", A, p, 40)]
    for order in itertools.permutations(evs):
        res = run(tr, list(order))["1"]
        assert res["linked"] == {A: 2400.0, B: 1800.0}, [e.id for e in order]


def test_a_full_repost_opens_the_task_for_those_waiting() -> None:
    """The post itself never seen: a repost with the whole root opens the task, and the
    incomplete reposts held before it are linked then."""
    p = post("1", PROV)
    evs = [no_time(rp("11", A, p, 30)), deleted(rp("12", B, p, 40)), rp("13", C, p, 50)]
    tr = LinkageTracker(reg())
    for order in itertools.permutations(evs):
        assert run(tr, list(order))["1"]["linked"] == {A: 1800.0, B: 2400.0, C: 3000.0}


def test_incomplete_reposts_alone_open_nothing() -> None:
    p = post("1", PROV)
    tr = LinkageTracker(reg())
    assert run(tr, [no_time(rp("11", A, p, 30)), deleted(rp("12", B, p, 40))]) == {}


def test_deadline_still_runs_from_the_post() -> None:
    p = post("1", PROV)
    late = no_time(rp("11", A, p, 24 * 60 + 1))
    tr = LinkageTracker(reg())
    for order in ([p, late], [late, p]):
        assert run(tr, order)["1"]["linked"] == {}


def test_deleted_root_reposts_are_routed_only_from_possible_subordinates() -> None:
    """Without a root author there is no superior to filter on; a reposter no task can
    expect (outside the registry, or at its top) is not sent to linkage at all."""
    p = post("1", PROV)
    tr = LinkageTracker(reg())
    assert tr.route(deleted(rp("11", "123456", p, 5))) == []  # a netizen
    assert tr.route(deleted(rp("12", PROV, p, 5))) == []  # no parent: never expected


def test_held_reposts_are_kept_once_and_pruned_after_the_watermark() -> None:
    p = post("1", PROV)
    held = deleted(rp("11", B, p, 30))
    tr = LinkageTracker(reg(), LinkagePolicy(deadline=3600))
    boxes = _boxes(tr, [held, held])  # a duplicate delivery
    box = boxes["weibo:1"]
    assert box["tasks"] == {} and [c["id"] for c in box["candidates"]] == ["11"]
    assert tr.next_due(box) == held.ts  # the container wakes up to forget it
    done = tr.fold([], boxes.get, ["weibo:1"], held.ts + 1, _progress_at_half, _closed, 0)
    assert done.states == {"weibo:1": None}
    # Still there before the watermark passes it: the post may yet arrive on time.
    boxes = _boxes(tr, [held])
    done = tr.fold([p], boxes.get, [], p.ts, _progress_at_half, _closed, 0)
    state = done.states["weibo:1"]
    assert state is not None and state["candidates"] == []
    assert state["tasks"]["1"]["linked"] == {B: 1800.0}


def test_reference_agrees_on_incomplete_roots() -> None:
    p = post("1", PROV)
    evs = [no_time(rp("11", A, p, 30)), deleted(rp("12", B, p, 40)), p]
    want = reference_linkage(reg(), evs)["1"]
    got = run(LinkageTracker(reg()), evs)["1"]
    assert {k: got[k] for k in ("expected", "linked", "rate")} == want


def test_active_true_with_past_closed_at_is_not_expected_after_it() -> None:
    """Audit: 戊市 (``active: true``, closed_at 2026-11-01) stayed expected in every task.
    closed_at decides from then on, as it does with ``active: false``."""
    data = yaml.safe_load(REGISTRY_YAML)
    for row in data["accounts"]:
        if row["id"] == C:
            row["closed_at"] = (T0 + timedelta(days=1)).isoformat()
            assert row["active"] is True
    tr = LinkageTracker(Registry.from_dict(data))
    before = post("1", PROV)
    after = post("2", PROV, minutes=2 * 24 * 60)
    at_close = post("3", PROV, minutes=24 * 60)
    assert run(tr, [before])["1"]["expected"] == [A, B, C]
    assert run(tr, [after])["2"]["expected"] == [A, B]
    assert run(tr, [at_close])["3"]["expected"] == [A, B]  # at closed_at: closed
    assert math.isclose(run(tr, [after, rp("21", A, after, 5)])["2"]["rate"], 0.5)
