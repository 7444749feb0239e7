"""Knobs of the index and the compliance checks, with documented defaults.

Everything a matrix manager may want to tune lives here and can be overridden from a
YAML file (``--config FILE`` or ``MW_INDEX_CONFIG``) shaped like :func:`defaults_dict`:
only the keys given change. Defaults are this project's choice, not numbers from the
新华网 report (its 表1 lists the indicators, not weights we could verify).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The six indices of 表1, in report order, with their Chinese names.
INDICES: tuple[tuple[str, str], ...] = (
    ("interaction", "互动指数"), ("audience", "受众指数"), ("propagation", "传播指数"),
    ("growth", "成长指数"), ("content", "内容指数"), ("cluster", "集群指数"),
)

#: (measure, index, direction) — direction +1: more is better; -1: less is better.
MEASURES: tuple[tuple[str, str, int], ...] = (
    ("reposts_received", "interaction", 1),
    ("comments_received", "interaction", 1),
    ("comment_repost_ratio", "interaction", 1),
    ("likes_received", "interaction", 1),
    ("followers", "audience", 1),
    ("verified_days", "audience", 1),
    ("active_followers", "audience", 1),
    ("posts_published", "propagation", 1),
    ("reposts_of_others", "propagation", 1),
    ("original_share", "propagation", 1),
    ("follower_growth_rel", "growth", 1),
    ("posts_yoy_rel", "growth", 1),
    ("originals_yoy_rel", "growth", 1),
    ("interactions_yoy_rel", "growth", 1),
    ("gov_share", "content", 1),
    ("livelihood_share", "content", 1),
    ("b_share", "content", -1),
    ("coverage", "cluster", 1),
    ("interactions_up", "cluster", 1),
    ("interactions_down", "cluster", 1),
)

DEFAULTS: dict[str, Any] = {
    "index": {
        # Composite = Σ weight × index / Σ weight over the indices an account has.
        "weights": {"interaction": 0.20, "audience": 0.15, "propagation": 0.20,
                    "growth": 0.10, "content": 0.20, "cluster": 0.15},
        # Index = Σ weight × normalised measure / Σ weight over available measures.
        "measure_weights": {m: 1.0 for m, _, _ in MEASURES},
        # minmax: 100·(x−min)/(max−min) within the peer group; rank: mid-rank percentile.
        # A group where every value is equal (or of one account) scores 50.
        "normalise": "minmax",
        # Stale accounts (单项否决) are ranked after all others in their group.
        "veto_last": True,
    },
    "compliance": {
        "stale_days": 14.0,            # 监测时间点前2周内无更新 → 单项否决
        "max_gap_days": 14.0,          # longest gap above this fails (not a veto)
        "posts_per_day": {"weibo": 1.0, "wechat": 1.0, "default": 1.0},  # 可发布次数/天
        "min_share": 0.5,              # 明显低于: fewer than this share of 可发布次数
        "count_reposts": True,         # a repost is a publication on Weibo
        "reply_hours": 24.0,           # a question counts as answered within this
        "min_reply_rate": 0.8,         # below: the interaction check fails
        "resolve_markers": ["已办结", "已解决", "已处理完毕", "已修复", "已恢复", "已整改",
                            "已落实", "办理完毕"],
        "errata_dicts": [],            # extra dictionaries after dictionaries/errata.yaml
    },
    "lookback_days": 31.0,             # data read before the period (gaps, last post)
}


def defaults_dict() -> dict[str, Any]:
    return copy.deepcopy(DEFAULTS)


def _merge(base: dict[str, Any], over: Mapping[str, Any], path: str = "") -> None:
    for k, v in over.items():
        if k not in base:
            raise ValueError(f"unknown setting {path}{k}")
        if isinstance(base[k], dict) and isinstance(v, Mapping) and k != "posts_per_day":
            _merge(base[k], v, f"{path}{k}.")
        elif isinstance(base[k], dict) and isinstance(v, Mapping):
            base[k] = {**base[k], **v}
        else:
            base[k] = v


@dataclass
class IndexConfig:
    weights: dict[str, float]
    measure_weights: dict[str, float]
    normalise: str = "minmax"
    veto_last: bool = True


@dataclass
class ComplianceConfig:
    stale_days: float = 14.0
    max_gap_days: float = 14.0
    posts_per_day: dict[str, float] = field(default_factory=lambda: {"default": 1.0})
    min_share: float = 0.5
    count_reposts: bool = True
    reply_hours: float = 24.0
    min_reply_rate: float = 0.8
    resolve_markers: tuple[str, ...] = ()
    errata_dicts: tuple[str, ...] = ()

    def per_day(self, platform: str) -> float:
        return float(self.posts_per_day.get(platform, self.posts_per_day.get("default", 1.0)))


@dataclass
class ReportConfig:
    index: IndexConfig
    compliance: ComplianceConfig
    lookback_days: float = 31.0

    @classmethod
    def from_dict(cls, over: Mapping[str, Any] | None = None) -> ReportConfig:
        d = defaults_dict()
        _merge(d, over or {})
        ix, cp = d["index"], d["compliance"]
        if ix["normalise"] not in ("minmax", "rank"):
            raise ValueError(f"index.normalise must be minmax or rank, not {ix['normalise']!r}")
        for name, w in {**ix["weights"], **ix["measure_weights"]}.items():
            if float(w) < 0:
                raise ValueError(f"negative weight for {name}")
        return cls(
            index=IndexConfig({k: float(v) for k, v in ix["weights"].items()},
                              {k: float(v) for k, v in ix["measure_weights"].items()},
                              ix["normalise"], bool(ix["veto_last"])),
            compliance=ComplianceConfig(
                float(cp["stale_days"]), float(cp["max_gap_days"]),
                {k: float(v) for k, v in cp["posts_per_day"].items()}, float(cp["min_share"]),
                bool(cp["count_reposts"]), float(cp["reply_hours"]),
                float(cp["min_reply_rate"]), tuple(cp["resolve_markers"]),
                tuple(str(p) for p in cp["errata_dicts"])),
            lookback_days=float(d["lookback_days"]),
        )

    @classmethod
    def load(cls, path: str | Path | None) -> ReportConfig:
        if path is None:
            return cls.from_dict()
        return cls.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
