"""Hand-made events, rules from YAML text, and a driver that can 'restart' mid-sequence."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import yaml

from matrixwatch.alerts.engine import RuleEngine
from matrixwatch.alerts.rules import Rule, rule_from_text
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert, Event
from tests.factories import REGISTRY_YAML, T0

PROV, A, B, C, D, A1, A2 = (
    "9100000001", "9100000011", "9100000012", "9100000013", "9100000014",
    "9100000111", "9100000112",
)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
REG = Registry.from_dict(yaml.safe_load(REGISTRY_YAML))


def rule(text: str, name: str = "t") -> Rule:
    return rule_from_text(text, name)


def ev(eid: str | int, t: datetime, *, kind: str = "comment", author: str = "8800000001",
       owner: str = A2, text: str = "好的", label: str = "neutral", post: str | None = "p1",
       reply_to: str | None = None, root: str | None = None) -> Event:
    if kind == "post":
        post = None
    if kind == "repost":
        root = root or "p1"
        post = None
    return Event(
        platform="weibo", id=str(eid), kind=kind, account_id=author, owner_id=owner, text=text,
        created_at=t.isoformat(), collected_at=t.isoformat(), post_id=post, root_id=root,
        reply_to_id=reply_to, sentiment=0.1 if label == "negative" else 0.6,
        sentiment_label=label, url=f"https://weibo.com/{owner}/{eid}",
    )


def run(engine: RuleEngine, events: Iterable[Event], restart_every: int = 0,
        sweep_at: Iterable[float] = ()) -> list[Alert]:
    """Feed events per owner key; with restart_every=n, every n events all state goes
    through json.dumps/loads (what a changelog restore does)."""
    states: dict[str, Any] = {}
    out: list[Alert] = []
    for i, e in enumerate(events, 1):
        key = f"{e.platform}:{e.owner_id}"
        states[key], alerts = engine.on_event(states.get(key), e)
        out += alerts
        if restart_every and i % restart_every == 0:
            states = json.loads(json.dumps(states))
    for wm in sweep_at:
        for key in sorted(states):
            states[key], alerts = engine.sweep(key, states[key], wm)
            out += alerts
    return out


def quiet_history(owner: str = A2, days: int = 2, every: timedelta = 8 * H,
                  start: datetime = T0 - 48 * H, label: str = "neutral",
                  prefix: str = "calm") -> list[Event]:
    n = int(days * 24 * H / every)
    return [ev(f"{prefix}{i}", start + i * every, owner=owner, label=label,
               author=f"77{i:08d}") for i in range(n)]
