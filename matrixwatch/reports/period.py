"""Report periods: ``2026-10`` (a month), ``2026`` (a year), ``2026-Q4`` or a day range.

Periods are half-open ``[start, end)`` in Asia/Shanghai, because managers rank accounts
by the local calendar month. The year-ago period (成长指数 year-on-year growth) is the
same calendar span one year earlier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from matrixwatch.streams.weibo_time import SHANGHAI

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


class PeriodError(ValueError):
    """A period string we cannot read."""


def _at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI)


def _add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def _year_back(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 Feb → 28 Feb
        return d.replace(year=d.year - 1, day=28)


@dataclass(frozen=True)
class Period:
    """A half-open local-calendar span with the label reports and stored rows carry."""

    label: str
    start: datetime
    end: datetime

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400.0

    @property
    def lo(self) -> float:
        return self.start.timestamp()

    @property
    def hi(self) -> float:
        return self.end.timestamp()

    def year_ago(self) -> Period:
        s, e = _year_back(self.start.date()), _year_back(self.end.date())
        return Period(f"{self.label}@-1y", _at(s), _at(e))

    def months(self) -> Iterator[tuple[str, datetime, datetime, int]]:
        """Calendar months overlapping the period: (YYYY-MM, start, end, days in month)."""
        d = self.start.date().replace(day=1)
        while _at(d) < self.end:
            nxt = _add_months(d, 1)
            s, e = max(_at(d), self.start), min(_at(nxt), self.end)
            yield f"{d.year:04d}-{d.month:02d}", s, e, (nxt - d).days
            d = nxt


def parse_period(text: str) -> Period:
    """``YYYY-MM`` | ``YYYY`` | ``YYYY-Qn`` | ``YYYY-MM-DD..YYYY-MM-DD`` (end inclusive)."""
    t = text.strip()
    if m := _MONTH.match(t):
        y, mo = int(m[1]), int(m[2])
        if not 1 <= mo <= 12:
            raise PeriodError(f"no month {mo} in {text!r}")
        d = date(y, mo, 1)
        return Period(f"{y:04d}-{mo:02d}", _at(d), _at(_add_months(d, 1)))
    if m := _YEAR.match(t):
        y = int(m[1])
        return Period(f"{y:04d}", _at(date(y, 1, 1)), _at(date(y + 1, 1, 1)))
    if m := _QUARTER.match(t):
        y, q = int(m[1]), int(m[2])
        d = date(y, 3 * q - 2, 1)
        return Period(f"{y:04d}-Q{q}", _at(d), _at(_add_months(d, 3)))
    if m := _RANGE.match(t):
        try:
            a, b = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        except ValueError as e:
            raise PeriodError(f"bad date in {text!r}: {e}") from None
        if b < a:
            raise PeriodError(f"period ends before it starts: {text!r}")
        return Period(f"{a.isoformat()}..{b.isoformat()}", _at(a), _at(b + timedelta(days=1)))
    raise PeriodError(f"not a period (YYYY-MM, YYYY, YYYY-Qn or YYYY-MM-DD..YYYY-MM-DD): {text!r}")


def last_month(now: datetime) -> Period:
    """The calendar month before ``now`` (local time): what the monthly job reports on."""
    local = now.astimezone(SHANGHAI).date().replace(day=1)
    prev = _add_months(local, -1)
    return parse_period(f"{prev.year:04d}-{prev.month:02d}")
