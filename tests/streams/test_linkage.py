"""Linkage task logic against the definitions in DESIGN.md, on hand-made events and on
generated matrices and event orders (hypothesis) checked against a reference computation."""

from __future__ import annotations

import itertools
import json
import math
from datetime import timedelta
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import (
    LinkagePolicy,
    LinkageTracker,
    percentile,
    reference_linkage,
)
from matrixwatch.streams.records import Event
from tests.factories import REGISTRY_YAML, T0

PROV, A, B, C, D, A1, A2 = (
    "9100000001", "9100000011", "9100000012", "9100000013", "9100000014",
    "9100000111", "9100000112",
)


def reg() -> Registry:
    return Registry.from_dict(yaml.safe_load(REGISTRY_YAML))


def post(pid: str, author: str, minutes: float = 0, platform: str = "weibo",
         text: str = "通知") -> Event:
    t = (T0 + timedelta(minutes=minutes)).isoformat()
    return Event(platform=platform, id=pid, kind="post", account_id=author, owner_id=author,
                 text=text, created_at=t, collected_at=t)


def rp(rid: str, author: str, root: Event, minutes: float) -> Event:
    t = (T0 + timedelta(minutes=minutes)).isoformat()
    return Event(platform="weibo", id=rid, kind="repost", account_id=author,
                 owner_id=root.account_id, text="转发微博", created_at=t, collected_at=t,
                 root_id=root.id, root_account_id=root.account_id,
                 root_created_at=root.created_at)


def run(tracker: LinkageTracker, events: list[Event], *, restart_at: int | None = None,
        ) -> dict[str, dict[str, Any]]:
    """Feed events into their containers like the agent does; close everything at the end.

    ``restart_at`` round-trips every container through JSON there, as a changelog does.
    """
    boxes: dict[str, Any] = {}
    for i, e in enumerate(events):
        if restart_at is not None and i == restart_at:
            boxes = json.loads(json.dumps(boxes))
        for key in tracker.route(e):
            boxes[key] = tracker.apply(boxes.get(key), e, key)
    out = {}
    for box in boxes.values():
        if box is None:
            continue
        for res in tracker.close_due(box, math.inf):
            out[res.post_id] = {"expected": res.expected, "linked": res.linked,
                                "rate": res.rate, "account_id": res.account_id}
    return out


def test_expected_set_is_active_direct_subordinates() -> None:
    res = run(LinkageTracker(reg()), [post("1", PROV)])["1"]
    assert res["expected"] == [A, B, C]  # D is inactive; A1/A2 are not direct
    assert res["linked"] == {} and res["rate"] == 0.0


def test_earliest_repost_counts_once_and_late_ones_do_not() -> None:
    p = post("1", PROV)
    evs = [p, rp("11", A, p, 90), rp("12", A, p, 30), rp("13", B, p, 24 * 60 + 1),
           rp("14", A1, p, 5), rp("15", D, p, 5)]
    res = run(LinkageTracker(reg()), evs)["1"]
    assert res["linked"] == {A: 1800.0}
    assert res["rate"] == round(1 / 3, 6)


def test_any_arrival_order_gives_the_same_result() -> None:
    p = post("1", PROV)
    evs = [p, rp("11", A, p, 90), rp("12", B, p, 30), rp("13", C, p, 600), rp("14", A, p, 10)]
    tr = LinkageTracker(reg())
    results = {repr(run(tr, list(order))) for order in itertools.permutations(evs)}
    assert len(results) == 1


def test_task_opens_from_a_repost_seen_first() -> None:
    p = post("1", PROV)
    res = run(LinkageTracker(reg()), [rp("12", B, p, 30)])
    assert res["1"]["linked"] == {B: 1800.0} and res["1"]["account_id"] == PROV


def test_no_task_for_accounts_without_active_subordinates() -> None:
    tr = LinkageTracker(reg())
    assert tr.route(post("9", A1)) == []
    assert run(tr, [post("9", A1)]) == {}


def test_deadline_per_level_and_account() -> None:
    tr = LinkageTracker(reg(), LinkagePolicy(deadline=3600, level_deadlines={"city": 600},
                                             account_deadlines={PROV: 120}))
    city = tr.new_task("weibo", "2", A, post("2", A).created_at)
    prov = tr.new_task("weibo", "1", PROV, post("1", PROV).created_at)
    assert city is not None and city["deadline"] - city["t0"] == 600
    assert prov is not None and prov["deadline"] - prov["t0"] == 120


def test_depth_two_expects_grandchildren() -> None:
    tr = LinkageTracker(reg(), LinkagePolicy(depth=2))
    res = run(tr, [post("1", PROV)])["1"]
    assert res["expected"] == [A, B, C, A1, A2] or sorted(res["expected"]) == sorted(
        [A, B, C, A1, A2])


def test_closed_account_counts_until_closed_at() -> None:
    data = yaml.safe_load(REGISTRY_YAML)
    for row in data["accounts"]:
        if row["id"] == D:
            row["closed_at"] = (T0 + timedelta(days=1)).isoformat()
    tr = LinkageTracker(Registry.from_dict(data))
    assert run(tr, [post("1", PROV)])["1"]["expected"] == [A, B, C, D]
    assert run(tr, [post("1", PROV, minutes=2 * 24 * 60)])["1"]["expected"] == [A, B, C]


def test_reposts_after_close_do_not_count() -> None:
    tr = LinkageTracker(reg())
    p = post("1", PROV)
    key = tr.route(p)[0]
    box = tr.apply(None, p, key)
    assert box is not None
    [res] = tr.close_due(box, math.inf)
    box = tr.apply(box, rp("11", A, p, 5), key)
    assert box is not None and box["tasks"]["1"]["linked"] == {}
    assert res.linked == {}


# --- content (转载) linkage --------------------------------------------------------
NOTICE = ("关于做好2026年冬季森林防火工作的通知：各区县要严格落实值班值守制度，加强野外用火管理，"
          "发现火情立即拨打12119报警电话，确保人民群众生命财产安全。")
OTHER = ("我市举行2026年秋季招聘会，共有120家企业提供岗位3000余个，涵盖制造、服务、信息技术等行业，"
         "欢迎广大求职者踊跃参加，现场可免费打印简历。")


def wx(pid: str, author: str, minutes: float, text: str) -> Event:
    return post(pid, author, minutes, platform="wechat", text=text)


def wechat_registry() -> Registry:
    data = yaml.safe_load(REGISTRY_YAML)
    for row in data["accounts"]:
        row["platform"] = "wechat"
    return Registry.from_dict(data)


def test_content_linkage_counts_near_duplicates_only() -> None:
    tr = LinkageTracker(wechat_registry())
    evs = [
        wx("w1", PROV, 0, NOTICE),
        wx("w2", A, 30, "来源：测试省发布\n" + NOTICE + "\n（编辑：某某）"),   # 转载
        wx("w3", B, 20, OTHER),                                           # unrelated
        wx("w4", C, 25 * 60, NOTICE),                                     # after deadline
    ]
    res = run(tr, evs)["w1"]
    assert res["linked"] == {A: 1800.0}


def test_content_copy_seen_before_the_original_still_counts() -> None:
    tr = LinkageTracker(wechat_registry())
    copy = wx("w2", A, 30, NOTICE[:-10])
    res = run(tr, [copy, wx("w1", PROV, 0, NOTICE)])["w1"]
    assert res["linked"] == {A: 1800.0}


# --- property: the stream's fold equals the reference, whatever the order -----------
@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Registry, list[Event], int]:
    n_sup = draw(st.integers(1, 3))
    rows = [{"id": "1", "platform": "weibo", "name": "省", "level": "province", "parent": None}]
    ids = ["1"]
    for i in range(n_sup):
        sid = f"1{i}"
        rows.append({"id": sid, "platform": "weibo", "name": sid, "level": "city",
                     "parent": "1", "active": draw(st.booleans()) or i == 0})
        ids.append(sid)
        for j in range(draw(st.integers(0, 3))):
            cid = f"1{i}{j}"
            rows.append({"id": cid, "platform": "weibo", "name": cid, "level": "county",
                         "parent": sid, "active": draw(st.sampled_from([True, True, False]))})
            ids.append(cid)
    rows.append({"id": "99", "platform": "weibo", "name": "外部", "level": "city",
                 "parent": None})
    ids.append("99")
    registry = Registry.from_dict({"accounts": rows})
    events: list[Event] = []
    roots = []
    for k in range(draw(st.integers(1, 3))):
        author = draw(st.sampled_from([i for i in ids if registry.has_subordinates("weibo", i)]
                                      or ["1"]))
        p = post(f"p{k}", author, draw(st.integers(0, 600)))
        roots.append(p)
        if draw(st.booleans()):
            events.append(p)  # sometimes the original itself is never seen
    n_reposts = draw(st.integers(0, 25))
    for r in range(n_reposts):
        root = draw(st.sampled_from(roots))
        who = draw(st.sampled_from(ids))
        minutes = draw(st.integers(0, 2000)) + int(root.ts - T0.timestamp()) // 60
        e = rp(f"r{r}", who, root, minutes)
        root_kept = draw(st.sampled_from(["whole", "whole", "whole", "no time", "deleted"]))
        if root_kept == "no time":  # can link, cannot open
            e.root_created_at = None
        elif root_kept == "deleted":  # no author: routed by the root id alone
            e.root_account_id = None
        events.append(e)
        if draw(st.integers(0, 4)) == 0:
            events.append(e)  # a duplicate delivery
    order = draw(st.permutations(events))
    restart = draw(st.integers(0, max(len(events), 1)))
    return registry, list(order), restart


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_stream_fold_equals_reference(case: tuple[Registry, list[Event], int]) -> None:
    registry, events, restart = case
    tr = LinkageTracker(registry)
    got = run(tr, events, restart_at=restart)
    want = reference_linkage(registry, events)
    assert {k: {f: v[f] for f in ("expected", "linked", "rate")} for k, v in got.items()} == want


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.9) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([float(i) for i in range(1, 11)], 0.9) == 9.0
    assert percentile([float(i) for i in range(1, 11)], 0.5) == 5.0


def test_wakeup_skips_checkpoints_already_evaluated() -> None:
    """A passed checkpoint must not make the container due again on every batch."""
    task = {"t0": 0.0, "deadline": 100.0, "closed": False}
    box: dict[str, Any] = {"tasks": {"p1": task}, "candidates": []}
    checkpoints = (0.25, 0.5)
    assert LinkageTracker.wakeup(box, checkpoints, -math.inf) == 25.0  # after a rebalance
    assert LinkageTracker.wakeup(box, checkpoints, 30.0) == 50.0
    assert LinkageTracker.wakeup(box, checkpoints, 50.0) == 50.0  # not evaluated at == 50
    assert LinkageTracker.wakeup(box, checkpoints, 60.0) == 100.0  # then the deadline
    box["candidates"] = [{"ts": 70.0}]
    assert LinkageTracker.wakeup(box, checkpoints, 60.0) == 70.0
    task["closed"], box["candidates"] = True, []
    assert LinkageTracker.wakeup(box, checkpoints, 60.0) is None


def _progress_at_half(task: dict[str, Any], watermark: float) -> list[str]:
    """A stand-in for the engine's linkage_lagging: one alert at the 50 % checkpoint."""
    fired = task.setdefault("checkpoints_fired", [])
    at = task["t0"] + 0.5 * (task["deadline"] - task["t0"])
    if "half" in fired or at >= watermark:
        return []
    fired.append("half")
    return [f"lagging {task['post_id']}"]


def _closed(res: Any) -> list[str]:
    return [f"closed {res.post_id}"]


def _boxes(tracker: LinkageTracker, events: list[Event]) -> dict[str, Any]:
    boxes: dict[str, Any] = {}
    for e in events:
        for key in tracker.route(e):
            boxes[key] = tracker.apply(boxes.get(key), e, key)
    return boxes


def test_fold_applies_events_and_evaluates_touched_and_due_containers() -> None:
    tracker = LinkageTracker(reg(), LinkagePolicy(deadline=3600))
    p1, p2 = post("5000000001", PROV, 0), post("5000000002", PROV, 1)
    boxes = _boxes(tracker, [p2])  # p2's task is open already and due now
    t0 = p1.ts
    done = tracker.fold([p1, rp("5000000101", A, p1, 5)], boxes.get, ["weibo:5000000002"],
                        t0 + 1900, _progress_at_half, _closed, retention=0)
    assert set(done.states) == {"weibo:5000000001", "weibo:5000000002"}
    assert done.states["weibo:5000000001"]["tasks"]["5000000001"]["linked"] == {A: 300.0}
    assert sorted(done.alerts) == ["lagging 5000000001", "lagging 5000000002"]
    assert done.closed == [] and done.failed == [] and done.failed_keys == []
    done = tracker.fold([], done.states.get, ["weibo:5000000001"], t0 + 3700,
                        _progress_at_half, _closed, retention=0)
    assert [r.post_id for r in done.closed] == ["5000000001"]
    assert done.alerts == ["closed 5000000001"]  # the 50 % checkpoint was marked before


def test_an_event_that_raises_is_left_out_and_the_batch_goes_on() -> None:
    tracker = LinkageTracker(reg(), LinkagePolicy(deadline=3600))
    p1 = post("5000000001", PROV, 0)
    bad = rp("5000000102", B, p1, 6)
    bad.root_created_at = "not a time"  # the task opens from it: epoch() raises
    p3 = post("5000000003", PROV, 2)
    done = tracker.fold([bad, p3], {}.get, [], p1.ts, _progress_at_half, _closed, 0)
    assert [(e.id, type(x).__name__) for e, x in done.failed] == [("5000000102", "ValueError")]
    assert list(done.states) == ["weibo:5000000003"]


def test_a_container_that_raises_keeps_no_mark_of_the_pass() -> None:
    """Checkpoint marks are set in place; if the container's evaluation then raises, its
    alerts are not sent, so the marks (and closings) of the pass are taken back. The
    other containers of the batch are evaluated and keep their alerts."""
    tracker = LinkageTracker(reg(), LinkagePolicy(deadline=3600))
    p1, p2 = post("5000000001", PROV, 0), post("5000000002", PROV, 0)
    boxes = _boxes(tracker, [p1, p2])
    boxes["weibo:5000000002"]["tasks"]["x"] = {"t0": p2.ts, "deadline": "bad", "closed": False,
                                                "post_id": "x"}
    done = tracker.fold([], boxes.get, sorted(boxes), p1.ts + 1900, _progress_at_half,
                        _closed, retention=0)
    assert done.alerts == ["lagging 5000000001"]
    assert [k for k, _ in done.failed_keys] == ["weibo:5000000002"]
    failed = boxes["weibo:5000000002"]["tasks"]
    assert failed["5000000002"]["checkpoints_fired"] == []  # marked, then taken back
    assert failed["5000000002"]["closed"] is False
    assert done.states["weibo:5000000002"] is boxes["weibo:5000000002"]  # still saved
