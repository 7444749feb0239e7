"""Turning analysis results into Alert records with deterministic ids.

An alert's id is a hash of the rule, the key it is about and the event time of the
bucket or task, so the same situation replayed yields the same alert, once.
"""

from __future__ import annotations

import hashlib

from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert, LinkageResult
from matrixwatch.streams.spikes import SpikeSignal

SEVERITY_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
SEVERITIES = ("blue", "yellow", "orange", "red")


def alert_id(rule: str, key: str, t: float | str) -> str:
    return hashlib.sha1(f"{rule}|{key}|{t}".encode()).hexdigest()[:24]


def volume_spike(
    sig: SpikeSignal,
    *,
    platform: str,
    owner_id: str,
    fired_at: str,
    registry: Registry,
    samples: list[str],
    rule: str = "volume_spike",
) -> Alert:
    acc = registry.get(platform, owner_id)
    who = acc.name if acc else owner_id
    unit = f"（{acc.unit}）" if acc and acc.unit else ""
    return Alert(
        id=alert_id(rule, f"{platform}:{owner_id}", f"{sig.t}|{sig.severity}"),
        rule=rule,
        type="spike",
        severity=sig.severity,
        timestamp=fired_at,
        account_id=owner_id,
        platform=platform,
        title=f"{who}{unit} 声量突增",
        message=(
            f"{who}{unit}：本时段 {sig.value:.0f} 条，基线 {sig.baseline:.1f}，"
            f"统计量 {sig.score:.1f}"
        ),
        values={"value": sig.value, "baseline": round(sig.baseline, 4),
                "score": round(sig.score, 4), "bucket_start": sig.t},
        samples=samples[:5],
    )


def linkage_low(
    res: LinkageResult, *, registry: Registry, threshold: float, rule: str = "linkage_low"
) -> Alert | None:
    if res.rate >= threshold:
        return None
    acc = registry.get(res.platform, res.account_id)
    who = acc.name if acc else res.account_id
    laggards = [a for a in res.expected if a not in res.linked]
    names = []
    for a in laggards[:20]:
        sub = registry.get(res.platform, a)
        names.append(f"{sub.name}（{sub.unit}）" if sub and sub.unit else (sub.name if sub else a))
    severity = "orange" if res.rate < threshold / 2 else "yellow"
    return Alert(
        id=alert_id(rule, f"{res.platform}:{res.post_id}", res.deadline),
        rule=rule,
        type="linkage_low",
        severity=severity,
        timestamp=res.deadline,
        account_id=res.account_id,
        post_id=res.post_id,
        platform=res.platform,
        title=f"{who} 转发联动率偏低",
        message=(
            f"{who} 的微博 {res.post_id} 截止时联动率 {res.rate:.0%}"
            f"（{len(res.linked)}/{len(res.expected)}），未转发：{'、'.join(names)}"
        ),
        values={"rate": res.rate, "linked": len(res.linked), "expected": len(res.expected)},
        samples=laggards,
    )
