"""Weibo counters → ints (matrixwatch.streams.counts)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matrixwatch.streams.counts import MAX_COUNT, parse_count


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (1204, 1204),
        ("1204", "1204"),
        (" 7 ", 7),
        ("36.2万", 362000),
        ("100万+", 1000000),
        ("100万 +", 1000000),
        ("1.2亿", 120000000),
        ("3亿", 300000000),
        ("1,234", 1234),
        ("1,234,567", 1234567),
        ("2.5千", 2500),
        ("1.2w", 12000),
        ("5k", 5000),
        ("999+", 999),
        (12.0, 12),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_count(raw: object, expected: object) -> None:
    if expected == "1204":
        expected = 1204
    assert parse_count(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "-5",
        -1,
        -3.0,
        "1.5",
        "1.23456万",
        "万",
        "1..2万",
        "1.万",
        ".5万",
        "1e5",
        "NaN",
        "٣",  # non-ASCII digit
        "１２",  # full-width digits
        12.5,
        float("nan"),
        float("inf"),
        True,
        False,
        [],
        {},
        b"12",
        str(MAX_COUNT + 1),
        "9" * 41,
    ],
)
def test_rejects_garbage(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_count(raw)


def test_bool_guard_message() -> None:
    with pytest.raises(ValueError, match="bool"):
        parse_count(True)


@given(st.integers(min_value=0, max_value=MAX_COUNT))
def test_ints_and_their_strings(n: int) -> None:
    assert parse_count(n) == n
    assert parse_count(str(n)) == n
    assert parse_count(f"{n:,}") == n


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none(), st.booleans()))
def test_only_value_error(v: object) -> None:
    try:
        r = parse_count(v)
    except ValueError:
        return
    assert r is None or (isinstance(r, int) and 0 <= r <= MAX_COUNT)
