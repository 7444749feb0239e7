"""Weibo counters → ints.

Older responses give ints; newer ones give display strings shaped by
``number_display_strategy`` ("100万+", "36.2万", "1.2亿", "1,234"). Counts feed
dashboards and spike floors, so a display string must become a number, and
garbage must be an error rather than a silent zero.
"""

from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["MAX_COUNT", "parse_count"]

#: Largest value accepted: Elasticsearch ``long`` and Kafka JSON consumers in other
#: languages must be able to hold it.
MAX_COUNT = 2**63 - 1

_UNITS = {
    "千": 1_000,
    "k": 1_000,
    "K": 1_000,
    "万": 10_000,
    "w": 10_000,
    "W": 10_000,
    "亿": 100_000_000,
}
_DIGITS = frozenset("0123456789")


def _check(n: int, v: object) -> int:
    if n < 0:
        raise ValueError(f"negative count: {v!r}")
    if n > MAX_COUNT:
        raise ValueError(f"count out of range: {v!r}")
    return n


def parse_count(v: object) -> int | None:
    """An int for a Weibo count, None when absent ("" or None); ``ValueError`` otherwise.

    "36.2万" → 362000, "100万+" → 1000000 (a lower bound is the best we know),
    "1.2亿" → 120000000, "1,234" → 1234. Booleans are rejected although they are ints.
    """
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError(f"bool is not a count: {v!r}")
    if isinstance(v, int):
        return _check(v, v)
    if isinstance(v, float):
        if not math.isfinite(v) or not v.is_integer():
            raise ValueError(f"not a whole count: {v!r}")
        return _check(int(v), v)
    if not isinstance(v, str):
        raise ValueError(f"not a count: {type(v).__name__}")
    s = v.strip()
    if not s:
        return None
    if len(s) > 40:
        raise ValueError(f"not a count: {s[:40]!r}...")
    if s.isascii() and s.isdigit():  # the common case, fast
        return _check(int(s), v)
    if s[0] == "-":
        raise ValueError(f"negative count: {v!r}")
    s = s.replace(",", "").replace("，", "").rstrip("+").strip()
    mult = 1
    if s and s[-1] in _UNITS:
        mult = _UNITS[s[-1]]
        s = s[:-1].strip()
    whole, dot, frac = s.partition(".")
    if not whole or not set(whole) <= _DIGITS or (dot and (not frac or not set(frac) <= _DIGITS)):
        raise ValueError(f"not a count: {v!r}")
    n = Decimal(s) * mult
    if n != n.to_integral_value():
        raise ValueError(f"not a whole count: {v!r}")
    return _check(int(n), v)
