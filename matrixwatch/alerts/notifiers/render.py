"""One alert → what a person reads: title, fields, message, sample posts, rule.

Every channel shows the same facts (Beijing time, account, unit and level, the numbers
that fired, sample posts with links, the rule); only the markup differs. A quiet-hours
digest (type :data:`QUIET_DIGEST`, built by the dispatcher) is alert-shaped too, so it
takes the same path: its fields are the window, the total and the count per rule and
severity, and its samples are the top held alerts, one line each (:func:`digest_line`).
A rate-limit summary (type :data:`RATE_DIGEST`, built by alerts/throttle.py for the alerts
a channel's send budget left out) has the same shape and takes the same path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matrixwatch.alerts.rules import severity_rank
from matrixwatch.alerts.text import (
    LEVEL_ZH,
    TYPE_ZH,
    local_str,
    sample,
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
QUIET_DIGEST = "quiet_digest"  # Alert.type of a quiet-hours digest
RATE_DIGEST = "rate_digest"  # Alert.type of a rate-limit summary (alerts/throttle.py)
DIGEST_TYPES = (QUIET_DIGEST, RATE_DIGEST)
_DIGEST = {  # type → (title label, samples label, what "合计" says happened to them)
    QUIET_DIGEST: (TYPE_ZH[QUIET_DIGEST], "暂缓的告警", "已入库，静默时段内未通知"),
    RATE_DIGEST: ("限流", "级别最高的告警", "已入库，因限流未单独推送"),
}
COUNT_PREFIX = "count:"  # digest values: "count:<rule>|<type>|<severity>" -> held alerts


@dataclass
class Rendered:
    title: str
    severity: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""
    samples: list[tuple[str, str | None]] = field(default_factory=list)
    link: str | None = None
    samples_label: str = "样本"


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
    if alert.type in DIGEST_TYPES:
        return render_digest(alert)
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


def digest_line(alert: Alert) -> str:
    """One held alert as a digest sample line: severity, title, account, unit, numbers,
    Beijing time, then its link (the post, else its first sample's)."""
    r = render(alert)
    f = dict(r.fields)
    parts = [severity_zh(alert.severity), alert.title or alert.rule, f.get("账号"),
             f.get("单位"), f.get("数值"), local_str(alert.timestamp, seconds=False)]
    link = r.link or next((u for _, u in r.samples if u), None)
    return sample(" · ".join(p for p in parts if p), link, limit=240)


def digest_counts(alert: Alert) -> list[tuple[str, str, str, int]]:
    """(rule, type, severity, count) of a digest, highest severity first."""
    out = []
    for k, v in (alert.values or {}).items():
        if k.startswith(COUNT_PREFIX):
            rule, typ, sev = k[len(COUNT_PREFIX):].rsplit("|", 2)
            out.append((rule, typ, sev, int(v)))
    return sorted(out, key=lambda c: (-severity_rank(c[2]), c[0], c[1]))


def render_digest(alert: Alert) -> Rendered:
    vals = alert.values or {}
    total = int(vals.get("total", 0))
    label, samples_label, fate = _DIGEST.get(alert.type, _DIGEST[QUIET_DIGEST])
    r = Rendered(title=f"【{label}】{alert.title}", severity=alert.severity,
                 message=alert.message, samples_label=samples_label)
    if "window_start" in vals and "window_end" in vals:
        r.fields.append(("时段", f"{local_str(vals['window_start'], seconds=False)} 至 "
                                 f"{local_str(vals['window_end'], seconds=False)}（北京时间）"))
    r.fields.append(("合计", f"{total} 条（{fate}）"))
    r.fields.append(("分布", "；".join(
        f"{rule}（{TYPE_ZH.get(typ, typ)}）{severity_zh(sev)} {n} 条"
        for rule, typ, sev, n in digest_counts(alert))))
    r.samples = [split_sample(s) for s in alert.samples or []]
    if r.samples:
        r.fields.append(("列出", f"级别最高的 {len(r.samples)} 条" if len(r.samples) < total
                         else "全部"))
    r.fields.append(("汇总编号", alert.id))
    return r


def digest_summary(alert: Alert) -> dict[str, object]:
    """A digest as structured JSON (the webhook's ``digest`` object)."""
    vals = alert.values or {}
    return {
        "kind": "rate_limit" if alert.type == RATE_DIGEST else "quiet_hours",
        "window_start": local_str(vals["window_start"]) if "window_start" in vals else None,
        "window_end": local_str(vals["window_end"]) if "window_end" in vals else None,
        "total": int(vals.get("total", 0)),
        "counts": [{"rule": rule, "type": typ, "severity": sev, "count": n}
                   for rule, typ, sev, n in digest_counts(alert)],
        "top": [{"text": t, "url": u} for t, u in map(split_sample, alert.samples or [])],
    }


def _md_escape(s: str) -> str:
    return s.replace("[", "［").replace("]", "］")


def markdown(r: Rendered, *, heading: bool = True) -> str:
    """Markdown understood by DingTalk, WeCom and Feishu's lark_md (a common subset)."""
    lines = [f"### {r.title}"] if heading else []
    lines += [f"- **{k}**：{v}" for k, v in r.fields]
    if r.message:
        lines += ["", f"> {r.message}"]
    if r.samples:
        lines += ["", f"**{r.samples_label}**："]
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
        lines += ["", f"{r.samples_label}："]
        lines += [f"{i}. {t}{'  ' + u if u else ''}" for i, (t, u) in enumerate(r.samples, 1)]
    if r.link:
        lines += ["", f"原微博：{r.link}"]
    lines += ["", "—— matrixwatch 政务新媒体矩阵监测"]
    return "\n".join(lines)
