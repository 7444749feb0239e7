"""Chinese wording and Asia/Shanghai times shared by the engine and the notifiers.

Stored times keep the event's own offset (ISO-8601); people see Beijing time, because
duty officers complained of UTC timestamps in other tools' alerts.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from matrixwatch.registry import Registry
from matrixwatch.streams.records import Account
from matrixwatch.streams.spikes import SEVERITY_ZH

SHANGHAI = ZoneInfo("Asia/Shanghai")
_LOCAL_MIN = datetime.min.replace(tzinfo=SHANGHAI)
_LOCAL_MAX = datetime.max.replace(tzinfo=SHANGHAI)

LEVEL_ZH = {"national": "国家级", "province": "省级", "city": "市级", "county": "区县级",
            "township": "乡镇级", "department": "部门"}
KIND_ZH = {"post": "微博", "repost": "转发", "comment": "评论"}
TYPE_ZH = {"spike": "声量突增", "negative_surge": "负面激增", "keyword": "关注词命中",
           "stale_account": "账号久未更新", "unanswered": "网民提问未回复",
           "linkage_lagging": "联动进度滞后", "linkage_low": "联动率偏低",
           "collector_health": "采集异常", "quiet_digest": "静默时段汇总"}
_URL_SECRET = re.compile(r"(https?://[^/\s?#]+)[^\s]*")


def alert_id(rule: str, key: str, discriminator: object) -> str:
    """Deterministic id: the same situation replayed is the same alert (deduped by the sinks)."""
    return hashlib.sha1(f"{rule}|{key}|{discriminator}".encode()).hexdigest()[:24]


def severity_zh(severity: str) -> str:
    return f"{SEVERITY_ZH.get(severity, severity)}色"


def to_local(ts: str | float) -> datetime:
    """``ts`` in Beijing time; never raises on a time outside ``datetime``'s range.

    Alert wording runs in the worker's timers: an absurd event time (year 1 at +14:00,
    year 9999, NaN) that slipped into rule state must not crash the worker with an
    OverflowError/ValueError, so such times are clamped to ``datetime.min``/``max``.
    """
    if isinstance(ts, int | float):
        try:
            return datetime.fromtimestamp(ts, tz=SHANGHAI)
        except (OverflowError, ValueError, OSError):
            return _LOCAL_MAX if ts > 0 else _LOCAL_MIN
    dt = datetime.fromisoformat(ts)
    try:
        return dt.astimezone(SHANGHAI)
    except (OverflowError, ValueError):
        return _LOCAL_MAX if dt.year > 1 else _LOCAL_MIN


def local_str(ts: str | float, seconds: bool = True) -> str:
    """``2026-11-02 14:05:00`` in Beijing time (the suffix is added by the caller)."""
    return to_local(ts).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def who(registry: Registry, platform: str, account_id: str | None) -> str:
    """``名称（单位）`` from the registry, or the bare id."""
    acc = registry.get(platform, account_id)
    if acc is None:
        return account_id or "未知账号"
    return f"{acc.name}（{acc.unit}）" if acc.unit else acc.name


def name_of(acc: Account | None, fallback: str | None) -> str:
    return acc.name if acc is not None else (fallback or "未知账号")


def snippet(text: str, limit: int = 60) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def sample(text: str, url: str | None, limit: int = 60) -> str:
    """A sample post as one string: the snippet, then its link (renderers split on it)."""
    s = snippet(text, limit)
    return f"{s} {url}" if url else s


def split_sample(s: str) -> tuple[str, str | None]:
    """Inverse of :func:`sample`: (text, url or None)."""
    head, _, tail = s.rpartition(" ")
    if tail.startswith(("http://", "https://")):
        return head, tail
    if s.startswith(("http://", "https://")) and " " not in s:
        return "", s
    return s, None


def redact_urls(s: str) -> str:
    """Keep scheme and host of every URL: paths and queries carry tokens and signatures."""
    return _URL_SECRET.sub(r"\1/…", s)
