"""Alert rules: YAML files, one rule per file, validated on load.

A rule says *what* to watch (``type`` + ``params``), *whom* it concerns (``filter``),
*how loud* it is (``severity``, ``escalate_after``), *when to stay quiet*
(``realert``, ``quiet_hours``) and *where it goes* (``routing``). Every problem is
reported as ``file:line: field: message`` so an operator editing a rule at 3 a.m.
knows exactly what to fix; unknown keys are errors (a typo must not silently turn a
floor off). Loading uses the safe loader only.

Schema (all keys but ``type`` optional)::

    name: volume_spike            # default: the file name without .yaml
    type: spike                   # see RULE_TYPES
    description: 账号声量突增
    enabled: true
    filter: {accounts: [...], units: [...], levels: [county], platforms: [weibo],
             kinds: [comment], sentiment: [negative], registered_only: true}
    params: {...}                 # per type, see PARAM_SPECS
    severity: auto                # 蓝/黄/橙/红 or blue/yellow/orange/red; auto = from the score
    realert: 1h                   # same key again within this: not stored, not sent
    escalate_after: 2h            # key still firing after this: one level up (per period)
    escalate_reset: 2h            # a longer gap ends the episode (default: escalate_after)
    quiet_hours: {start: "23:00", end: "07:00", min_severity: orange}
                                  # Beijing time; below min_severity: stored, held, and
                                  # summarised per channel in one digest at the window's end
    routing:                      # default: the routes of channels.yaml
      - {channels: [duty_dingtalk], levels: [county, township], min_severity: yellow}
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from matrixwatch.alerts.yamlsrc import Doc, SourceError, load, parse
from matrixwatch.streams.records import KINDS, LEVELS, Account, Alert, Event
from matrixwatch.streams.sentiment.base import LABELS
from matrixwatch.streams.spikes import (
    MAX_HALF_LIFE_BUCKETS,
    SEVERITIES,
    SEVERITY_ZH,
    SpikeParams,
)

__all__ = [
    "DEFAULT_RULES_DIR",
    "RULE_TYPES",
    "SEVERITIES",
    "SEVERITY_ZH",
    "Filter",
    "QuietHours",
    "Route",
    "Rule",
    "RuleError",
    "find_rule",
    "load_rule_file",
    "load_rules",
    "parse_duration",
    "parse_severity",
    "rule_from_text",
    "severity_rank",
]

DEFAULT_RULES_DIR = Path(__file__).parent / "rules"

RULE_TYPES: tuple[str, ...] = (
    "spike", "negative_surge", "keyword", "stale_account", "unanswered",
    "linkage_lagging", "linkage_low", "collector_health",
)
AUTO_SEVERITY_TYPES = ("spike", "negative_surge")

SEVERITY_ALIASES: dict[str, str] = {
    **{s: s for s in SEVERITIES},
    **{zh: en for en, zh in SEVERITY_ZH.items()},
    **{f"{zh}色": en for en, zh in SEVERITY_ZH.items()},
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RuleError(ValueError):
    """A rule that cannot be used; the message is ``file:line: field: message``."""


# --- small value types ------------------------------------------------------------------
def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def parse_severity(value: object) -> str | None:
    """蓝/黄/橙/红, 蓝色…, or blue/yellow/orange/red → the English name; None if not one."""
    if not isinstance(value, str):
        return None
    return SEVERITY_ALIASES.get(value.strip().lower())


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a string such as ``90s``, ``5m``, ``1h30m``, ``14d``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str):
        return None
    s = value.strip().lower().replace(" ", "")
    if not s:
        return None
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(s) and pos > 0 else None


@dataclass(frozen=True)
class Filter:
    """Which events / accounts a rule looks at. Empty tuples mean "any"."""

    accounts: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    sentiment: tuple[str, ...] = ()
    registered_only: bool = True

    def matches_account(self, platform: str, account_id: str | None,
                        acc: Account | None) -> bool:
        """Account-level part: platform, id, unit and level (from the registry)."""
        if self.platforms and platform not in self.platforms:
            return False
        if self.accounts and account_id not in self.accounts:
            return False
        if acc is None:
            return not (self.registered_only or self.units or self.levels)
        if self.units and acc.unit not in self.units:
            return False
        return not (self.levels and acc.level not in self.levels)

    def matches_event(self, event: Event, acc: Account | None) -> bool:
        """Event-level part on top: kind and sentiment label."""
        if self.kinds and event.kind not in self.kinds:
            return False
        if self.sentiment and event.sentiment_label not in self.sentiment:
            return False
        return self.matches_account(event.platform, event.owner_id, acc)


@dataclass(frozen=True)
class QuietHours:
    """A local (Asia/Shanghai) window in which alerts below ``min_severity`` are held."""

    start: int  # minutes after midnight
    end: int  # minutes after midnight; end <= start wraps past midnight
    min_severity: str = "orange"
    days: tuple[int, ...] = ()  # weekday() of the window's start day; () = every day

    def covers(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        if self.start == self.end:
            inside, start_day = True, local.weekday()
        elif self.start < self.end:
            inside, start_day = self.start <= minute < self.end, local.weekday()
        else:  # wraps midnight: 23:00-07:00 at 03:00 belongs to the previous day's window
            inside = minute >= self.start or minute < self.end
            start_day = local.weekday() if minute >= self.start else (local.weekday() - 1) % 7
        return inside and (not self.days or start_day in self.days)

    def holds(self, severity: str, local: datetime) -> bool:
        return self.covers(local) and severity_rank(severity) < severity_rank(self.min_severity)


@dataclass(frozen=True)
class Route:
    """Channels for the alerts that match every condition given (empty = any)."""

    channels: tuple[str, ...]
    units: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    min_severity: str | None = None
    severities: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()  # keyword rules: the watch lists that hit
    stop: bool = False
    where: str = ""

    def matches(self, alert: Alert) -> bool:
        if self.units and alert.unit not in self.units:
            return False
        if self.levels and alert.level not in self.levels:
            return False
        if self.accounts and alert.account_id not in self.accounts:
            return False
        if self.severities and alert.severity not in self.severities:
            return False
        if self.min_severity and severity_rank(alert.severity) < severity_rank(self.min_severity):
            return False
        if self.lists:
            hit = {k[5:] for k in (alert.values or {}) if k.startswith("list:")}
            if not hit.intersection(self.lists):
                return False
        return True


# --- per-type parameters ----------------------------------------------------------------
@dataclass(frozen=True)
class SpikeRuleParams:
    per: str = "account"  # account | post
    bucket: float = 300.0
    lateness: float = 60.0
    detector: SpikeParams = field(default_factory=SpikeParams)
    post_ttl: float = 2 * 86400.0  # drop a post's state this long after its last event
    max_posts: int = 200  # per-post states kept per account (least recently active dropped)
    samples: int = 3


@dataclass(frozen=True)
class SurgeRuleParams(SpikeRuleParams):
    min_share: float = 0.4
    min_share_rise: float = 0.2
    min_total: int = 8
    share_half_life: float = 3 * 86400.0


@dataclass(frozen=True)
class KeywordList:
    name: str
    words: tuple[str, ...]
    severity: str | None = None


@dataclass(frozen=True)
class KeywordRuleParams:
    lists: tuple[KeywordList, ...] = ()
    fields: tuple[str, ...] = ("text",)
    min_hits: int = 1
    case_sensitive: bool = False


@dataclass(frozen=True)
class StaleRuleParams:
    after: float = 14 * 86400.0
    remind_every: float = 7 * 86400.0  # 0: fire once per stale period
    max_reminders: int = 4


QUESTION_MARKERS: tuple[str, ...] = (
    "请问", "怎么", "为什么", "为啥", "什么时候", "何时", "能否", "是否", "能不能",
    "可不可以", "有没有", "咋", "多久", "哪里", "在哪", "谁来管", "如何",
)


@dataclass(frozen=True)
class UnansweredRuleParams:
    after: float = 24 * 3600.0
    markers: tuple[str, ...] = QUESTION_MARKERS
    question_marks: bool = True  # ？ or ? makes a question too
    min_chars: int = 4
    max_pending: int = 200  # per account; the oldest are dropped beyond (state stays small)


@dataclass(frozen=True)
class LaggingRuleParams:
    checkpoints: tuple[float, ...] = (0.25, 0.5)
    threshold: float = 0.5
    max_listed: int = 20


@dataclass(frozen=True)
class LowRuleParams:
    threshold: float = 0.6
    escalate_below: float | None = 0.3  # one level up below this rate
    max_listed: int = 20


@dataclass(frozen=True)
class HealthRuleParams:
    min_failures: int = 3
    statuses: tuple[str, ...] = ("failing", "auth_expired")
    escalate_failures: int = 10  # one level up at this many consecutive failures


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    params: Any
    file: str = "<memory>"
    line: int = 1
    description: str = ""
    enabled: bool = True
    filter: Filter = field(default_factory=Filter)
    severity: str | None = None  # None: auto (spike types)
    realert: float = 3600.0
    escalate_after: float | None = None
    escalate_reset: float | None = None
    quiet_hours: tuple[QuietHours, ...] = ()
    routing: tuple[Route, ...] | None = None

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    def base_severity(self, default: str = "yellow") -> str:
        return self.severity or default


DEFAULT_SEVERITY: dict[str, str | None] = {
    "spike": None, "negative_surge": None, "keyword": "yellow", "stale_account": "yellow",
    "unanswered": "blue", "linkage_lagging": "blue", "linkage_low": "yellow",
    "collector_health": "orange",
}


# --- the loader -------------------------------------------------------------------------
Parser = Callable[[Doc, tuple, Any], Any]


def _fail(doc: Doc, path: tuple, msg: str) -> RuleError:
    return RuleError(str(doc.error(path, msg)))


def _check_keys(doc: Doc, path: tuple, data: Mapping, allowed: Sequence[str]) -> None:
    for k in data:
        if str(k) not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(doc, (*path, str(k)), f"unknown key{hint}; allowed: {', '.join(allowed)}")


def _mapping(doc: Doc, path: tuple, v: Any) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _fail(doc, path, f"expected a mapping, got {type(v).__name__}")
    return v


def _str_list(choices: Sequence[str] | None = None, nonempty: bool = False) -> Parser:
    def parse(doc: Doc, path: tuple, v: Any) -> tuple[str, ...]:
        if v is None:
            v = []
        if isinstance(v, str | int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list):
            raise _fail(doc, path, "expected a list")
        out = []
        for i, item in enumerate(v):
            if isinstance(item, bool) or not isinstance(item, str | int) or str(item) == "":
                raise _fail(doc, (*path, i), "expected a non-empty string")
            s = str(item)
            if choices is not None and s not in choices:
                raise _fail(doc, (*path, i), f"{s!r} is not one of {', '.join(choices)}")
            out.append(s)
        if nonempty and not out:
            raise _fail(doc, path, "must not be empty")
        return tuple(out)
    return parse


def _duration(doc: Doc, path: tuple, v: Any) -> float:
    d = parse_duration(v)
    if d is None:
        raise _fail(doc, path, f"expected a duration such as 90s, 5m, 2h, 14d; got {v!r}")
    return d


def _positive_duration(doc: Doc, path: tuple, v: Any) -> float:
    d = _duration(doc, path, v)
    if d <= 0:
        raise _fail(doc, path, "must be longer than 0")
    return d


def _opt_duration(doc: Doc, path: tuple, v: Any) -> float | None:
    if v is None or v is False:
        return None
    return _positive_duration(doc, path, v)


def _number(lo: float | None = None, hi: float | None = None, integer: bool = False,
            open_lo: bool = False) -> Parser:
    def parse(doc: Doc, path: tuple, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _fail(doc, path, f"expected a number, got {v!r}")
        if integer and int(v) != v:
            raise _fail(doc, path, f"expected a whole number, got {v!r}")
        if lo is not None and (v < lo or (open_lo and v == lo)):
            raise _fail(doc, path, f"must be {'>' if open_lo else '>='} {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise _fail(doc, path, f"must be <= {hi}, got {v!r}")
        return int(v) if integer else float(v)
    return parse


def _bool(doc: Doc, path: tuple, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(doc, path, f"expected true or false, got {v!r}")
    return v


def _severity(doc: Doc, path: tuple, v: Any) -> str:
    s = parse_severity(v)
    if s is None:
        raise _fail(doc, path, f"expected 蓝/黄/橙/红 or blue/yellow/orange/red, got {v!r}")
    return s


def _choice(*choices: str) -> Parser:
    def parse(doc: Doc, path: tuple, v: Any) -> str:
        if v not in choices:
            raise _fail(doc, path, f"expected one of {', '.join(choices)}, got {v!r}")
        return str(v)
    return parse


def _clock(doc: Doc, path: tuple, v: Any) -> int:
    raw = doc.raw.get(path, str(v)).strip()
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", raw)
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise _fail(doc, path, f"expected a time HH:MM (24 h, Asia/Shanghai), got {raw!r}")
    minute = int(m.group(1)) * 60 + int(m.group(2))
    if minute > 24 * 60:
        raise _fail(doc, path, f"expected a time up to 24:00, got {raw!r}")
    return minute % (24 * 60)


def _fraction_list(doc: Doc, path: tuple, v: Any) -> tuple[float, ...]:
    if not isinstance(v, list) or not v:
        raise _fail(doc, path, "expected a non-empty list of fractions in (0, 1)")
    out = []
    for i, x in enumerate(v):
        f = _number(0.0, 1.0, open_lo=True)(doc, (*path, i), x)
        if f >= 1.0:
            raise _fail(doc, (*path, i), "a checkpoint must be before the deadline (< 1)")
        out.append(f)
    if len(set(out)) != len(out):
        raise _fail(doc, path, "checkpoints must be distinct")
    return tuple(sorted(out))


def _thresholds(doc: Doc, path: tuple, v: Any) -> tuple[float, float, float, float]:
    if not isinstance(v, list) or len(v) != 4:
        raise _fail(doc, path, "expected 4 scores (-log10 p) for blue, yellow, orange, red")
    vals = [_number(0.0, open_lo=True)(doc, (*path, i), x) for i, x in enumerate(v)]
    if any(b <= a for a, b in pairwise(vals)):
        raise _fail(doc, path, "thresholds must increase")
    return (vals[0], vals[1], vals[2], vals[3])


def _keyword_lists(doc: Doc, path: tuple, v: Any) -> tuple[KeywordList, ...]:
    if not isinstance(v, list) or not v:
        raise _fail(doc, path, "expected a non-empty list of {name, words[, severity]}")
    out: list[KeywordList] = []
    for i, item in enumerate(v):
        p = (*path, i)
        item = _mapping(doc, p, item)
        _check_keys(doc, p, item, ("name", "words", "severity"))
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _fail(doc, (*p, "name"), "each list needs a name")
        if any(k.name == name for k in out):
            raise _fail(doc, (*p, "name"), f"duplicate list name {name!r}")
        words = _str_list(nonempty=True)(doc, (*p, "words"), item.get("words"))
        for j, w in enumerate(words):
            if not w.strip():
                raise _fail(doc, (*p, "words", j), "empty word")
        sev = item.get("severity")
        out.append(KeywordList(name=name.strip(), words=tuple(w.strip() for w in words),
                               severity=None if sev is None else
                               _severity(doc, (*p, "severity"), sev)))
    return tuple(out)


_SPIKE_DETECTOR_KEYS: dict[str, Parser] = {
    "min_count": _number(0.0), "min_ratio": _number(0.0), "warmup": _duration,
    "mean_half_life": _positive_duration, "var_half_life": _positive_duration,
    "dispersion": _number(0.0, open_lo=True), "thresholds": _thresholds,
    "clip": _number(0.0, open_lo=True), "refractory": _duration, "escalate": _bool,
    "mean_floor": _number(0.0, open_lo=True),
}
_SPIKE_KEYS: dict[str, Parser] = {
    "per": _choice("account", "post"), "bucket": _positive_duration, "lateness": _duration,
    "post_ttl": _positive_duration, "max_posts": _number(1, integer=True),
    "samples": _number(0, 20, integer=True), **_SPIKE_DETECTOR_KEYS,
}
_SURGE_KEYS: dict[str, Parser] = {
    **_SPIKE_KEYS, "min_share": _number(0.0, 1.0), "min_share_rise": _number(0.0, 1.0),
    "min_total": _number(0, integer=True), "share_half_life": _positive_duration,
}
# Per-post keys have no history before the post: a short warmup and memory instead.
_PER_POST_DEFAULTS: dict[str, Any] = {
    "warmup": 3600.0, "mean_half_life": 2 * 3600.0, "var_half_life": 86400.0,
    "min_count": 20.0, "refractory": 6 * 3600.0,
}
_SURGE_DEFAULTS: dict[str, Any] = {"min_count": 6.0}

PARAM_SPECS: dict[str, dict[str, Parser]] = {
    "spike": _SPIKE_KEYS,
    "negative_surge": _SURGE_KEYS,
    "keyword": {"lists": _keyword_lists, "fields": _str_list(("text", "root_text"), True),
                "min_hits": _number(1, integer=True), "case_sensitive": _bool},
    "stale_account": {"after": _positive_duration, "days": _number(0.0, open_lo=True),
                      "remind_every": _duration, "max_reminders": _number(0, integer=True)},
    "unanswered": {"after": _positive_duration, "hours": _number(0.0, open_lo=True),
                   "markers": _str_list(), "question_marks": _bool,
                   "min_chars": _number(0, integer=True),
                   "max_pending": _number(1, integer=True)},
    "linkage_lagging": {"checkpoints": _fraction_list, "threshold": _number(0.0, 1.0),
                        "max_listed": _number(1, integer=True)},
    "linkage_low": {"threshold": _number(0.0, 1.0), "escalate_below": _number(0.0, 1.0),
                    "max_listed": _number(1, integer=True)},
    "collector_health": {"min_failures": _number(1, integer=True),
                         "statuses": _str_list(("failing", "auth_expired"), True),
                         "escalate_failures": _number(1, integer=True)},
}


def _params(doc: Doc, rtype: str, raw: Any) -> Any:
    path = ("params",)
    data = _mapping(doc, path, raw)
    spec = PARAM_SPECS[rtype]
    _check_keys(doc, path, data, list(spec))
    vals = {str(k): spec[str(k)](doc, (*path, str(k)), v) for k, v in data.items()}
    if rtype in ("spike", "negative_surge"):
        per = vals.get("per", "account")
        det_vals = dict(_SURGE_DEFAULTS) if rtype == "negative_surge" else {}
        if per == "post":
            det_vals.update(_PER_POST_DEFAULTS)
        det_vals.update({k: v for k, v in vals.items() if k in _SPIKE_DETECTOR_KEYS})
        bucket = vals.get("bucket", 300.0)
        detector = replace(SpikeParams(bucket_seconds=bucket), **det_vals)
        for name in ("mean_half_life", "var_half_life"):
            # The detector's per-bucket rates underflow to 0 for half-lives of ~1e16
            # buckets (found by fuzzing): refuse here, not when the worker starts.
            ratio = getattr(detector, name) / bucket
            if ratio > MAX_HALF_LIFE_BUCKETS:
                raise _fail(doc, (*path, name if name in vals else "bucket"),
                            f"{name} of {getattr(detector, name):g}s is {ratio:.3g} buckets "
                            f"of {bucket:g}s; at most {MAX_HALF_LIFE_BUCKETS:,} (use a "
                            f"shorter half-life or a longer bucket)")
        rest = {k: v for k, v in vals.items() if k not in _SPIKE_DETECTOR_KEYS}
        cls = SurgeRuleParams if rtype == "negative_surge" else SpikeRuleParams
        return cls(detector=detector, **rest)
    if rtype == "keyword":
        if "lists" not in vals:
            raise _fail(doc, path, "keyword rules need params.lists")
        return KeywordRuleParams(**vals)
    if rtype == "stale_account":
        if "days" in vals and "after" in vals:
            raise _fail(doc, (*path, "days"), "give either days or after, not both")
        if "days" in vals:
            vals["after"] = vals.pop("days") * 86400.0
        return StaleRuleParams(**vals)
    if rtype == "unanswered":
        if "hours" in vals and "after" in vals:
            raise _fail(doc, (*path, "hours"), "give either hours or after, not both")
        if "hours" in vals:
            vals["after"] = vals.pop("hours") * 3600.0
        if "markers" in vals:
            vals["markers"] = tuple(vals["markers"])
        return UnansweredRuleParams(**vals)
    if rtype == "linkage_lagging":
        return LaggingRuleParams(**vals)
    if rtype == "linkage_low":
        return LowRuleParams(**vals)
    return HealthRuleParams(**vals)


def _filter(doc: Doc, raw: Any) -> Filter:
    path = ("filter",)
    data = _mapping(doc, path, raw)
    spec: dict[str, Parser] = {
        "accounts": _str_list(), "units": _str_list(), "levels": _str_list(LEVELS),
        "platforms": _str_list(), "kinds": _str_list(KINDS), "sentiment": _str_list(LABELS),
        "registered_only": _bool,
    }
    _check_keys(doc, path, data, list(spec))
    return Filter(**{str(k): spec[str(k)](doc, (*path, str(k)), v) for k, v in data.items()})


def _quiet_hours(doc: Doc, raw: Any) -> tuple[QuietHours, ...]:
    if raw is None or raw is False:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        p: tuple = ("quiet_hours", i) if isinstance(raw, list) else ("quiet_hours",)
        item = _mapping(doc, p, item)
        _check_keys(doc, p, item, ("start", "end", "min_severity", "days"))
        for req in ("start", "end"):
            if req not in item:
                raise _fail(doc, p, f"missing {req} (HH:MM, Asia/Shanghai)")
        days = _str_list(WEEKDAYS)(doc, (*p, "days"), item.get("days"))
        out.append(QuietHours(
            start=_clock(doc, (*p, "start"), item["start"]),
            end=_clock(doc, (*p, "end"), item["end"]),
            min_severity=_severity(doc, (*p, "min_severity"), item.get("min_severity", "orange")),
            days=tuple(WEEKDAYS.index(d) for d in days),
        ))
    return tuple(out)


def _routing(doc: Doc, raw: Any) -> tuple[Route, ...] | None:
    return parse_routes(doc, ("routing",), raw)


def parse_routes(doc: Doc, path: tuple, raw: Any) -> tuple[Route, ...] | None:
    """A list of routes (shared with channels.yaml's ``routes``)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _fail(doc, path, "expected a list of routes {channels: [...], ...}")
    out = []
    for i, item in enumerate(raw):
        p = (*path, i)
        item = _mapping(doc, p, item)
        _check_keys(doc, p, item, ("channels", "units", "levels", "accounts", "min_severity",
                                   "severities", "lists", "stop"))
        sevs = item.get("severities") or []
        if not isinstance(sevs, list):
            raise _fail(doc, (*p, "severities"), "expected a list")
        out.append(Route(
            channels=_str_list(nonempty=True)(doc, (*p, "channels"), item.get("channels")),
            units=_str_list()(doc, (*p, "units"), item.get("units")),
            levels=_str_list(LEVELS)(doc, (*p, "levels"), item.get("levels")),
            accounts=_str_list()(doc, (*p, "accounts"), item.get("accounts")),
            min_severity=None if item.get("min_severity") is None else
            _severity(doc, (*p, "min_severity"), item["min_severity"]),
            severities=tuple(_severity(doc, (*p, "severities", j), s)
                             for j, s in enumerate(sevs)),
            lists=_str_list()(doc, (*p, "lists"), item.get("lists")),
            stop=_bool(doc, (*p, "stop"), item.get("stop", False)),
            where=doc.where(p),
        ))
    return tuple(out)


TOP_KEYS = ("name", "type", "description", "enabled", "filter", "params", "severity",
            "realert", "escalate_after", "escalate_reset", "quiet_hours", "routing")


def rule_from_doc(doc: Doc, default_name: str) -> Rule:
    data = doc.data
    if not isinstance(data, dict):
        raise _fail(doc, (), "a rule file must hold one mapping (name, type, params, ...)")
    _check_keys(doc, (), data, TOP_KEYS)
    rtype = data.get("type")
    if rtype not in RULE_TYPES:
        raise _fail(doc, ("type",), f"expected one of {', '.join(RULE_TYPES)}, got {rtype!r}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(doc, ("name",), f"expected letters, digits, _ . - (max 80), got {name!r}")
    desc = data.get("description", "")
    if not isinstance(desc, str):
        raise _fail(doc, ("description",), "expected text")
    sev_raw = data.get("severity", "auto" if rtype in AUTO_SEVERITY_TYPES else None)
    if sev_raw == "auto":
        if rtype not in AUTO_SEVERITY_TYPES:
            raise _fail(doc, ("severity",), f"auto is only for {', '.join(AUTO_SEVERITY_TYPES)}")
        severity = None
    elif sev_raw is None:
        severity = DEFAULT_SEVERITY[rtype]
    else:
        severity = _severity(doc, ("severity",), sev_raw)
    flt = _filter(doc, data.get("filter"))
    if rtype == "negative_surge" and flt.sentiment:
        raise _fail(doc, ("filter", "sentiment"), "negative_surge counts every sentiment to "
                    "compute the negative share; filter by kinds or accounts instead")
    escalate_after = _opt_duration(doc, ("escalate_after",), data.get("escalate_after"))
    reset = _opt_duration(doc, ("escalate_reset",), data.get("escalate_reset"))
    return Rule(
        name=name,
        type=rtype,
        params=_params(doc, rtype, data.get("params")),
        file=doc.file,
        line=doc.line(()),
        description=desc,
        enabled=_bool(doc, ("enabled",), data.get("enabled", True)),
        filter=flt,
        severity=severity,
        realert=_duration(doc, ("realert",), data.get("realert", "1h")),
        escalate_after=escalate_after,
        escalate_reset=reset if reset is not None else escalate_after,
        quiet_hours=_quiet_hours(doc, data.get("quiet_hours")),
        routing=_routing(doc, data.get("routing")),
    )


def rule_from_text(text: str, name: str = "rule", file: str | None = None) -> Rule:
    """A rule from YAML text (tests, the API); ``name`` is the default rule name."""
    try:
        doc = parse(text, file or f"{name}.yaml")
    except SourceError as e:
        raise RuleError(str(e)) from None
    return rule_from_doc(doc, name)


def load_rule_file(path: Path) -> Rule:
    """One rule file → Rule, or RuleError naming file, line and field."""
    try:
        doc = load(Path(path))
    except SourceError as e:
        raise RuleError(str(e)) from None
    return rule_from_doc(doc, Path(path).stem)


def rule_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_rules(directory: Path | None = None) -> list[Rule]:
    """Every ``*.yaml``/``*.yml`` rule in ``directory`` (default: the packaged rules), sorted
    by file name. Names must be unique. Disabled rules are returned too (the engine skips them).
    """
    d = Path(directory) if directory is not None else DEFAULT_RULES_DIR
    if not d.is_dir():
        raise RuleError(f"{d}:1: (directory): not a directory of rule files")
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for f in rule_files(d):
        rule = load_rule_file(f)
        if rule.name in seen:
            raise RuleError(f"{rule.source}: name: duplicate rule name {rule.name!r} "
                            f"(also in {seen[rule.name].source})")
        seen[rule.name] = rule
        rules.append(rule)
    return rules


def find_rule(spec: str | Path, directory: Path | None = None) -> Rule:
    """A rule by name (in ``directory``, default the packaged rules) or by YAML path."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise RuleError(f"{p}:1: (document): no such rule file")
        return load_rule_file(p)
    for rule in load_rules(directory):
        if rule.name == str(spec):
            return rule
    names = [r.name for r in load_rules(directory)]
    close = difflib.get_close_matches(str(spec), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise RuleError(f"no rule named {spec!r}{hint}; rules: {', '.join(names)}")
