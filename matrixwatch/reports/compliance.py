"""Compliance checks per account, each with the rule it applies and the evidence.

The checks follow the State Council's checking indicators for 政务新媒体 and the district
rules in DESIGN.md:

* ``stale``: no update in the 2 weeks before the check time — 单项否决 (a veto);
* ``gaps``: the longest silence between publications in the period;
* ``monthly``: publications per calendar month against 可发布次数 (天心区 第十条);
* ``interaction``: netizen questions answered within N hours (回复率, median reply time)
  and questions whose answer marks them resolved (办结率);
* ``errata``: 错敏字 in the account's own words (dictionary + Aho-Corasick);
* ``duplicate``: one unit with several accounts on one platform (《意见》).

Pure: inputs are a :class:`~matrixwatch.reports.collect.Collected` pass and the registry.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from matrixwatch.registry import Registry
from matrixwatch.reports.collect import AccountData, Collected, Key, collect
from matrixwatch.reports.config import ComplianceConfig, ReportConfig
from matrixwatch.reports.content import ContentClassifier
from matrixwatch.reports.errata import ErrataChecker
from matrixwatch.reports.index import included
from matrixwatch.reports.period import Period
from matrixwatch.reports.verticals import vertical_of
from matrixwatch.streams.linkage import median
from matrixwatch.streams.records import Account
from matrixwatch.streams.weibo_time import CST

PASS, FAIL, VETO, NA = "pass", "fail", "veto", "n/a"
RULES = {
    "stale": "检查指标：监测时间点前2周内无更新，单项否决",
    "gaps": "更新频率：最长连续未更新天数",
    "monthly": "天心区 第十条：每月信息发布次数不应明显低于可发布次数",
    "interaction": "互动回应：网民留言、评论中的提问应在规定时限内回复（回复率、办结率）",
    "errata": "内容规范：不得出现错敏字（领导人姓名职务、规范表述、过时提法）",
    "duplicate": ("《意见》（国办发〔2018〕123号）：一个单位原则上在同一平台只开设一个"
                  "政务新媒体账号"),
}
CHECKS: tuple[str, ...] = tuple(RULES)
MAX_EVIDENCE = 50


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, CST).isoformat()


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(x, nd)


@dataclass
class Finding:
    check: str
    status: str
    rule: str
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "rule": self.rule,
                "evidence": self.evidence}


@dataclass
class ComplianceRow:
    account_id: str
    platform: str
    name: str
    unit: str | None
    level: str | None
    vertical: str
    period: str
    period_start: str
    period_end: str
    checked_at: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return (self.platform, self.account_id)

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    @property
    def status(self) -> str:
        st = {f.status for f in self.findings}
        return VETO if VETO in st else FAIL if FAIL in st else PASS

    def as_dict(self) -> dict[str, Any]:
        """Flat fields for tables/CSV/Kibana, plus the findings with their evidence."""
        def ev(check: str, key: str) -> Any:
            f = self.finding(check)
            return f.evidence.get(key) if f else None

        def st(check: str) -> str | None:
            f = self.finding(check)
            return f.status if f else None

        return {
            "account_id": self.account_id, "platform": self.platform, "name": self.name,
            "unit": self.unit, "level": self.level, "vertical": self.vertical,
            "period": self.period, "period_start": self.period_start,
            "period_end": self.period_end, "checked_at": self.checked_at,
            "status": self.status, "veto": self.status == VETO,
            "fails": sum(1 for f in self.findings if f.status in (FAIL, VETO)),
            **{f"{c}_status": st(c) for c in CHECKS},
            "last_post_at": ev("stale", "last_post_at"),
            "days_since_last_post": ev("stale", "days_since_last_post"),
            "longest_gap_days": ev("gaps", "longest_gap_days"),
            "longest_gap_from": ev("gaps", "from"),
            "longest_gap_to": ev("gaps", "to"),
            "months_below_min": ev("monthly", "months_below_min"),
            "lowest_month_count": ev("monthly", "lowest_count"),
            "questions": ev("interaction", "questions"),
            "answered_in_time": ev("interaction", "answered_in_time"),
            "reply_rate": ev("interaction", "reply_rate"),
            "median_reply_hours": ev("interaction", "median_reply_hours"),
            "resolved": ev("interaction", "resolved"),
            "resolve_rate": ev("interaction", "resolve_rate"),
            "errata_hits": ev("errata", "hits"),
            "duplicate_with": ev("duplicate", "others"),
            "findings": [f.as_dict() for f in self.findings],
        }


# --- the checks ---------------------------------------------------------------------------
def check_stale(d: AccountData, at: float, cfg: ComplianceConfig) -> Finding:
    times = [t for t, _ in d.publish.values() if t < at]
    last = max(times) if times else None
    window = cfg.stale_days * 86400.0
    stale = last is None or at - last > window
    return Finding("stale", VETO if stale else PASS, RULES["stale"], {
        "checked_at": iso(at), "window_days": cfg.stale_days, "last_post_at": iso(last),
        "days_since_last_post": _r((at - last) / 86400.0 if last is not None else None),
    })


def check_gaps(d: AccountData, period: Period, at: float, cfg: ComplianceConfig,
               lookback_days: float = 31.0) -> Finding:
    """Longest silence overlapping the period, up to the check time.

    The first gap starts at the last publication in the look-back window before the
    period, or at the period start when there is none (older data may be missing, so
    a silence is never stretched back further than the look-back).
    """
    end = min(at, period.hi)
    times = sorted(t for t, _ in d.publish.values() if t < end)
    before = [t for t in times if period.lo - lookback_days * 86400.0 <= t < period.lo]
    inside = [t for t in times if t >= period.lo]
    anchor = before[-1] if before else period.lo
    seq = [anchor, *inside, end]
    best, frm, to = -1.0, anchor, end
    for a, b in itertools.pairwise(seq):
        if b - a > best:
            best, frm, to = b - a, a, b
    days = best / 86400.0
    return Finding("gaps", FAIL if days > cfg.max_gap_days else PASS, RULES["gaps"], {
        "longest_gap_days": _r(days), "from": iso(frm), "to": iso(to),
        # No publication known before the period: the first gap starts at the period start.
        "anchored_at_period_start": not before,
        "max_gap_days": cfg.max_gap_days, "publications": len(inside),
    })


def check_monthly(d: AccountData, platform: str, period: Period, cfg: ComplianceConfig
                  ) -> Finding:
    per_day = cfg.per_day(platform)
    times = sorted(t for t, orig in d.publish.values() if orig or cfg.count_reposts)
    months: list[dict[str, Any]] = []
    counts: list[int] = []
    below = 0
    for label, s, e, _days in period.months():
        lo, hi = s.timestamp(), e.timestamp()
        n = bisect_left(times, hi) - bisect_left(times, lo)
        covered = (hi - lo) / 86400.0
        allowed = per_day * covered
        required = math.ceil(round(allowed * cfg.min_share, 9))
        ok = n >= required
        below += not ok
        counts.append(n)
        months.append({"month": label, "days": _r(covered), "count": n,
                       "allowed": _r(allowed), "required": required, "ok": ok})
    lowest = min(counts, default=None)
    return Finding("monthly", FAIL if below else PASS, RULES["monthly"], {
        "months": months, "months_below_min": below, "lowest_count": lowest,
        "min_share": cfg.min_share, "posts_per_day": per_day,
        "counts_reposts": cfg.count_reposts,
    })


def check_interaction(d: AccountData, cfg: ComplianceConfig) -> Finding:
    """Reply rate within ``reply_hours``, median reply time, 办结率.

    A question is answered by the account's first comment after it that replies to it
    (``reply_to_id``) or is under the same post, as the unanswered alert rule decides.
    It is resolved if one of those comments carries a resolve marker (已办结, 已解决 …).
    """
    by_post: dict[str, list[tuple[float, str]]] = defaultdict(list)
    by_reply: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for rts, post, reply_to, text in d.replies.values():
        by_post[post].append((rts, text))
        if reply_to:
            by_reply[reply_to].append((rts, text))
    limit = cfg.reply_hours * 3600.0
    n = answered = resolved = 0
    delays: list[float] = []
    unanswered: list[dict[str, Any]] = []
    for qid in sorted(d.questions, key=lambda k: (d.questions[k][0], k)):
        qts, post, text = d.questions[qid]
        n += 1
        answers = sorted(a for a in [*by_reply.get(qid, ()), *by_post.get(post, ())]
                         if a[0] >= qts)
        if answers:
            delay = answers[0][0] - qts
            delays.append(delay)
            answered += delay <= limit
            resolved += any(m in t for _, t in answers for m in cfg.resolve_markers)
        if (not answers or answers[0][0] - qts > limit) and len(unanswered) < 5:
            unanswered.append({"id": qid, "asked_at": iso(qts), "post_id": post,
                               "text": text[:60],
                               "answered_after_hours": (_r((answers[0][0] - qts) / 3600.0,
                                                           3) if answers else None)})
    med = median(delays)
    ev = {"questions": n, "answered_in_time": answered, "answered_late": len(delays) - answered,
          "unanswered": n - len(delays), "reply_hours": cfg.reply_hours,
          "reply_rate": _r(answered / n if n else None),
          "median_reply_hours": _r(med / 3600.0 if med is not None else None, 4),
          "resolved": resolved, "resolve_rate": _r(resolved / n if n else None),
          "min_reply_rate": cfg.min_reply_rate, "examples": unanswered}
    status = NA if not n else FAIL if answered / n < cfg.min_reply_rate else PASS
    return Finding("interaction", status, RULES["interaction"], ev)


def check_errata(d: AccountData) -> Finding:
    hits = []
    for eid in sorted(d.errata, key=lambda k: (d.errata[k][0], k)):
        created, kind, found = d.errata[eid]
        hits += [{"event_id": eid, "created_at": created, "kind": kind, **h.as_dict()}
                 for h in found]
    return Finding("errata", FAIL if hits else PASS, RULES["errata"],
                   {"hits": len(hits), "items": hits[:MAX_EVIDENCE]})


def duplicate_groups(accounts: Iterable[Account]) -> dict[Key, list[Account]]:
    """(platform, unit) → the accounts of that unit on that platform, when more than one."""
    by_unit: dict[tuple[str, str], list[Account]] = defaultdict(list)
    for a in accounts:
        if a.unit and a.unit.strip():
            by_unit[(a.platform, "".join(a.unit.split()))].append(a)
    return {k: sorted(v, key=lambda a: a.id) for k, v in by_unit.items() if len(v) > 1}


def check_duplicate(acc: Account, groups: Mapping[Key, list[Account]]) -> Finding:
    if not acc.unit or not acc.unit.strip():
        return Finding("duplicate", NA, RULES["duplicate"], {"unit": None, "others": []})
    group = groups.get((acc.platform, "".join(acc.unit.split())), [])
    others = [a.id for a in group if a.id != acc.id]
    return Finding("duplicate", FAIL if others else PASS, RULES["duplicate"], {
        "unit": acc.unit, "platform": acc.platform, "others": others,
        "accounts": [{"id": a.id, "name": a.name} for a in group],
    })


# --- the whole thing -----------------------------------------------------------------------
def check_from(registry: Registry, c: Collected, cfg: ReportConfig, *,
               at: float | None = None,
               extras: Mapping[Key, Mapping[str, Any]] | None = None) -> list[ComplianceRow]:
    """Every check for every included account; ``at`` (default: period end) is the
    监测时间点 of the stale check. ``extras`` default to the registry's own."""
    extras = registry.extras if extras is None else extras
    period = c.period
    at = period.hi if at is None else at
    accounts = included(registry, period)
    groups = duplicate_groups(accounts)
    cp = cfg.compliance
    rows = []
    for acc in accounts:
        d = c.account(acc.key_tuple)
        row = ComplianceRow(acc.id, acc.platform, acc.name, acc.unit, acc.level,
                            vertical_of(acc, extras), period.label, period.start.isoformat(),
                            period.end.isoformat(), iso(at) or "")
        row.findings = [check_stale(d, at, cp), check_gaps(d, period, at, cp, cfg.lookback_days),
                        check_monthly(d, acc.platform, period, cp), check_interaction(d, cp),
                        check_errata(d), check_duplicate(acc, groups)]
        rows.append(row)
    return rows


def vetoes(rows: Iterable[ComplianceRow]) -> dict[Key, str]:
    """Accounts with a single-item veto → the reason, for the index ranking."""
    out = {}
    for r in rows:
        for f in r.findings:
            if f.status == VETO:
                out[r.key] = f"{f.check}: {f.rule}"
                break
    return out


def run_checks(
    registry: Registry, events: Iterable[Mapping[str, Any]], period: Period,
    cfg: ReportConfig | None = None, *, at: float | None = None,
    extras: Mapping[Key, Mapping[str, Any]] | None = None,
    classifier: ContentClassifier | None = None, errata: ErrataChecker | None = None,
) -> list[ComplianceRow]:
    """Convenience: collect + :func:`check_from` (tests and one-off use)."""
    cfg = cfg or ReportConfig.from_dict()
    c = collect(registry, events, period, classifier=classifier or ContentClassifier.load(),
                errata=errata or ErrataChecker.load(cfg.compliance.errata_dicts),
                reply_hours=cfg.compliance.reply_hours)
    return check_from(registry, c, cfg, at=at, extras=extras)
