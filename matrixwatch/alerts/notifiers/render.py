"""One alert → what a person reads: title, fields, message, sample posts, rule.

Every channel shows the same facts (Beijing time, account, unit and level, the numbers
that fired, sample posts with links, the rule); only the markup differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matrixwatch.alerts.text import (
    LEVEL_ZH,
    TYPE_ZH,
    local_str,
    severity_zh,
    split_sample,
)
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert

_PCT = ("share", "base_share", "rate")
_LABELS = {
    "value": "本时段条数", "total": "总条数", "share": "负面占比", "base_share": "基线占比",
    "baseline": "基线", "score": "统计量(-log10 p)", "rate": "联动率", "linked": "已转发",
    "expected": "应转发", "threshold": "要求", "checkpoint": "检查点", "days_since": "未更新天数",
    "threshold_days": "阈值(天)", "hours": "时限(小时)", "hits": "命中词数",
    "consecutive_failures": "连续失败次数",
}
_HIDDEN = ("bucket_start", "bucket_seconds", "last_post", "asked_at", "reminder")
SEVERITY_COLOR = {"blue": "blue", "yellow": "yellow", "orange": "orange", "red": "red"}


@dataclass
class Rendered:
    title: str
    severity: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""
    samples: list[tuple[str, str | None]] = field(default_factory=list)
    link: str | None = None


def post_link(alert: Alert) -> str | None:
    """weibo.com/<uid>/<bid> for a Weibo post alert, else None."""
    if alert.platform != "weibo" or not alert.post_id or not alert.account_id:
        return None
    from matrixwatch.streams.normalize import mid_to_bid

    try:
        return f"https://weibo.com/{alert.account_id}/{mid_to_bid(alert.post_id)}"
    except ValueError:
        return None


def _fmt(key: str, v: float, alert: Alert) -> str:
    if key in _PCT or (key == "threshold" and alert.type.startswith("linkage")):
        return f"{v:.0%}"
    if key == "checkpoint":
        return f"时限的 {v:.0%}"
    return f"{v:g}" if float(v).is_integer() else f"{v:.2f}"


def render(alert: Alert, registry: Registry | None = None) -> Rendered:
    acc = registry.get(alert.platform, alert.account_id) if registry else None
    name = alert.account_name or (acc.name if acc else None)
    unit = alert.unit or (acc.unit if acc else None)
    level = alert.level or (acc.level if acc else None)
    r = Rendered(title=f"【{severity_zh(alert.severity)}预警】{alert.title or alert.rule}",
                 severity=alert.severity, message=alert.message)
    r.fields.append(("时间", f"{local_str(alert.timestamp)}（北京时间）"))
    if alert.account_id:
        r.fields.append(("账号", f"{name}（{alert.account_id}）" if name else alert.account_id))
    if unit or level:
        r.fields.append(("单位", " · ".join(x for x in (unit, LEVEL_ZH.get(level or "", level))
                                           if x)))
    vals = alert.values or {}
    shown = [f"{_LABELS.get(k, k)} {_fmt(k, v, alert)}" for k, v in vals.items()
             if k not in _HIDDEN and not k.startswith("list:")]
    lists = [k[5:] for k in vals if k.startswith("list:")]
    if lists:
        shown.append("词表 " + "、".join(lists))
    if shown:
        r.fields.append(("数值", "，".join(shown)))
    r.fields.append(("规则", f"{alert.rule}（{TYPE_ZH.get(alert.type, alert.type)}）"))
    r.fields.append(("告警编号", alert.id))
    r.link = post_link(alert)
    if alert.type not in ("linkage_lagging", "linkage_low", "stale_account", "collector_health"):
        r.samples = [split_sample(s) for s in (alert.samples or [])[:5]]
    return r


def _md_escape(s: str) -> str:
    return s.replace("[", "［").replace("]", "］")


def markdown(r: Rendered, *, heading: bool = True) -> str:
    """Markdown understood by DingTalk, WeCom and Feishu's lark_md (a common subset)."""
    lines = [f"### {r.title}"] if heading else []
    lines += [f"- **{k}**：{v}" for k, v in r.fields]
    if r.message:
        lines += ["", f"> {r.message}"]
    if r.samples:
        lines += ["", "**样本**："]
        for i, (text, url) in enumerate(r.samples, 1):
            label = _md_escape(text) or url or ""
            lines.append(f"{i}. [{label}]({url})" if url else f"{i}. {label}")
    if r.link:
        lines += ["", f"[查看原微博]({r.link})"]
    return "\n".join(lines)


def plain(r: Rendered) -> str:
    """Plain text (email)."""
    lines = [r.title, ""] + [f"{k}：{v}" for k, v in r.fields]
    if r.message:
        lines += ["", r.message]
    if r.samples:
        lines += ["", "样本："]
        lines += [f"{i}. {t}{'  ' + u if u else ''}" for i, (t, u) in enumerate(r.samples, 1)]
    if r.link:
        lines += ["", f"原微博：{r.link}"]
    lines += ["", "—— matrixwatch 政务新媒体矩阵监测"]
    return "\n".join(lines)
