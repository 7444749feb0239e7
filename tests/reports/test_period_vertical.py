"""Report periods (local calendar) and the vertical (垂直领域) of an account."""

from __future__ import annotations

from datetime import datetime

import pytest

from matrixwatch.reports.period import PeriodError, last_month, parse_period
from matrixwatch.reports.verticals import (
    derive_vertical,
    extras_from_dict,
    verified_epoch,
    vertical_of,
)
from matrixwatch.streams.records import Account
from matrixwatch.streams.weibo_time import CST


def test_month_year_quarter_and_range() -> None:
    m = parse_period("2026-10")
    assert (m.label, m.start.isoformat(), m.end.isoformat(), m.days) == (
        "2026-10", "2026-10-01T00:00:00+08:00", "2026-11-01T00:00:00+08:00", 31.0)
    assert parse_period("2026-12").end.isoformat() == "2027-01-01T00:00:00+08:00"
    assert parse_period("2026").days == 365.0
    q = parse_period("2026-q4")
    assert (q.label, q.start.month, q.end.year) == ("2026-Q4", 10, 2027)
    r = parse_period("2026-10-15..2026-11-10")
    assert r.days == 27.0
    assert [(lbl, d) for lbl, _, _, d in r.months()] == [("2026-10", 31), ("2026-11", 30)]
    for bad in ("2026-13", "26-10", "2026-11-10..2026-10-15", "last month"):
        with pytest.raises(PeriodError):
            parse_period(bad)


def test_year_ago_and_last_month() -> None:
    assert parse_period("2026-10").year_ago().start.isoformat() == "2025-10-01T00:00:00+08:00"
    leap = parse_period("2028-02-29..2028-02-29").year_ago()
    assert (leap.start.isoformat()[:10], leap.end.isoformat()[:10]) == ("2027-02-28",
                                                                        "2027-03-01")
    now = datetime(2026, 11, 1, 9, 0, tzinfo=CST)
    assert last_month(now).label == "2026-10"
    assert last_month(datetime(2027, 1, 1, 0, 30, tzinfo=CST)).label == "2026-12"


@pytest.mark.parametrize(("name", "unit", "vertical"), [
    ("杭州发布", "杭州市人民政府新闻办公室", "发布"),  # 人民政府 contains 民政: ignored
    ("杭州民政", "杭州市民政局", "民政"),
    ("平安西湖", "杭州市公安局西湖区分局", "公安"),
    ("杭州交警", "杭州市公安局交通警察支队", "交警"),  # 交警 before 公安
    ("杭州消防", "杭州市消防救援支队", "消防"),
    ("健康杭州", "杭州市卫生健康委员会", "卫健"),
    ("杭州教育发布", "杭州市教育局", "教育"),
    ("之江度假区发布", "杭州市之江旅游度假区管理委员会", "发布"),  # a 发布 account
    ("某某微政务", "某市文化广电旅游局", "文旅"),  # the unit decides
])
def test_derive_vertical(name: str, unit: str, vertical: str) -> None:
    assert derive_vertical(name, unit) == vertical


def test_registry_extras() -> None:
    extras = extras_from_dict({"accounts": [
        {"id": 1, "platform": "weibo", "name": "x", "vertical": "应急",
         "verified_at": "2020-01-01"},
        {"id": "2", "name": "y"}]})
    assert extras == {("weibo", "1"): {"vertical": "应急", "verified_at": "2020-01-01"}}
    acc = Account(id="1", platform="weibo", name="杭州发布")
    assert vertical_of(acc, extras) == "应急"
    assert verified_epoch(acc, extras) == datetime(2020, 1, 1, tzinfo=CST).timestamp()
    assert verified_epoch(Account(id="2", platform="weibo", name="y"), extras) is None


def test_registry_keeps_vertical_and_verified_at() -> None:
    """The registry carries both (validated); the index and checks use them by default."""
    import yaml

    from matrixwatch.registry import Registry, RegistryError
    from matrixwatch.reports.compliance import run_checks
    from matrixwatch.reports.index import compute_index
    from tests.reports.index_data import EVENTS, REGISTRY, A, B

    reg = Registry.from_dict(yaml.safe_load("""
accounts:
  - {id: "1", platform: weibo, name: 杭州发布, vertical: 应急, verified_at: 2020-01-01}
  - {id: "2", platform: weibo, name: 平安杭州, verified_at: "2021-06-30T12:00:00+08:00"}
  - {id: "3", platform: weibo, name: 杭州交警}
"""))
    acc1, acc2, acc3 = (reg.get("weibo", i) for i in "123")
    assert acc1 is not None and acc2 is not None and acc3 is not None
    assert reg.extras[("weibo", "1")]["vertical"] == "应急"
    assert ("weibo", "3") not in reg.extras
    assert vertical_of(acc1, reg.extras) == "应急" and vertical_of(acc3, reg.extras) == "交警"
    assert verified_epoch(acc1, reg.extras) == datetime(2020, 1, 1, tzinfo=CST).timestamp()
    assert verified_epoch(acc2, reg.extras) == datetime(2021, 6, 30, 12, tzinfo=CST).timestamp()
    with pytest.raises(RegistryError, match=r"accounts\[0\]: verified_at"):
        Registry.from_dict({"accounts": [{"id": "1", "platform": "weibo", "name": "x",
                                          "verified_at": "last spring"}]})

    per = parse_period("2026-10")
    rows = {r.account_id: r for r in compute_index(Registry.from_dict(REGISTRY), EVENTS, per)}
    assert (rows[A].raw["verified_days"], rows[B].raw["verified_days"]) == (304.0, None)
    pinned = {**REGISTRY, "accounts": [{**a, "vertical": "公安"} if a["id"] == B else a
                                       for a in REGISTRY["accounts"]]}
    comp = {r.account_id: r for r in run_checks(Registry.from_dict(pinned), EVENTS, per)}
    assert (comp[A].vertical, comp[B].vertical) == ("发布", "公安")
