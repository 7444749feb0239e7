"""Rendering the index 排行榜 and the compliance report as table, CSV, JSON or Markdown.

One data model (the rows' ``as_dict``) for every format, so the CSV a manager opens in a
spreadsheet and the JSON the bench hashes hold the same numbers. JSON and CSV are
deterministic (sorted keys, fixed column order, rounded floats): the monthly report is
reproducible bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from rich.console import Console
from rich.table import Table

from matrixwatch.reports.compliance import ComplianceRow
from matrixwatch.reports.config import INDICES
from matrixwatch.reports.index import IndexRow

LEVEL_ZH = {"national": "国家", "province": "省级", "city": "市级", "county": "县级",
            "township": "乡镇", "department": "部门", None: "未定"}
STATUS_ZH = {"pass": "合格", "fail": "不合格", "veto": "否决", "n/a": "—"}
CHECK_ZH = {"stale": "两周未更新", "gaps": "最长间隔", "monthly": "月发布次数",
            "interaction": "互动回复", "errata": "错敏字", "duplicate": "重复账号"}
INDEX_COLS = [("rank", "名次"), ("name", "账号"),
              *[(f"{k}_index", zh[:2]) for k, zh in INDICES], ("composite", "综合"),
              ("veto", "否决")]
COMPLIANCE_COLS = [("name", "账号"), ("level", "级别"), ("status", "结论"),
                   ("last_post_at", "最近更新"), ("longest_gap_days", "最长间隔(天)"),
                   ("lowest_month_count", "月发布(最少)"), ("questions", "提问"),
                   ("reply_rate", "回复率"), ("median_reply_hours", "中位回复(h)"),
                   ("resolve_rate", "办结率"), ("errata_hits", "错敏字"),
                   ("duplicate_with", "同单位账号")]


def _cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "是" if v else ""
    if key in ("reply_rate", "resolve_rate"):
        return f"{v:.0%}"
    if key == "level":
        return LEVEL_ZH.get(v, str(v))
    if key == "status":
        return STATUS_ZH.get(v, str(v))
    if key == "last_post_at":
        return str(v)[:16].replace("T", " ")
    if key == "duplicate_with":
        return ",".join(v)
    if isinstance(v, float):
        return f"{v:.1f}" if key.endswith(("_index", "_days", "_hours")) or key in (
            "composite",) else f"{v:g}"
    return str(v)


def _group_title(peer_group: str, n: int) -> str:
    level, vertical = peer_group.split("/", 1)
    return f"{LEVEL_ZH.get(level, level)} · {vertical}（{n} 个账号）"


# --- index ----------------------------------------------------------------------------------
def index_payload(period: str, rows: Sequence[IndexRow], weights: dict[str, float]
                  ) -> dict[str, Any]:
    return {"period": period, "weights": weights, "rows": [r.as_dict() for r in rows]}


def index_json(period: str, rows: Sequence[IndexRow], weights: dict[str, float]) -> str:
    return json.dumps(index_payload(period, rows, weights), ensure_ascii=False, indent=1,
                      sort_keys=True)


def index_csv(rows: Sequence[IndexRow]) -> str:
    buf = io.StringIO()
    dicts = [r.as_dict() for r in rows]
    if not dicts:
        return ""
    w = csv.DictWriter(buf, fieldnames=list(dicts[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(dicts)
    return buf.getvalue()


def _groups(rows: Sequence[IndexRow]) -> list[tuple[str, list[IndexRow]]]:
    ordered = sorted(rows, key=lambda r: (r.peer_group, r.rank or 0, r.account_id))
    return [(g, list(rs)) for g, rs in groupby(ordered, key=lambda r: r.peer_group)]


def index_markdown(period: str, rows: Sequence[IndexRow], weights: dict[str, float]) -> str:
    wtxt = "，".join(f"{zh} {weights.get(k, 0):g}" for k, zh in INDICES)
    out = [f"# 政务新媒体指数排行榜 {period}", "",
           f"权重：{wtxt}。各分项在同级同领域内归一化到 0–100；否决账号排在组末。", ""]
    for g, rs in _groups(rows):
        out += [f"## {_group_title(g, len(rs))}", "",
                "| " + " | ".join(h for _, h in INDEX_COLS) + " |",
                "|" + "---|" * len(INDEX_COLS)]
        for r in rs:
            d = r.as_dict()
            out.append("| " + " | ".join(_cell(k, d[k]) for k, _ in INDEX_COLS) + " |")
        out.append("")
    return "\n".join(out)


def print_index(period: str, rows: Sequence[IndexRow], console: Console) -> None:
    for g, rs in _groups(rows):
        t = Table(title=f"{period} {_group_title(g, len(rs))}")
        for _, h in INDEX_COLS:
            t.add_column(h)
        for r in rs:
            d = r.as_dict()
            t.add_row(*(_cell(k, d[k]) for k, _ in INDEX_COLS))
        console.print(t)


# --- compliance ----------------------------------------------------------------------------
_ORDER = {"veto": 0, "fail": 1, "pass": 2}


def _sorted(rows: Sequence[ComplianceRow]) -> list[ComplianceRow]:
    return sorted(rows, key=lambda r: (_ORDER.get(r.status, 3), r.level or "", r.account_id))


def compliance_payload(period: str, rows: Sequence[ComplianceRow]) -> dict[str, Any]:
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("veto", "fail", "pass")}
    return {"period": period, "summary": counts,
            "rows": [r.as_dict() for r in _sorted(rows)]}


def compliance_json(period: str, rows: Sequence[ComplianceRow]) -> str:
    return json.dumps(compliance_payload(period, rows), ensure_ascii=False, indent=1,
                      sort_keys=True)


def compliance_csv(rows: Sequence[ComplianceRow]) -> str:
    buf = io.StringIO()
    dicts = []
    for r in _sorted(rows):
        d = r.as_dict()
        d["duplicate_with"] = ",".join(d["duplicate_with"] or [])
        d["findings"] = json.dumps(d["findings"], ensure_ascii=False, sort_keys=True,
                                   separators=(",", ":"))
        dicts.append(d)
    if not dicts:
        return ""
    w = csv.DictWriter(buf, fieldnames=list(dicts[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(dicts)
    return buf.getvalue()


def _evidence_lines(r: ComplianceRow) -> list[str]:
    lines = []
    for f in r.findings:
        if f.status not in ("fail", "veto"):
            continue
        e = f.evidence
        if f.check == "stale":
            days = e["days_since_last_post"]
            why = (f"最近更新 {e['last_post_at'] or '（读取范围内无）'}，距检查时间 "
                   f"{'—' if days is None else f'{days:.1f}'} 天")
        elif f.check == "gaps":
            why = f"{e['from']} 至 {e['to']} 共 {e['longest_gap_days']:.1f} 天未更新"
        elif f.check == "monthly":
            why = "；".join(f"{m['month']} 发布 {m['count']} 次，应不少于 {m['required']} 次"
                           for m in e["months"] if not m["ok"])
        elif f.check == "interaction":
            why = (f"提问 {e['questions']} 条，{e['reply_hours']:g} 小时内回复 "
                   f"{e['answered_in_time']} 条（回复率 {e['reply_rate']:.0%}）")
        elif f.check == "errata":
            why = "；".join(f"{h['created_at'][:10]} 微博 {h['event_id']} 第 {h['position'] + 1} 字"
                           f"「{h['found']}」→「{h['suggest'] or '删改'}」"
                           for h in e["items"][:10])
        else:
            why = f"{e['unit']} 在 {e['platform']} 有账号 " + "、".join(
                f"{a['name']}({a['id']})" for a in e["accounts"])
        lines.append(f"- **{CHECK_ZH[f.check]}**（{STATUS_ZH[f.status]}）：{why}。"
                     f" 依据：{f.rule}")
    return lines


def compliance_markdown(period: str, rows: Sequence[ComplianceRow]) -> str:
    p = compliance_payload(period, rows)
    s = p["summary"]
    out = [f"# 政务新媒体检查 {period}", "",
           f"否决 {s['veto']} 个，不合格 {s['fail']} 个，合格 {s['pass']} 个。", "",
           "| " + " | ".join(h for _, h in COMPLIANCE_COLS) + " |",
           "|" + "---|" * len(COMPLIANCE_COLS)]
    srt = _sorted(rows)
    for r in srt:
        d = r.as_dict()
        out.append("| " + " | ".join(_cell(k, d[k]) for k, _ in COMPLIANCE_COLS) + " |")
    out += ["", "## 问题与证据", ""]
    for r in srt:
        lines = _evidence_lines(r)
        if lines:
            out += [f"### {r.name}（{r.account_id}）", "", *lines, ""]
    return "\n".join(out)


def print_compliance(period: str, rows: Sequence[ComplianceRow], console: Console) -> None:
    t = Table(title=f"政务新媒体检查 {period}")
    for _, h in COMPLIANCE_COLS:
        t.add_column(h)
    for r in _sorted(rows):
        d = r.as_dict()
        t.add_row(*(_cell(k, d[k]) for k, _ in COMPLIANCE_COLS))
    console.print(t)
