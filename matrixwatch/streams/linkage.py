"""Matrix linkage (矩阵联动): pure task logic, no Faust and no I/O.

Definitions: DESIGN.md, "Linkage". Two kinds of task share one container:

* **repost** platforms (Weibo): a task is keyed by its root post (``weibo:<post id>``), so
  the post and every repost of it meet in one partition, whatever the arrival order. A
  repost opens the task only if its embedded root names the author and ``created_at``
  (they fix the expected set and the deadline). One whose root lacks either (a deleted
  root has no user; some roots come without a time) still counts for a task opened by
  the post or a fuller repost: seen first, it waits in ``candidates`` until then.
* **content** platforms (WeChat via RSS, web): there is no repost primitive, so a
  subordinate's near-duplicate of the superior's text counts as 转载. Those tasks are keyed
  by the superior (``content:wechat:<superior id>``): the superior's posts open tasks and
  the subordinates' posts are matched against them (SimHash prefilter, then exact
  shingle containment; thresholds measured in bench/simhash_threshold.py). A copy seen
  before the original waits as a candidate, so order does not matter there either.

A container is a JSON-able dict ``{"tasks": {post_id: task}, "candidates": [...]}`` that
lives in a Faust table with a changelog. Every transition is idempotent: the earliest
repost per subordinate wins and the expected set is fixed from the registry as of the
post's own ``created_at``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from matrixwatch.registry import Registry
from matrixwatch.streams import simhash
from matrixwatch.streams.records import Event, LinkageResult, epoch

Task = dict[str, Any]
Container = dict[str, Any]

TEXT_HEAD = 2000  # characters of a content task's text kept for exact confirmation


def iso_from_epoch(ts: float, like: str | None = None) -> str:
    """Epoch → ISO-8601, keeping the offset of ``like`` (the post's own) if given.

    A time outside ``datetime``'s range (an absurd event time plus a deadline) is
    clamped to its ends rather than raising in the worker's linkage or sweep path.
    """
    tz = datetime.fromisoformat(like).tzinfo if like else UTC
    try:
        return datetime.fromtimestamp(ts, tz=tz).isoformat()
    except (OverflowError, ValueError, OSError):
        end = datetime.max if ts > 0 else datetime.min
        return end.replace(tzinfo=tz).isoformat()


@dataclass(frozen=True)
class LinkagePolicy:
    """How tasks are opened and judged.

    ``deadline`` is the default window; ``level_deadlines`` and ``account_deadlines``
    override it by the superior's level or id. ``depth`` > 1 also expects subordinates of
    subordinates. ``content_platforms`` use 转载 matching instead of reposts.
    """

    deadline: float = 86400.0
    depth: int = 1
    level_deadlines: Mapping[str, float] = field(default_factory=dict)
    account_deadlines: Mapping[str, float] = field(default_factory=dict)
    content_platforms: frozenset[str] = frozenset({"wechat", "web"})
    simhash_max_distance: int = 24
    min_containment: float = 0.8


def new_container() -> Container:
    return {"tasks": {}, "candidates": []}


Progress = Callable[[Task, float], list[Any]]  # an open task at a watermark → its alerts
Closing = Callable[[LinkageResult], list[Any]]  # a closed task's result → its alerts


@dataclass
class LinkageFold:
    """What one batch did to the containers, for the agent to write out (outputs first,
    then ``states``)."""

    states: dict[str, Container | None] = field(default_factory=dict)  # None: delete
    closed: list[LinkageResult] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    failed: list[tuple[Event, Exception]] = field(default_factory=list)  # left out
    failed_keys: list[tuple[str, Exception]] = field(default_factory=list)  # not evaluated


class LinkageTracker:
    """Opens, updates and closes linkage tasks against a registry."""

    def __init__(self, registry: Registry, policy: LinkagePolicy | None = None) -> None:
        self.registry = registry
        self.policy = policy or LinkagePolicy()

    # --- routing --------------------------------------------------------------------
    def route(self, ev: Event) -> list[str]:
        """The containers an event belongs to (empty if it cannot concern any task)."""
        reg = self.registry
        if ev.platform in self.policy.content_platforms:
            if ev.kind != "post":
                return []
            keys = []
            if reg.has_subordinates(ev.platform, ev.account_id):
                keys.append(f"content:{ev.platform}:{ev.account_id}")
            acc = reg.get(ev.platform, ev.account_id)
            for _ in range(self.policy.depth):
                if acc is None or acc.parent is None:
                    break
                keys.append(f"content:{ev.platform}:{acc.parent}")
                acc = reg.get(ev.platform, acc.parent)
            return keys
        if ev.kind == "post" and reg.has_subordinates(ev.platform, ev.account_id):
            return [f"{ev.platform}:{ev.id}"]
        if ev.kind != "repost" or not ev.root_id:
            return []
        if reg.has_subordinates(ev.platform, ev.root_account_id):
            return [f"{ev.platform}:{ev.root_id}"]
        if not ev.root_account_id and self._may_be_expected(ev.platform, ev.account_id):
            # A deleted root has no author to filter on. The task is keyed by the root
            # id alone, so the repost still meets its post; only a reposter that some
            # task could expect is worth sending.
            return [f"{ev.platform}:{ev.root_id}"]
        return []

    def _may_be_expected(self, platform: str, account_id: str) -> bool:
        """In some task's expected set, at some depth: a registry account with a parent."""
        acc = self.registry.get(platform, account_id)
        return acc is not None and acc.parent is not None

    # --- opening --------------------------------------------------------------------
    def deadline_for(self, author: str, level: str | None) -> float:
        p = self.policy
        if author in p.account_deadlines:
            return p.account_deadlines[author]
        return p.level_deadlines.get(level or "", p.deadline)

    def new_task(self, platform: str, post_id: str, author: str, created: str) -> Task | None:
        acc = self.registry.get(platform, author)
        if acc is None:
            return None
        t0 = epoch(created)
        expected = self.registry.subordinates(platform, author, at=t0, depth=self.policy.depth)
        if not expected:
            return None
        return {
            "post_id": post_id, "platform": platform, "account_id": author,
            "created_at": created, "t0": t0,
            "deadline": t0 + self.deadline_for(author, acc.level),
            "expected": expected, "linked": {}, "late": {}, "closed": False,
        }

    # --- transitions ----------------------------------------------------------------
    def apply(self, box: Container | None, ev: Event, key: str) -> Container | None:
        """Fold one event into the container at ``key``; None if nothing to keep."""
        return self.apply_changed(box, ev, key)[0]

    def apply_changed(
        self, box: Container | None, ev: Event, key: str
    ) -> tuple[Container | None, bool]:
        """As :meth:`apply`, and whether the state changed (most reposts don't: repeats,
        non-subordinates), so the caller writes the changelog only when it must."""
        box = box if box is not None else new_container()
        if key.startswith("content:"):
            changed = self._apply_content(box, ev, key)
        else:
            changed = self._apply_repost(box, ev)
        return (box if box["tasks"] or box["candidates"] else None), changed

    def _apply_repost(self, box: Container, ev: Event) -> bool:
        """Open the task from a post or a repost with a full root, and link a repost.

        The deadline runs from the post's own ``created_at``, which an open task already
        holds: a repost of it links whatever its embedded root lacks. Only opening needs
        the root's author and time; a repost that cannot open its missing task waits as
        a candidate, linked (and dropped) when the task opens.
        """
        if ev.kind == "post":
            post_id = ev.id
            opener: tuple[str, str] | None = (ev.account_id, ev.created_at)
        elif ev.kind == "repost" and ev.root_id:
            post_id = ev.root_id
            opener = ((ev.root_account_id, ev.root_created_at)
                      if ev.root_account_id and ev.root_created_at else None)
        else:
            return False
        task = box["tasks"].get(post_id)
        opened = False
        if task is None:
            if opener is None:  # only a repost gets here
                return self._hold(box, ev, post_id)
            task = self.new_task(ev.platform, post_id, *opener)
            if task is None:
                return False
            box["tasks"][post_id] = task
            opened = True
            waiting = box["candidates"]
            box["candidates"] = [c for c in waiting if c.get("root_id") != post_id]
            for cand in waiting:
                if cand.get("root_id") == post_id:
                    self._link(task, cand["account_id"], cand["ts"])
        linked = ev.kind == "repost" and self._link(task, ev.account_id, ev.ts)
        return opened or linked

    def _hold(self, box: Container, ev: Event, root_id: str) -> bool:
        """Keep a repost whose task cannot be opened yet, once per id, if its author could
        be expected at all. Pruned like a content candidate: once the watermark passes
        it, no post arriving on time can be its root."""
        if not self._may_be_expected(ev.platform, ev.account_id):
            return False
        if any(c["id"] == ev.id for c in box["candidates"]):
            return False
        box["candidates"].append(
            {"id": ev.id, "account_id": ev.account_id, "ts": ev.ts, "root_id": root_id})
        return True

    def _apply_content(self, box: Container, ev: Event, key: str) -> bool:
        superior = key.rsplit(":", 1)[1]
        fp = simhash.to_hex(simhash.simhash(ev.text))
        head = ev.text[:TEXT_HEAD]
        if ev.account_id == superior:
            if ev.id in box["tasks"]:
                return False
            task = self.new_task(ev.platform, ev.id, superior, ev.created_at)
            if task is None:
                return False
            task.update(fp=fp, text=head)
            box["tasks"][ev.id] = task
            for cand in box["candidates"]:
                self._match(task, cand)
            return True
        if any(c["id"] == ev.id for c in box["candidates"]):
            return False
        cand = {"id": ev.id, "account_id": ev.account_id, "ts": ev.ts, "fp": fp, "text": head}
        box["candidates"].append(cand)
        for task in box["tasks"].values():
            self._match(task, cand)
        return True

    def _match(self, task: Task, cand: dict[str, Any]) -> None:
        if task["closed"] or cand["ts"] < task["t0"] or cand["account_id"] == task["account_id"]:
            return
        p = self.policy
        near = simhash.distance(simhash.from_hex(task["fp"]), simhash.from_hex(cand["fp"]))
        if near > p.simhash_max_distance:
            return
        if simhash.containment(task["text"], cand["text"]) < p.min_containment:
            return
        self._link(task, cand["account_id"], cand["ts"])

    @staticmethod
    def _link(task: Task, acct: str, ts: float) -> bool:
        """Earliest per subordinate; after the deadline it is only recorded as late."""
        if task["closed"] or acct not in task["expected"]:
            return False
        bucket = "linked" if ts <= task["deadline"] else "late"
        latency = ts - task["t0"]
        prev = task[bucket].get(acct)
        if prev is None or latency < prev:
            task[bucket][acct] = latency
            return True
        return False

    # --- a batch --------------------------------------------------------------------
    def fold(self, events: Iterable[Event], state_of: Callable[[str], Container | None],
             due: Iterable[str], watermark: float, progress: Progress, closing: Closing,
             retention: float) -> LinkageFold:
        """Apply a batch's events, then evaluate every container they touched or that is
        ``due`` at ``watermark``: checkpoint alerts from ``progress``, tasks past their
        deadline closed (alerts from ``closing``), old tasks pruned. Containers are
        changed in place.

        A failure stays with its event or container. An event that raises is left out
        (``failed``); a container whose evaluation raises gets its checkpoint marks and
        closings of this pass taken back (``failed_keys``), so no mark stands for an
        alert that was never sent. Retried event by event instead, the batch's other
        checkpoints, already marked in place, would not have fired again.
        """
        out = LinkageFold()
        touched: dict[str, Container | None] = {}
        for e in events:
            try:
                for key in self.route(e):
                    box = touched[key] if key in touched else state_of(key)
                    box, changed = self.apply_changed(box, e, key)
                    if changed or key in touched:
                        touched[key] = box
            except Exception as exc:
                out.failed.append((e, exc))
        for key in due:
            if key not in touched:
                touched[key] = state_of(key)
        for key, box in touched.items():
            if box is not None:
                try:
                    box = self._evaluate(box, watermark, progress, closing, retention, out)
                except Exception as exc:
                    out.failed_keys.append((key, exc))
            out.states[key] = box
        return out

    def _evaluate(self, box: Container, watermark: float, progress: Progress,
                  closing: Closing, retention: float, out: LinkageFold) -> Container | None:
        """One container's checkpoints, closings and pruning; all or nothing."""
        tasks, candidates = box["tasks"], box["candidates"]  # prune() replaces both
        open_tasks = [t for t in tasks.values() if not t["closed"]]
        marks = [len(t.get("checkpoints_fired", ())) for t in open_tasks]
        try:
            alerts = [a for t in open_tasks for a in progress(t, watermark)]
            closed = self.close_due(box, watermark)
            alerts += [a for res in closed for a in closing(res)]
            pruned = self.prune(box, watermark, retention)
        except Exception:
            for task, n in zip(open_tasks, marks, strict=True):
                task["closed"] = False
                if "checkpoints_fired" in task:
                    del task["checkpoints_fired"][n:]
            box["tasks"], box["candidates"] = tasks, candidates
            raise
        out.alerts += alerts
        out.closed += closed
        return pruned

    # --- time -----------------------------------------------------------------------
    @staticmethod
    def next_due(box: Container) -> float | None:
        """When the container next needs the clock: a deadline, or a candidate expiring."""
        times = [t["deadline"] for t in box["tasks"].values() if not t["closed"]]
        times += [c["ts"] for c in box["candidates"]]
        return min(times) if times else None

    @classmethod
    def wakeup(cls, box: Container, checkpoints: Sequence[float], after: float) -> float | None:
        """When the container next needs the clock, not before ``after`` (the watermark
        it was last evaluated at): a deadline, a candidate expiring, or a linkage
        checkpoint (a fraction of a task's deadline span).

        Checkpoints behind ``after`` were evaluated then. Returning them made every open
        task with a passed checkpoint due again on every batch until its deadline: on a
        10k-account backlog, 43 changelog writes per input event and a drain at 7 ev/s.
        """
        times = [t for t in (cls.next_due(box),) if t is not None]
        for task in box["tasks"].values():
            if not task["closed"]:
                span = task["deadline"] - task["t0"]
                times += [task["t0"] + f * span for f in checkpoints
                          if task["t0"] + f * span < task["deadline"]]
        times = [t for t in times if t >= after]
        return min(times) if times else None

    def close_due(self, box: Container, watermark: float) -> list[LinkageResult]:
        """Close every open task whose deadline the watermark has passed."""
        out = []
        for task in box["tasks"].values():
            if not task["closed"] and task["deadline"] < watermark:
                out.append(self.close(task))
        return out

    @staticmethod
    def prune(box: Container, watermark: float, retention: float) -> Container | None:
        """Forget closed tasks after ``retention`` and candidates no task can still claim."""
        box["tasks"] = {k: t for k, t in box["tasks"].items()
                        if not (t["closed"] and t["deadline"] < watermark - retention)}
        box["candidates"] = [c for c in box["candidates"] if c["ts"] >= watermark]
        return box if box["tasks"] or box["candidates"] else None

    @staticmethod
    def close(task: Task) -> LinkageResult:
        """Mark closed and produce the result. Late reposts stay out of ``linked``."""
        task["closed"] = True
        expected = task["expected"]
        linked = {k: float(v) for k, v in sorted(task["linked"].items())}
        deadline = iso_from_epoch(task["deadline"], task["created_at"])
        return LinkageResult(
            post_id=task["post_id"], account_id=task["account_id"], platform=task["platform"],
            created_at=task["created_at"], deadline=deadline, expected=list(expected),
            linked=linked, rate=round(len(linked) / len(expected), 6) if expected else 0.0,
            closed_at=deadline,
        )

    @staticmethod
    def laggards(task: Task, at: float | None = None) -> list[str]:
        """Expected accounts not linked (by event time ``at``, if given)."""
        cutoff = None if at is None else at - task["t0"]
        return [a for a in task["expected"]
                if a not in task["linked"] or (cutoff is not None and task["linked"][a] > cutoff)]


def reference_linkage(
    registry: Registry, events: list[Event], policy: LinkagePolicy | None = None
) -> dict[str, dict[str, Any]]:
    """The straightforward computation the stream must equal (for tests and audits).

    For every original Weibo post by an account with active direct subordinates (as of
    the post time): expected = those subordinates; linked = for each expected account,
    the earliest repost of that root within the deadline. A repost links whatever its
    embedded root lacks (no time, no author: deleted); only opening a task needs them.
    """
    policy = policy or LinkagePolicy()
    tracker = LinkageTracker(registry, policy)
    posts: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.kind == "post":
            posts.setdefault(e.id, (e.account_id, e.created_at))
        elif e.kind == "repost" and e.root_id and e.root_account_id and e.root_created_at:
            posts.setdefault(e.root_id, (e.root_account_id, e.root_created_at))
    out: dict[str, dict[str, Any]] = {}
    for pid, (author, created) in posts.items():
        acc = registry.get("weibo", author)
        if acc is None:
            continue
        t0 = epoch(created)
        expected = registry.subordinates("weibo", author, at=t0, depth=policy.depth)
        if not expected:
            continue
        deadline = t0 + tracker.deadline_for(author, acc.level)
        linked: dict[str, float] = {}
        for e in events:
            if (e.kind == "repost" and e.root_id == pid and e.account_id in expected
                    and e.ts <= deadline):
                lat = e.ts - t0
                linked[e.account_id] = min(lat, linked.get(e.account_id, lat))
        out[pid] = {"expected": expected, "linked": dict(sorted(linked.items())),
                    "rate": round(len(linked) / len(expected), 6)}
    return out


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 1]); None for no values."""
    if not values:
        return None
    s = sorted(values)
    idx = min(len(s) - 1, max(0, int(-(-q * len(s) // 1)) - 1))
    return s[idx]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
