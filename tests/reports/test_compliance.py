"""Compliance checks on hand-made data (tests/reports/index_data.py), with exact numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from matrixwatch.reports import index_render
from matrixwatch.reports.compliance import ComplianceRow, run_checks
from matrixwatch.reports.config import ReportConfig
from matrixwatch.reports.period import parse_period
from matrixwatch.streams.weibo_time import CST
from tests.reports.index_data import A1, AP, AP2, EVENTS, A, B, P, ev, registry

PERIOD = parse_period("2026-10")


def checks(events: list[dict[str, Any]] = EVENTS, **kw: Any) -> dict[str, ComplianceRow]:
    return {r.account_id: r for r in run_checks(registry(), events, kw.pop("period", PERIOD),
                                                **kw)}


@pytest.fixture(scope="module")
def c() -> dict[str, ComplianceRow]:
    return checks()


def ev_of(row: ComplianceRow, check: str) -> dict[str, Any]:
    f = row.finding(check)
    assert f is not None
    return f.evidence


def test_stale_is_a_veto_with_the_last_post_as_evidence(c: dict[str, ComplianceRow]) -> None:
    a = c[A]
    assert a.finding("stale").status == "veto" and a.status == "veto"  # type: ignore[union-attr]
    assert ev_of(a, "stale") == {"checked_at": "2026-11-01T00:00:00+08:00", "window_days": 14.0,
                                 "last_post_at": "2026-10-12T10:00:00+08:00",
                                 "days_since_last_post": 19.583333}
    assert ev_of(c[AP2], "stale")["last_post_at"] is None and c[AP2].status == "veto"
    assert c[B].finding("stale").status == "pass"  # type: ignore[union-attr]
    assert ev_of(c[B], "stale")["days_since_last_post"] == 11.625


def test_stale_boundary_is_exactly_two_weeks() -> None:
    at = datetime(2026, 11, 3, 9, 0, tzinfo=CST).timestamp()  # b2 + 14 days
    assert checks(at=at)[B].finding("stale").status == "pass"  # type: ignore[union-attr]
    assert checks(at=at + 1)[B].finding("stale").status == "veto"  # type: ignore[union-attr]


def test_longest_gap(c: dict[str, ComplianceRow]) -> None:
    # AP: 09-25 (look-back anchor), 10-01, 10-05, 10-20, 10-28, check time 11-01.
    g = ev_of(c[AP], "gaps")
    assert (g["longest_gap_days"], g["from"], g["to"]) == (
        15.0, "2026-10-05T10:00:00+08:00", "2026-10-20T10:00:00+08:00")
    assert g["anchored_at_period_start"] is False and g["publications"] == 4
    assert c[AP].finding("gaps").status == "fail"  # type: ignore[union-attr]
    # A1: nothing in the look-back, so the first gap starts at the period start.
    g1 = ev_of(c[A1], "gaps")
    assert g1["longest_gap_days"] == 17.895833 and g1["anchored_at_period_start"] is True
    # Nothing at all: the whole month.
    assert ev_of(c[AP2], "gaps")["longest_gap_days"] == 31.0


def test_gap_threshold_is_configurable() -> None:
    cfg = ReportConfig.from_dict({"compliance": {"max_gap_days": 15.0}})
    assert checks(cfg=cfg)[AP].finding("gaps").status == "pass"  # type: ignore[union-attr]


def test_monthly_count_against_allowed(c: dict[str, ComplianceRow]) -> None:
    m = ev_of(c[A], "monthly")
    # October: 31 days × 1 per day allowed; 明显低于 = under half → at least 16.
    assert m["months"] == [{"month": "2026-10", "days": 31.0, "count": 3, "allowed": 31.0,
                            "required": 16, "ok": False}]
    assert (m["months_below_min"], m["lowest_count"]) == (1, 3)
    assert ev_of(c[AP], "monthly")["lowest_count"] == 4
    cfg = ReportConfig.from_dict({"compliance": {"count_reposts": False,
                                                 "posts_per_day": {"weibo": 0.1}}})
    m2 = ev_of(checks(cfg=cfg)[A], "monthly")["months"][0]
    assert (m2["count"], m2["required"], m2["ok"]) == (2, 2, True)  # ceil(3.1 × 0.5)


def test_monthly_prorates_partial_months() -> None:
    per = parse_period("2026-10-15..2026-11-10")
    m = ev_of(checks(period=per)[AP], "monthly")["months"]
    assert [(x["month"], x["days"], x["count"], x["required"]) for x in m] == [
        ("2026-10", 17.0, 2, 9), ("2026-11", 10.0, 0, 5)]


def test_interaction_reply_rate_median_and_resolved(c: dict[str, ComplianceRow]) -> None:
    i = ev_of(c[A], "interaction")
    # c1 answered by r1 after 2 h ("已解决"); c4 by r2 under the post after 30 h (late);
    # c3 never. c2 is no question; c5 replies to a netizen, not a question to the account.
    assert {k: i[k] for k in ("questions", "answered_in_time", "answered_late", "unanswered",
                              "reply_rate", "median_reply_hours", "resolved",
                              "resolve_rate")} == {
        "questions": 3, "answered_in_time": 1, "answered_late": 1, "unanswered": 1,
        "reply_rate": 0.333333, "median_reply_hours": 16.0, "resolved": 1,
        "resolve_rate": 0.333333}
    assert [x["id"] for x in i["examples"]] == ["c4", "c3"]
    assert i["examples"][0]["answered_after_hours"] == 30.0
    assert c[A].finding("interaction").status == "fail"  # type: ignore[union-attr]
    assert c[B].finding("interaction").status == "n/a"  # type: ignore[union-attr]
    cfg = ReportConfig.from_dict({"compliance": {"reply_hours": 48, "min_reply_rate": 0.6}})
    i2 = ev_of(checks(cfg=cfg)[A], "interaction")
    assert (i2["answered_in_time"], i2["reply_rate"]) == (2, 0.666667)
    assert checks(cfg=cfg)[A].finding("interaction").status == "pass"  # type: ignore[union-attr]


def test_reply_after_the_period_still_counts() -> None:
    late_q = ev("q9", "comment", "8000000009", "2026-10-31 23:00", "请问明天上班吗？",
                owner_id=B, post_id="b2")
    reply = ev("rq9", "comment", B, "2026-11-01 08:00", "您好，正常上班。", owner_id=B,
               post_id="b2", reply_to_id="q9")
    i = ev_of(checks([*EVENTS, late_q, reply])[B], "interaction")
    assert (i["questions"], i["answered_in_time"], i["median_reply_hours"]) == (1, 1, 9.0)


def test_errata_position_and_suggestion(c: dict[str, ComplianceRow]) -> None:
    e = ev_of(c[A], "errata")
    assert e["hits"] == 1  # the repost's //@ chain is someone else's words: not counted
    assert e["items"] == [{"event_id": "a2", "created_at": "2026-10-12T10:00:00+08:00",
                           "kind": "post", "position": 14, "found": "再接再励",
                           "suggest": "再接再厉", "category": "wrong_char", "note": "",
                           "context": "温下降，请注意保暖，再接再励。"}]
    assert c[B].finding("errata").status == "pass"  # type: ignore[union-attr]


def test_duplicate_accounts_of_one_unit(c: dict[str, ComplianceRow]) -> None:
    d = ev_of(c[AP], "duplicate")
    assert d["others"] == [AP2] and ev_of(c[AP2], "duplicate")["others"] == [AP]
    assert d["accounts"] == [{"id": AP, "name": "平安甲市"}, {"id": AP2, "name": "甲市警方"}]
    assert c[A].finding("duplicate").status == "pass"  # type: ignore[union-attr]


def test_overall_status_and_flat_fields(c: dict[str, ComplianceRow]) -> None:
    assert {k: r.status for k, r in c.items()} == {
        P: "veto", A: "veto", B: "fail", A1: "fail", AP: "fail", AP2: "veto"}
    flat = c[A].as_dict()
    assert (flat["stale_status"], flat["errata_hits"], flat["reply_rate"], flat["fails"]) == (
        "veto", 1, 0.333333, 5)


def test_renderings_carry_rule_and_evidence(c: dict[str, ComplianceRow]) -> None:
    rows = list(c.values())
    md = index_render.compliance_markdown("2026-10", rows)
    assert "否决 3 个，不合格 3 个，合格 0 个" in md
    assert "「再接再励」→「再接再厉」" in md and "第 15 字" in md
    assert "单项否决" in md and "一个单位原则上在同一平台只开设一个" in md
    csv_text = index_render.compliance_csv(rows)
    assert csv_text.splitlines()[0].startswith("account_id,platform,name")
    assert len(csv_text.splitlines()) == 7
    assert index_render.compliance_json("2026-10", rows) == index_render.compliance_json(
        "2026-10", rows[::-1])
