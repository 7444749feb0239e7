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
