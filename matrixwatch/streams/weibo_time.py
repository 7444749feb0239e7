"""Weibo timestamps → aware datetimes and ISO-8601 strings with offset.

Weibo serves several time formats depending on the endpoint and era (see
shared/data/weibo_samples/README.md): the RFC-822-like ``"Sat Nov 21 10:00:00 +0800 2026"``
of the open API, weibo.com ajax and newer m.weibo.cn, and the *relative* strings of the
2019-era m.weibo.cn (``刚刚``, ``5分钟前``, ``昨天 11:59``, ``06-14``), which only mean
something against the moment they were collected. Every window and deadline downstream
runs on event time, so this must be exact, deterministic (no wall clock: relative
strings resolve against the caller's ``now``) and strict: a string we cannot read
raises ``ValueError`` rather than guessing.

The parser is a small dispatch on the shape of the string rather than a pile of
regexes; the RFC form, which is by far the most common, is parsed by hand because
``strptime`` costs ~10 µs a call and runs twice per repost.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["CST", "SHANGHAI", "parse_weibo_time", "to_iso", "weibo_iso"]

#: Where naive Weibo times live. Used to interpret naive timestamps.
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: The fixed +08:00 offset every Weibo time is normalised to (China has had no DST since
#: 1991, and a fixed offset keeps ``isoformat`` output independent of tzdata).
CST = timezone(timedelta(hours=8))

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_WEEKDAYS = frozenset(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))

# "N<unit>前" → seconds per unit.
_AGO_UNITS: tuple[tuple[str, int], ...] = (
    ("秒前", 1),
    ("秒钟前", 1),
    ("分钟前", 60),
    ("分前", 60),
    ("小时前", 3600),
    ("天前", 86400),
)
# "<day word> HH:MM" → days back from today.
_DAY_WORDS: tuple[tuple[str, int], ...] = (("今天", 0), ("昨天", 1), ("前天", 2))

_MAX_AGO_SECONDS = 400 * 86400  # "N天前" beyond ~a year is not something Weibo emits


def _uint(s: str, what: str, src: str) -> int:
    """ASCII digits only: ``int()`` would also take "+5", " 5", "1_0" and "٥"."""
    if not s or not s.isascii() or not s.isdigit():
        raise ValueError(f"bad {what} {s!r} in Weibo time {src!r}")
    return int(s)


@lru_cache(maxsize=64)
def _offset(s: str) -> tzinfo:
    """UTC offsets such as "+0800" / "-0530" → fixed tzinfo (cached: there are only a handful)."""
    if len(s) != 5 or s[0] not in "+-" or not s[1:].isascii() or not s[1:].isdigit():
        raise ValueError(f"bad UTC offset {s!r}")
    hours, minutes = int(s[1:3]), int(s[3:5])
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad UTC offset {s!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    if delta == timedelta(hours=8):
        return CST
    return timezone(-delta if s[0] == "-" else delta)


@lru_cache(maxsize=8192)
def _parse_rfc(s: str) -> datetime:
    """The RFC form "Sat Nov 21 10:00:00 +0800 2026" (strptime "%a %b %d %H:%M:%S %z %Y"), by hand.

    Cached: the root of a popular post recurs in every repost of it.
    """
    parts = s.split()
    if len(parts) != 6:
        raise ValueError(f"unrecognised Weibo time {s!r}")
    wday, mon, day, hms, off, year = parts
    if wday not in _WEEKDAYS or mon not in _MONTHS:
        raise ValueError(f"unrecognised Weibo time {s!r}")
    hh, mm, ss = _clock(hms, s, seconds=True)
    try:
        return datetime(
            _uint(year, "year", s),
            _MONTHS[mon],
            _uint(day, "day", s),
            hh,
            mm,
            ss,
            tzinfo=_offset(off),
        )
    except ValueError as e:  # day 31 in a 30-day month, offset, ...
        raise ValueError(f"invalid Weibo time {s!r}: {e}") from None


def _clock(hms: str, src: str, *, seconds: bool) -> tuple[int, int, int]:
    """Clock times "HH:MM" or "HH:MM:SS" (the latter required when ``seconds``) → (h, m, s)."""
    bits = hms.split(":")
    if len(bits) not in ((3,) if seconds else (2, 3)):
        raise ValueError(f"bad clock time {hms!r} in Weibo time {src!r}")
    nums = [_uint(b, "clock time", src) for b in bits]
    if len(bits[0]) > 2 or any(len(b) != 2 for b in bits[1:]):
        raise ValueError(f"bad clock time {hms!r} in Weibo time {src!r}")
    hh, mm = nums[0], nums[1]
    ss = nums[2] if len(nums) == 3 else 0
    if hh > 23 or mm > 59 or ss > 59:
        raise ValueError(f"bad clock time {hms!r} in Weibo time {src!r}")
    return hh, mm, ss


@lru_cache(maxsize=16)
def _local_now(now: datetime) -> datetime:
    """The reference instant in Asia/Shanghai, to the second (relative times have no
    sub-second meaning, and whole seconds keep the ISO output tidy). Cached: a batch
    shares one collection time."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=SHANGHAI)
    return now.astimezone(SHANGHAI).replace(microsecond=0)


def _parse_relative(s: str, now: datetime) -> datetime | None:
    """The relative forms of m.weibo.cn, or None if ``s`` is not one of them."""
    if s == "刚刚":
        return _local_now(now)
    for suffix, unit in _AGO_UNITS:
        if s.endswith(suffix):
            n = _uint(s[: -len(suffix)].strip(), "count", s)
            if n * unit > _MAX_AGO_SECONDS:
                raise ValueError(f"implausible relative Weibo time {s!r}")
            return _local_now(now) - timedelta(seconds=n * unit)
    for word, days_back in _DAY_WORDS:
        if s.startswith(word):
            hh, mm, ss = _clock(s[len(word) :].strip(), s, seconds=False)
            day = _local_now(now).date() - timedelta(days=days_back)
            return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=SHANGHAI)
    return None


def _parse_month_day(s: str, now: datetime) -> datetime:
    """Month-day "MM-DD" / "MM-DD HH:MM": this year, or last year if that would be in the future."""
    date_part, _, clock_part = s.partition(" ")
    mo, _, dd = date_part.partition("-")
    if len(mo) != 2 or len(dd) != 2:
        raise ValueError(f"unrecognised Weibo time {s!r}")
    month, day = _uint(mo, "month", s), _uint(dd, "day", s)
    hh, mm, ss = _clock(clock_part.strip(), s, seconds=False) if clock_part else (0, 0, 0)
    local_now = _local_now(now)
    for year in (local_now.year, local_now.year - 1):
        try:
            dt = datetime(year, month, day, hh, mm, ss, tzinfo=SHANGHAI)
        except ValueError:
            continue  # 02-29 outside a leap year: try the previous year
        if dt <= local_now:
            return dt
    raise ValueError(f"invalid Weibo date {s!r} relative to {local_now.isoformat()}")


def _parse_iso(s: str) -> datetime:
    """Dates "YYYY-MM-DD", "YYYY-MM-DD HH:MM(:SS)" and full ISO-8601; naive means Asia/Shanghai."""
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"unrecognised Weibo time {s!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return dt


def parse_weibo_time(s: str, now: datetime) -> datetime:
    """Parse any Weibo time format to an aware datetime.

    ``now`` is the collection time; relative strings ("5分钟前", "昨天 11:59", "06-14")
    resolve against it in Asia/Shanghai. A naive ``now`` is taken to be Shanghai time.
    Raises ``ValueError`` with the offending string in the message.
    """
    if not isinstance(s, str):
        raise ValueError(f"Weibo time must be a string, got {type(s).__name__}")
    s = s.strip()
    if not s:
        raise ValueError("empty Weibo time")
    if len(s) > 64:
        raise ValueError(f"unrecognised Weibo time {s[:64]!r}...")
    first = s[0]
    if first.isascii() and first.isalpha():
        return _parse_rfc(s)
    if first.isascii() and first.isdigit():
        head = s.split(" ", 1)[0]
        if len(head) == 5 and head[2] == "-":
            return _parse_month_day(s, now)
        if len(head) >= 10 and head[4] == "-":
            return _parse_iso(s)
    rel = _parse_relative(s, now)
    if rel is not None:
        return rel
    raise ValueError(f"unrecognised Weibo time {s!r}")


def to_iso(dt: datetime, tz: tzinfo | None = CST) -> str:
    """ISO-8601 with offset. Normalised to +08:00 by default (stored Weibo times all
    share one offset, so they also sort as strings); ``tz=None`` keeps ``dt``'s own
    offset. A naive ``dt`` is taken to be Asia/Shanghai."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    if tz is not None:
        dt = dt.astimezone(tz)
    return dt.isoformat()


@lru_cache(maxsize=8192)
def _rfc_iso(s: str) -> str:
    return to_iso(_parse_rfc(s))


def weibo_iso(s: str, now: datetime) -> str:
    """``to_iso(parse_weibo_time(s, now))``: what a normalized event stores.

    The absolute RFC form skips the dispatch and is cached end to end (it does not
    depend on ``now``, and a root's time recurs in every repost of it).
    """
    if type(s) is str and s[:1].isascii() and s[:1].isalpha() and len(s) <= 64:
        return _rfc_iso(s.strip())
    return to_iso(parse_weibo_time(s, now))
