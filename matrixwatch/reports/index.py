"""政务新媒体指数: the six indices of 表1 per account, peer-normalised, and the 排行榜.

Pipeline (all pure; docs in reports/INDEX.md):

1. raw measures per account from one :func:`~matrixwatch.reports.collect.collect` pass;
2. 成长指数 measures become ratios to the peer-group average (表1's note);
3. every measure is normalised to 0–100 within the peer group (same level and vertical);
4. an index is the weighted mean of its available normalised measures, the composite the
   weighted mean of the available indices (missing data renormalises the weights instead
   of counting as zero: a province account has no superior to interact with);
5. accounts are ranked per peer group; a vetoed (stale) account ranks after the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from matrixwatch.registry import Registry
from matrixwatch.reports import measures as linkage_measures
from matrixwatch.reports.collect import Collected, Key, collect, received
from matrixwatch.reports.config import INDICES, MEASURES, IndexConfig, ReportConfig
from matrixwatch.reports.content import B_CLASS, GOV, LIVELIHOOD, ContentClassifier
from matrixwatch.reports.errata import ErrataChecker
from matrixwatch.reports.period import Period
from matrixwatch.reports.verticals import verified_epoch, vertical_of
from matrixwatch.streams.records import Account

NDIGITS = 6
GROWTH_RAW = {"follower_growth_rel": "follower_growth_per_day", "posts_yoy_rel": "posts_yoy",
              "originals_yoy_rel": "originals_yoy", "interactions_yoy_rel": "interactions_yoy"}
#: Growth measures compared as factors (1 + rate): a factor is never negative.
_FACTOR = frozenset({"posts_yoy", "originals_yoy", "interactions_yoy"})


@dataclass
class IndexRow:
    account_id: str
    platform: str
    name: str
    unit: str | None
    level: str | None
    vertical: str
    period: str
    period_start: str
    period_end: str
    raw: dict[str, float | int | None] = field(default_factory=dict)
    norm: dict[str, float | None] = field(default_factory=dict)  # measure → 0–100
    scores: dict[str, float | None] = field(default_factory=dict)  # index → 0–100
    composite: float | None = None
    rank: int | None = None
    group_size: int = 0
    veto: bool = False
    veto_reason: str | None = None

    @property
    def key(self) -> Key:
        return (self.platform, self.account_id)

    @property
    def peer_group(self) -> str:
        return f"{self.level or 'unknown'}/{self.vertical}"

    def as_dict(self) -> dict[str, Any]:
        """Flat: identity, raw measures, ``<index>_index`` scores, composite, rank."""
        d: dict[str, Any] = {
            "account_id": self.account_id, "platform": self.platform, "name": self.name,
            "unit": self.unit, "level": self.level, "vertical": self.vertical,
            "peer_group": self.peer_group, "period": self.period,
            "period_start": self.period_start, "period_end": self.period_end,
        }
        d.update({k: _round(v) for k, v in self.raw.items()})
        d.update({f"{k}_index": _round(self.scores.get(k)) for k, _ in INDICES})
        d.update(composite=_round(self.composite), rank=self.rank, group_size=self.group_size,
                 veto=self.veto, veto_reason=self.veto_reason)
        return d


def _round(v: Any) -> Any:
    return round(v, NDIGITS) if isinstance(v, float) else v


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _growth(cur: float, prev: float) -> float | None:
    return (cur - prev) / prev if prev else None


# --- step 1: raw measures ----------------------------------------------------------------
def raw_measures(acc: Account, c: Collected, cluster: linkage_measures.AccountMeasures | None,
                 registry: Registry, extras: Mapping[Key, Mapping[str, Any]] | None
                 ) -> dict[str, float | int | None]:
    d = c.account(acc.key_tuple)
    p = acc.platform
    reposts, comments, likes = received(c, p, d.originals)
    prev_r, prev_c, _ = received(c, p, d.originals_prev)
    n_orig, n_rep = len(d.originals), len(d.reposts)
    published = n_orig + n_rep
    others = sum(1 for root in d.reposts.values() if root != acc.id)
    growth_day = None
    if d.first_followers and d.last_followers:
        span = (d.last_followers[0] - d.first_followers[0]) / 86400.0
        if span >= 1.0:
            growth_day = (d.last_followers[2] - d.first_followers[2]) / span
    verified = verified_epoch(acc, extras)
    labels = list(d.labels.values())
    n_lab = len(labels)
    shares = {cls: (labels.count(cls) / n_lab if n_lab else None)
              for cls in (GOV, LIVELIHOOD, B_CLASS)}
    content_value = None
    if n_lab:
        content_value = (shares[GOV] or 0.0) + (shares[LIVELIHOOD] or 0.0) - (shares[B_CLASS]
                                                                               or 0.0)
    return {
        "reposts_received": reposts,
        "comments_received": comments,
        "comment_repost_ratio": _ratio(comments, reposts),
        "likes_received": likes,
        "followers": d.last_followers[2] if d.last_followers else None,
        "verified_days": (max(0.0, (c.period.hi - verified) / 86400.0)
                          if verified is not None else None),
        "active_followers": len(d.fans),
        "posts_published": published,
        "originals": n_orig,
        "reposts_of_others": others,
        "original_share": _ratio(n_orig, published),
        "follower_growth_per_day": growth_day,
        "posts_yoy": _growth(published, len(d.published_prev)),
        "originals_yoy": _growth(n_orig, len(d.originals_prev)),
        "interactions_yoy": _growth(reposts + comments, prev_r + prev_c),
        "gov_share": shares[GOV],
        "livelihood_share": shares[LIVELIHOOD],
        "b_share": shares[B_CLASS],
        "content_value": content_value,
        "coverage": cluster.coverage if cluster else None,
        "interactions_up": (cluster.interactions_up if cluster and acc.parent else None),
        "interactions_down": (cluster.interactions_down if cluster
                              and registry.has_subordinates(acc.platform, acc.id) else None),
    }


# --- steps 2–4: peer ratios, normalisation, indices ---------------------------------------
def relative_to_peers(rows: list[IndexRow]) -> None:
    """成长指数: each growth measure as the ratio to the peer-group average.

    Rates are compared as factors (1 + rate, never negative); follower growth per day as
    is. No ratio when the group average is not positive (it would flip the sign).
    """
    for rel, raw in GROWTH_RAW.items():
        vals = []
        for r in rows:
            v = r.raw.get(raw)
            if v is not None and raw in _FACTOR:
                v = 1.0 + float(v)
            vals.append(v)
        have = [float(v) for v in vals if v is not None]
        mean = sum(have) / len(have) if have else 0.0
        for r, v in zip(rows, vals, strict=True):
            r.raw[rel] = (float(v) / mean) if v is not None and mean > 0 else None


def normalise(values: list[float | None], direction: int, method: str) -> list[float | None]:
    """0–100 within a group; 50 when the group cannot discriminate (one value, all equal)."""
    have = [float(v) for v in values if v is not None]
    out: list[float | None] = []
    lo, hi = (min(have), max(have)) if have else (0.0, 0.0)
    n = len(have)
    for v in values:
        if v is None:
            out.append(None)
            continue
        x = float(v)
        if n < 2 or hi == lo:
            out.append(50.0)
        elif method == "rank":
            below = sum(1 for h in have if h < x)
            equal = sum(1 for h in have if h == x)
            pct = 100.0 * (below + 0.5 * (equal - 1)) / (n - 1)
            out.append(pct if direction > 0 else 100.0 - pct)
        else:
            s = 100.0 * (x - lo) / (hi - lo)
            out.append(s if direction > 0 else 100.0 - s)
    return out


def _weighted(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    num = den = 0.0
    for v, w in pairs:
        if v is None or w <= 0:
            continue
        num += w * v
        den += w
    return num / den if den else None


def score_group(rows: list[IndexRow], cfg: IndexConfig) -> None:
    relative_to_peers(rows)
    for m, _idx, direction in MEASURES:
        normed = normalise([_num(r.raw.get(m)) for r in rows], direction, cfg.normalise)
        for r, s in zip(rows, normed, strict=True):
            r.norm[m] = s
    for r in rows:
        for idx, _ in INDICES:
            r.scores[idx] = _weighted((r.norm.get(m), cfg.measure_weights.get(m, 1.0))
                                      for m, i, _ in MEASURES if i == idx)
        r.composite = _weighted((r.scores[idx], cfg.weights.get(idx, 0.0))
                                for idx, _ in INDICES)
        r.group_size = len(rows)


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def rank_group(rows: list[IndexRow], veto_last: bool = True) -> None:
    """Competition ranking (1, 2, 2, 4) by composite; vetoed accounts after the others."""
    def key(r: IndexRow) -> tuple[bool, float, str]:
        comp = round(r.composite, NDIGITS) if r.composite is not None else float("-inf")
        return (r.veto and veto_last, -comp, r.account_id)

    ordered = sorted(rows, key=key)
    prev: tuple[bool, float] | None = None
    for i, r in enumerate(ordered):
        k = key(r)[:2]
        if k != prev:
            rank = i + 1
            prev = k
        r.rank = rank


# --- the whole thing -----------------------------------------------------------------------
def included(registry: Registry, period: Period) -> list[Account]:
    """Accounts ranked in a period: active ones and those closed after it began."""
    return sorted((a for a in registry.all() if registry.active_at(a, period.lo)),
                  key=lambda a: (a.platform, a.id))


def compute_from(
    registry: Registry, c: Collected, cfg: ReportConfig,
    extras: Mapping[Key, Mapping[str, Any]] | None = None,
    vetoes: Mapping[Key, str] | None = None,
) -> list[IndexRow]:
    """Index rows of every included account, scored and ranked within its peer group.

    ``extras`` (vertical, verified_at per account) default to the registry's own.
    """
    extras = registry.extras if extras is None else extras
    period = c.period
    cluster = {(m.platform, m.account_id): m for m in linkage_measures.compute(
        registry, [], c.linkage_events, period.start, period.end)}
    rows: list[IndexRow] = []
    for acc in included(registry, period):
        row = IndexRow(acc.id, acc.platform, acc.name, acc.unit, acc.level,
                       vertical_of(acc, extras), period.label, period.start.isoformat(),
                       period.end.isoformat())
        row.raw = raw_measures(acc, c, cluster.get(acc.key_tuple), registry, extras)
        reason = (vetoes or {}).get(acc.key_tuple)
        row.veto, row.veto_reason = reason is not None, reason
        rows.append(row)
    groups: dict[str, list[IndexRow]] = defaultdict(list)
    for r in rows:
        groups[r.peer_group].append(r)
    for g in sorted(groups):
        score_group(groups[g], cfg.index)
        rank_group(groups[g], cfg.index.veto_last)
    rows.sort(key=lambda r: (r.peer_group, r.rank or 0, r.account_id))
    return rows


def compute_index(
    registry: Registry, events: Iterable[Mapping[str, Any]], period: Period,
    cfg: ReportConfig | None = None, *,
    extras: Mapping[Key, Mapping[str, Any]] | None = None,
    vetoes: Mapping[Key, str] | None = None,
    classifier: ContentClassifier | None = None, errata: ErrataChecker | None = None,
) -> list[IndexRow]:
    """Convenience: collect + :func:`compute_from` (tests and one-off use)."""
    cfg = cfg or ReportConfig.from_dict()
    c = collect(registry, events, period,
                classifier=classifier or ContentClassifier.load(),
                errata=errata or ErrataChecker.load(cfg.compliance.errata_dicts),
                reply_hours=cfg.compliance.reply_hours)
    return compute_from(registry, c, cfg, extras, vetoes)
