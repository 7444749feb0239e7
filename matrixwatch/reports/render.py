"""Rendering the linkage report as table, CSV, JSON or Markdown (one data model)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from matrixwatch.reports.measures import AccountMeasures

COLUMNS = (
    ("name", "账号"), ("unit", "单位"), ("level", "级别"), ("tasks_expected", "应转"),
    ("tasks_linked", "已转"), ("response_rate", "响应率"), ("median_latency", "中位时延"),
    ("p90_latency", "P90时延"), ("interactions_up", "上级互动"),
    ("interactions_down", "下级联动"), ("coverage", "覆盖度"),
)


@dataclass
class LinkageReport:
    since: str
    until: str
    rows: list[AccountMeasures]
    laggards: list[AccountMeasures]
    matrix: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until,
                "accounts": [r.as_dict() for r in self.rows],
                "laggards": [r.account_id for r in self.laggards],
                "superiors": self.matrix}


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key in ("response_rate", "coverage"):
        return f"{v:.0%}"
    if key in ("median_latency", "p90_latency"):
        return f"{v / 3600:.1f}h"
    return str(v)


def _latency_cell(v: Any) -> str:
    if v is None:
        return "✗"
    if v == "n/a":
        return ""
    return f"{float(v) / 3600:.1f}h"


def to_json(rep: LinkageReport) -> str:
    return json.dumps(rep.as_dict(), ensure_ascii=False, indent=1, sort_keys=True)


def to_csv(rep: LinkageReport) -> str:
    buf = io.StringIO()
    keys = list(AccountMeasures.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rep.rows:
        w.writerow(r.as_dict())
    return buf.getvalue()


def to_markdown(rep: LinkageReport, names: dict[str, str] | None = None) -> str:
    names = names or {r.account_id: r.name for r in rep.rows}
    out = [f"# 矩阵联动报告 {rep.since} — {rep.until}", "", "## 滞后账号（响应率最低）", ""]
    out.append("| " + " | ".join(h for _, h in COLUMNS) + " |")
    out.append("|" + "---|" * len(COLUMNS))
    for r in rep.laggards:
        d = r.as_dict()
        out.append("| " + " | ".join(_fmt(k, d[k]) for k, _ in COLUMNS) + " |")
    for sup, m in rep.matrix.items():
        out += ["", f"## {m['name']}：近 {len(m['tasks'])} 条任务，平均联动率 {m['mean_rate']:.0%}",
                ""]
        out.append("| 下级账号 | " + " | ".join(t[-6:] for t in m["tasks"]) + " |")
        out.append("|---|" + "---|" * len(m["tasks"]))
        for sub, cells in m["rows"].items():
            out.append(f"| {names.get(sub, sub)} | "
                       + " | ".join(_latency_cell(c) for c in cells) + " |")
        _ = sup
    return "\n".join(out) + "\n"


def print_table(rep: LinkageReport, console: Console) -> None:
    t = Table(title=f"滞后账号 {rep.since} — {rep.until}")
    for _, h in COLUMNS:
        t.add_column(h)
    for r in rep.laggards:
        d = r.as_dict()
        t.add_row(*(_fmt(k, d[k]) for k, _ in COLUMNS))
    console.print(t)
    names = {r.account_id: r.name for r in rep.rows}
    for m in rep.matrix.values():
        mt = Table(title=f"{m['name']}：平均联动率 {m['mean_rate']:.0%}")
        mt.add_column("下级账号")
        for task in m["tasks"]:
            mt.add_column(task[-6:])
        for sub, cells in m["rows"].items():
            mt.add_row(names.get(sub, sub), *(_latency_cell(c) for c in cells))
        console.print(mt)
