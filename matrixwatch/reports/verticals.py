"""垂直领域 (vertical) of an account, and registry fields the Account record lacks.

Peer groups for the index are (level, vertical): a county police account is compared
with county-level police accounts, not with the county's 发布 account. The registry has
no vertical field, so it is derived from the account name and unit by the first matching
keyword below (order matters: 交警 before 公安, 消防 before 应急; see
:func:`derive_vertical` for the name/unit precedence). A row of matrix.yaml
may set ``vertical:`` explicitly, which wins. Accounts matching nothing are ``发布``
(the 新闻办/人民政府 general accounts).

``verified_at`` (认证日期, ISO date) is another optional matrix.yaml field, for the
受众指数 "days since verification". :class:`~matrixwatch.streams.records.Account` does
not carry them: the registry keeps both in ``Registry.extras`` (validated on load), which
the index and the checks use unless given other ``extras``; :func:`load_extras` reads
them from a raw matrix.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from matrixwatch.streams.records import Account
from matrixwatch.streams.weibo_time import SHANGHAI

#: (keyword in name or unit, vertical). First match wins.
VERTICAL_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("交警", "交警"), ("交通警察", "交警"), ("交通管理", "交警"),
    ("消防", "消防"),
    ("公安", "公安"), ("平安", "公安"), ("警方", "公安"),
    ("应急", "应急"),
    ("卫健", "卫健"), ("卫生健康", "卫健"), ("健康", "卫健"), ("疾控", "卫健"),
    ("文旅", "文旅"), ("文广", "文旅"), ("旅游", "文旅"),
    ("共青团", "共青团"), ("团委", "共青团"),
    ("气象", "气象"),
    ("市场监", "市场监管"),
    ("生态", "生态环境"), ("环保", "生态环境"),
    ("教育", "教育"),
    ("人社", "人社"), ("人力资源", "人社"),
    ("税务", "税务"),
    ("民政", "民政"),
    ("住建", "住建"), ("住房", "住建"),
    ("城管", "城管"), ("综合行政执法", "城管"),
    ("法院", "法院"), ("检察", "检察"), ("司法", "司法"),
)
DEFAULT_VERTICAL = "发布"

Key = tuple[str, str]


def _match(hay: str) -> str | None:
    for kw, vertical in VERTICAL_KEYWORDS:
        if kw in hay:
            return vertical
    return None


def derive_vertical(name: str, unit: str | None) -> str:
    """Vertical from the name first, then the unit (the name is what the public sees).

    A name ending in 发布 without a vertical keyword is a 发布 account whatever its unit
    (西湖发布, 高新发布 of a 旅游度假区管委会). "人民政府" is removed before matching: it
    contains 民政, and every 发布 account's unit has it.
    """
    n = _match(name.replace("人民政府", ""))
    if n is not None:
        return n
    if name.endswith("发布"):
        return DEFAULT_VERTICAL
    return _match((unit or "").replace("人民政府", "")) or DEFAULT_VERTICAL


def vertical_of(acc: Account, extras: Mapping[Key, Mapping[str, Any]] | None = None) -> str:
    extra = (extras or {}).get(acc.key_tuple) or {}
    v = extra.get("vertical")
    return str(v) if v else derive_vertical(acc.name, acc.unit)


def _to_epoch(v: Any) -> float | None:
    if v in (None, ""):
        return None
    if isinstance(v, datetime):
        dt = v
    elif isinstance(v, date):
        dt = datetime(v.year, v.month, v.day)
    else:
        dt = datetime.fromisoformat(str(v))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return dt.timestamp()


def verified_epoch(acc: Account, extras: Mapping[Key, Mapping[str, Any]] | None) -> float | None:
    """``verified_at`` as epoch seconds, or None (the sub-score is then excluded)."""
    extra = (extras or {}).get(acc.key_tuple) or {}
    try:
        return _to_epoch(extra.get("verified_at"))
    except ValueError:
        return None


def load_extras(path: str | Path | None) -> dict[Key, dict[str, Any]]:
    """``vertical`` / ``verified_at`` per (platform, id) from the raw matrix.yaml."""
    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return extras_from_dict(data)


def extras_from_dict(data: Mapping[str, Any]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for row in data.get("accounts") or []:
        if not isinstance(row, Mapping) or row.get("id") in (None, ""):
            continue
        extra = {k: row[k] for k in ("vertical", "verified_at") if row.get(k) not in (None, "")}
        if extra:
            out[(str(row.get("platform") or "weibo"), str(row["id"]))] = extra
    return out
