"""Weibo time formats → aware datetimes (matrixwatch.streams.weibo_time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matrixwatch.streams.weibo_time import SHANGHAI, parse_weibo_time, to_iso, weibo_iso

NOW = datetime(2026, 11, 21, 12, 0, 30, 123456, tzinfo=SHANGHAI)


def iso(s: str, now: datetime = NOW) -> str:
    return to_iso(parse_weibo_time(s, now))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # open API / weibo.com ajax / hotflow
        ("Sat Nov 21 10:00:00 +0800 2026", "2026-11-21T10:00:00+08:00"),
        ("Sat Jun 15 11:44:46 +0800 2019", "2019-06-15T11:44:46+08:00"),
        ("  Sat Nov 21 10:00:00 +0800 2026 ", "2026-11-21T10:00:00+08:00"),
        # another offset is converted to +08:00, same instant
        ("Sat Nov 21 02:00:00 +0000 2026", "2026-11-21T10:00:00+08:00"),
        ("Fri Nov 20 21:30:00 -0500 2026", "2026-11-21T10:30:00+08:00"),
        # relative (2019-era m.weibo.cn), against NOW in Shanghai, to the second
        ("刚刚", "2026-11-21T12:00:30+08:00"),
        ("30秒前", "2026-11-21T12:00:00+08:00"),
        ("5分钟前", "2026-11-21T11:55:30+08:00"),
        ("3小时前", "2026-11-21T09:00:30+08:00"),
        ("2天前", "2026-11-19T12:00:30+08:00"),
        ("今天 08:05", "2026-11-21T08:05:00+08:00"),
        ("昨天 11:59", "2026-11-20T11:59:00+08:00"),
        ("昨天23:01", "2026-11-20T23:01:00+08:00"),
        ("前天 00:00", "2026-11-19T00:00:00+08:00"),
        ("11-20", "2026-11-20T00:00:00+08:00"),
        ("11-21", "2026-11-21T00:00:00+08:00"),
        ("06-14", "2026-06-14T00:00:00+08:00"),
        ("12-25", "2025-12-25T00:00:00+08:00"),  # later than now this year → last year
        ("11-20 18:30", "2026-11-20T18:30:00+08:00"),
        ("11-21 18:30", "2025-11-21T18:30:00+08:00"),  # later today → a year ago
        # absolute dates; naive means Asia/Shanghai
        ("2019-06-14", "2019-06-14T00:00:00+08:00"),
        ("2019-06-14 20:39", "2019-06-14T20:39:00+08:00"),
        ("2019-06-14 20:39:20", "2019-06-14T20:39:20+08:00"),
        # ISO-8601 with an offset passes through (normalised to +08:00)
        ("2026-11-21T10:00:00+08:00", "2026-11-21T10:00:00+08:00"),
        ("2026-11-21T02:00:00Z", "2026-11-21T10:00:00+08:00"),
        ("2026-11-21T02:00:00.250+00:00", "2026-11-21T10:00:00.250000+08:00"),
    ],
)
def test_formats(raw: str, expected: str) -> None:
    assert iso(raw) == expected
    assert weibo_iso(raw, NOW) == expected
    assert datetime.fromisoformat(expected).tzinfo is not None


def test_relative_resolves_in_shanghai_whatever_now_zone() -> None:
    # 2026-11-20T17:00Z is already 01:00 on the 21st in Shanghai: "昨天" is the 20th.
    now_utc = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    assert iso("昨天 11:59", now_utc) == "2026-11-20T11:59:00+08:00"
    assert iso("今天 00:30", now_utc) == "2026-11-21T00:30:00+08:00"
    assert iso("11-21", now_utc) == "2026-11-21T00:00:00+08:00"


def test_naive_now_is_shanghai() -> None:
    assert iso("5分钟前", datetime(2026, 11, 21, 12, 0)) == "2026-11-21T11:55:00+08:00"


def test_month_day_across_new_year() -> None:
    jan2 = datetime(2027, 1, 2, 9, 0, tzinfo=SHANGHAI)
    assert iso("12-31", jan2) == "2026-12-31T00:00:00+08:00"
    assert iso("01-01", jan2) == "2027-01-01T00:00:00+08:00"
    assert iso("昨天 10:00", jan2) == "2027-01-01T10:00:00+08:00"
    # 02-29 only exists in a leap year: the previous year is tried too
    assert iso("02-29", datetime(2029, 3, 1, tzinfo=SHANGHAI)) == "2028-02-29T00:00:00+08:00"


def test_returns_aware_datetime() -> None:
    dt = parse_weibo_time("Sat Nov 21 10:00:00 +0800 2026", NOW)
    assert dt == datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert dt.utcoffset() == timedelta(hours=8)
    assert parse_weibo_time("5分钟前", NOW).tzinfo is not None


def test_to_iso() -> None:
    dt = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert to_iso(dt) == "2026-11-21T10:00:00+08:00"
    assert to_iso(dt, tz=None) == "2026-11-21T02:00:00+00:00"  # keep the offset
    assert to_iso(datetime(2026, 11, 21, 10, 0)) == "2026-11-21T10:00:00+08:00"  # naive
    other = timezone(timedelta(hours=-5))
    assert to_iso(dt, tz=other) == "2026-11-20T21:00:00-05:00"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "昨天",
        "昨天 25:00",
        "昨天 11:5",
        "昨天 11:59:60",
        "N分钟前",
        "-5分钟前",
        "٣分钟前",  # non-ASCII digits
        "99999999天前",
        "13-01",
        "02-30",
        "1-1",
        "2019-13-01",
        "2019-06-14 25:00",
        "Sat Nov 31 10:00:00 +0800 2026",  # no 31 November
        "Sat Nov 21 10:00:00 +0800",
        "Sat Nov 21 10:00:00 +0800 2026 extra",
        "Sat Foo 21 10:00:00 +0800 2026",
        "Xyz Nov 21 10:00:00 +0800 2026",
        "Sat Nov 21 10:00 +0800 2026",
        "Sat Nov 21 10:00:00 0800 2026",
        "Sat Nov 21 10:00:00 +2500 2026",
        "Sat Nov 21 10:00:00 +0800 +2026",
        "Sat Nov 2_1 10:00:00 +0800 2026",
        "x" * 100,
    ],
)
def test_rejects_garbage_with_clear_message(raw: str) -> None:
    with pytest.raises(ValueError, match=r"Weibo|offset|time|date"):
        parse_weibo_time(raw, NOW)
    with pytest.raises(ValueError):
        weibo_iso(raw, NOW)


def test_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="string"):
        parse_weibo_time(1700000000, NOW)  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_value_error(s: str) -> None:
    try:
        dt = parse_weibo_time(s, NOW)
    except ValueError:
        return
    assert dt.tzinfo is not None
    assert datetime.fromisoformat(to_iso(dt)) == dt


@given(st.datetimes(min_value=datetime(2009, 8, 1), max_value=datetime(2100, 1, 1)))
def test_rfc_round_trip(naive: datetime) -> None:
    dt = naive.replace(microsecond=0, tzinfo=SHANGHAI)
    s = dt.astimezone(timezone(timedelta(hours=8))).strftime("%a %b %d %H:%M:%S %z %Y")
    assert parse_weibo_time(s, NOW) == dt
    assert weibo_iso(s, NOW) == to_iso(dt)
