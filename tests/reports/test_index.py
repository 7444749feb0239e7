"""The six indices on hand-made data (tests/reports/index_data.py), with exact numbers."""

from __future__ import annotations

from typing import Any

import pytest

from matrixwatch.reports.compliance import run_checks, vetoes
from matrixwatch.reports.config import ReportConfig
from matrixwatch.reports.index import IndexRow, compute_index, normalise, rank_group
from matrixwatch.reports.period import parse_period
from matrixwatch.reports.verticals import extras_from_dict
from tests.reports.index_data import A1, AP, AP2, EVENTS, REGISTRY, A, B, P, registry

PERIOD = parse_period("2026-10")
EXTRAS = extras_from_dict(REGISTRY)


def rows(events: list[dict[str, Any]] = EVENTS, **kw: Any) -> dict[str, dict[str, Any]]:
    out = compute_index(registry(), events, PERIOD, extras=EXTRAS, **kw)
    return {r.account_id: r.as_dict() for r in out}


@pytest.fixture(scope="module")
def r() -> dict[str, dict[str, Any]]:
    return rows()


def test_interaction_raw(r: dict[str, dict[str, Any]]) -> None:
    # a1: max(counter 3, seen 2) reposts, max(counter 2, seen 4: c1 c2 c4 c5) comments;
    # a2: counter 5 > seen 1. Likes are counters only; B's posts have none → None.
    a, b = r[A], r[B]
    assert (a["reposts_received"], a["comments_received"], a["likes_received"]) == (3, 9, 14)
    assert a["comment_repost_ratio"] == 3.0
    assert (b["reposts_received"], b["comments_received"], b["likes_received"]) == (2, 1, None)
    assert b["comment_repost_ratio"] == 0.5


def test_audience_raw(r: dict[str, dict[str, Any]]) -> None:
    a, b = r[A], r[B]
    assert a["followers"] == 1300  # last snapshot in the period (a2)
    assert a["verified_days"] == 304.0  # 2026-01-01 → 2026-11-01
    assert b["verified_days"] is None  # no verified_at: excluded, weights renormalised
    assert a["active_followers"] == 4  # N1, N2 commented; A1 and N3 reposted
    assert b["active_followers"] == 0


def test_propagation_raw(r: dict[str, dict[str, Any]]) -> None:
    a, b = r[A], r[B]
    assert (a["posts_published"], a["originals"], a["reposts_of_others"]) == (3, 2, 1)
    assert a["original_share"] == 0.666667
    assert (b["posts_published"], b["originals"], b["original_share"]) == (2, 2, 1.0)
    assert r[AP2]["original_share"] is None  # nothing published


def test_growth_raw_and_peer_ratios(r: dict[str, dict[str, Any]]) -> None:
    a, b = r[A], r[B]
    assert a["follower_growth_per_day"] == 30.0  # (1300 − 1000) / 10 days
    assert b["follower_growth_per_day"] == 0.0
    assert (a["posts_yoy"], a["originals_yoy"], a["interactions_yoy"]) == (0.5, 0.0, 2.0)
    assert (b["posts_yoy"], b["originals_yoy"], b["interactions_yoy"]) == (1.0, 1.0, -0.25)
    # Ratios to the peer average: 30 / 15; factors 1.5 / mean(1.5, 2.0); 3.0 / 1.875.
    assert a["follower_growth_rel"] == 2.0 and b["follower_growth_rel"] == 0.0
    assert a["posts_yoy_rel"] == 0.857143 and b["posts_yoy_rel"] == 1.142857
    assert a["originals_yoy_rel"] == 0.666667 and b["originals_yoy_rel"] == 1.333333
    assert a["interactions_yoy_rel"] == 1.6 and b["interactions_yoy_rel"] == 0.4
    assert r[A1]["posts_yoy"] is None  # no year-ago data


def test_content_raw(r: dict[str, dict[str, Any]]) -> None:
    a, b = r[A], r[B]
    # a1 政务; a2 民生; ar1 (a repost) counts by its root: 民生.
    assert (a["gov_share"], a["livelihood_share"], a["b_share"]) == (0.333333, 0.666667, 0.0)
    assert a["content_value"] == 1.0
    # b1 心灵鸡汤 (B类), b2 政务.
    assert (b["gov_share"], b["livelihood_share"], b["b_share"]) == (0.5, 0.0, 0.5)
    assert b["content_value"] == 0.0


def test_cluster_raw(r: dict[str, dict[str, Any]]) -> None:
    a, b = r[A], r[B]
    assert a["coverage"] == 0.666667  # 东区 and 公安局 have accounts, 西区 not
    assert (a["interactions_up"], a["interactions_down"]) == (1, 1)
    assert (b["coverage"], b["interactions_up"], b["interactions_down"]) == (None, 0, None)
    assert r[P]["interactions_up"] is None  # no superior: not a zero


def test_index_scores_are_peer_normalised(r: dict[str, dict[str, Any]]) -> None:
    a, b = r[A], r[B]
    assert a["peer_group"] == b["peer_group"] == "city/发布"
    expect_a = {"interaction": 87.5, "audience": 50.0, "propagation": 66.666667,
                "growth": 50.0, "content": 66.666667, "cluster": 66.666667}
    expect_b = {"interaction": 0.0, "audience": 50.0, "propagation": 33.333333,
                "growth": 50.0, "content": 33.333333, "cluster": 0.0}
    for k, v in expect_a.items():
        assert a[f"{k}_index"] == pytest.approx(v, abs=1e-6), k
    for k, v in expect_b.items():
        assert b[f"{k}_index"] == pytest.approx(v, abs=1e-6), k
    assert a["composite"] == pytest.approx(66.666667, abs=1e-6)
    assert b["composite"] == pytest.approx(25.833333, abs=1e-6)
    assert (a["rank"], b["rank"], a["group_size"]) == (1, 2, 2)


def test_singleton_group_scores_fifty_and_missing_index_renormalises(
        r: dict[str, dict[str, Any]]) -> None:
    p = r[P]
    assert p["group_size"] == 1 and p["growth_index"] is None
    assert p["composite"] == 50.0 and p["rank"] == 1


def test_weights_are_configurable() -> None:
    cfg = ReportConfig.from_dict({"index": {"weights": {
        "interaction": 1, "audience": 0, "propagation": 0, "growth": 0, "content": 0,
        "cluster": 0}}})
    out = rows(cfg=cfg)
    assert out[A]["composite"] == 87.5 and out[B]["composite"] == 0.0
    cfg = ReportConfig.from_dict({"index": {"measure_weights": {"likes_received": 0}}})
    assert rows(cfg=cfg)[A]["interaction_index"] == 100.0
    with pytest.raises(ValueError, match=r"unknown setting index\.wieghts"):
        ReportConfig.from_dict({"index": {"wieghts": {}}})


def test_stale_veto_ranks_last() -> None:
    checks = run_checks(registry(), EVENTS, PERIOD)
    v = vetoes(checks)
    assert set(v) == {("weibo", P), ("weibo", A), ("weibo", AP2)}
    out = rows(vetoes=v)
    assert (out[B]["rank"], out[A]["rank"]) == (1, 2)
    assert out[A]["veto"] and out[A]["veto_reason"].startswith("stale:")
    assert out[A]["composite"] == pytest.approx(66.666667, abs=1e-6)  # shown, not zeroed
    assert (out[AP]["rank"], out[AP2]["rank"]) == (1, 2)


def test_duplicated_events_count_once() -> None:
    assert rows(EVENTS + EVENTS[::-1]) == rows()


def test_normalise_minmax_and_rank() -> None:
    assert normalise([1, 3, None, 2], 1, "minmax") == [0.0, 100.0, None, 50.0]
    assert normalise([1, 3, 2], -1, "minmax") == [100.0, 0.0, 50.0]
    assert normalise([5, 5], 1, "minmax") == [50.0, 50.0]
    assert normalise([7, None], 1, "minmax") == [50.0, None]
    assert normalise([1, 2, 2, 4], 1, "rank") == [0.0, 50.0, 50.0, 100.0]
    assert normalise([1, 2, 2, 4], -1, "rank") == [100.0, 50.0, 50.0, 0.0]


def test_rank_ties_share_a_rank() -> None:
    def row(aid: str, comp: float | None, veto: bool = False) -> IndexRow:
        x = IndexRow(aid, "weibo", aid, None, "county", "发布", "p", "s", "e")
        x.composite, x.veto = comp, veto
        return x

    rs = [row("1", 50.0), row("2", 70.0), row("3", 50.0), row("4", None), row("5", 90.0, True)]
    rank_group(rs)
    assert [x.rank for x in rs] == [2, 1, 2, 4, 5]
    rank_group(rs, veto_last=False)
    assert [x.rank for x in rs] == [3, 2, 3, 5, 1]
