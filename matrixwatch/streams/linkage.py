"""Matrix linkage (矩阵联动): pure task logic, no Faust and no I/O.

A task is keyed by its root post. Its state is a JSON-able dict so that it can live
in a Faust table with a changelog. Every operation is a function of (state, event) that
is idempotent and order-insensitive: the earliest repost per subordinate wins, and
the expected set is fixed from the registry as of the post's own ``created_at``.
Definitions: ../DESIGN.md, "Linkage".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from matrixwatch.registry import Registry
from matrixwatch.streams.records import Event, LinkageResult, epoch

TaskState = dict[str, Any]


def iso_from_epoch(ts: float, like: str | None = None) -> str:
    """Epoch → ISO-8601, keeping the offset of ``like`` (the post's own) if given."""
    tz = datetime.fromisoformat(like).tzinfo if like else UTC
    return datetime.fromtimestamp(ts, tz=tz).isoformat()


@dataclass(frozen=True)
class LinkagePolicy:
    """How tasks are opened and judged. Per-level deadlines override the default."""

    deadline: float = 86400.0
    depth: int = 1
    level_deadlines: Mapping[str, float] = field(default_factory=dict)


class LinkageTracker:
    """Opens, updates and closes linkage tasks against a registry."""

    def __init__(self, registry: Registry, policy: LinkagePolicy | None = None) -> None:
        self.registry = registry
        self.policy = policy or LinkagePolicy()

    # --- routing --------------------------------------------------------------------
    def task_key(self, ev: Event) -> str | None:
        """The task an event belongs to, or None if it cannot concern any task."""
        if ev.kind == "post" and self.registry.has_subordinates(ev.platform, ev.account_id):
            return f"{ev.platform}:{ev.id}"
        if (
            ev.kind == "repost"
            and ev.root_id
            and self.registry.has_subordinates(ev.platform, ev.root_account_id)
        ):
            return f"{ev.platform}:{ev.root_id}"
        return None

    # --- state transitions ----------------------------------------------------------
    def open(self, ev: Event) -> TaskState | None:
        """A new task from the post itself or from a repost that embeds it."""
        if ev.kind == "post":
            post_id, author, created = ev.id, ev.account_id, ev.created_at
        elif ev.kind == "repost" and ev.root_id and ev.root_account_id and ev.root_created_at:
            post_id, author, created = ev.root_id, ev.root_account_id, ev.root_created_at
        else:
            return None
        acc = self.registry.get(ev.platform, author)
        if acc is None:
            return None
        t0 = epoch(created)
        expected = self.registry.subordinates(
            ev.platform, author, at=t0, depth=self.policy.depth
        )
        if not expected:
            return None
        deadline = self.policy.level_deadlines.get(acc.level or "", self.policy.deadline)
        return {
            "post_id": post_id,
            "platform": ev.platform,
            "account_id": author,
            "created_at": created,
            "t0": t0,
            "deadline": t0 + deadline,
            "expected": expected,
            "linked": {},
            "late": {},
            "closed": False,
        }

    def apply(self, state: TaskState | None, ev: Event) -> TaskState | None:
        """Fold one event into the task. Returns the (possibly new) state."""
        if state is None:
            state = self.open(ev)
            if state is None:
                return None
        if state["closed"] or ev.kind != "repost" or ev.root_id != state["post_id"]:
            return state
        acct = ev.account_id
        if acct not in state["expected"]:
            return state
        ts = ev.ts
        bucket = "linked" if ts <= state["deadline"] else "late"
        latency = ts - state["t0"]
        prev = state[bucket].get(acct)
        if prev is None or latency < prev:
            state[bucket][acct] = latency
        return state

    @staticmethod
    def due(state: TaskState, watermark: float) -> bool:
        return not state["closed"] and state["deadline"] < watermark

    @staticmethod
    def close(state: TaskState) -> LinkageResult:
        """Mark closed and produce the result. Late reposts stay out of ``linked``."""
        state["closed"] = True
        expected = state["expected"]
        linked = {k: float(v) for k, v in sorted(state["linked"].items())}
        return LinkageResult(
            post_id=state["post_id"],
            account_id=state["account_id"],
            platform=state["platform"],
            created_at=state["created_at"],
            deadline=iso_from_epoch(state["deadline"], state["created_at"]),
            expected=list(expected),
            linked=linked,
            rate=round(len(linked) / len(expected), 6) if expected else 0.0,
            closed_at=iso_from_epoch(state["deadline"], state["created_at"]),
        )

    @staticmethod
    def laggards(state: TaskState) -> list[str]:
        return [a for a in state["expected"] if a not in state["linked"]]
