"""What the console's API answers, independent of HTTP: reads joined with the workflow.

Synchronous on purpose (SQLite and the sync ES client block): the aiohttp handlers call
these methods through ``asyncio.to_thread`` so the event loop keeps serving the live
stream.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, IPvAnyNetwork
from pydantic_settings import BaseSettings, SettingsConfigDict

from matrixwatch.alerts.text import split_sample
from matrixwatch.dashboards.console import board
from matrixwatch.dashboards.console.auth import Users
from matrixwatch.dashboards.console.query import AlertFilter, ConsoleQueries, FeedFilter
from matrixwatch.dashboards.console.state import CLOSED, ConsoleState, TransitionError
from matrixwatch.registry import Registry, RegistryError
from matrixwatch.settings import Settings
from matrixwatch.streams.linkage import LinkagePolicy
from matrixwatch.streams.records import LEVELS, epoch


class ConsoleSettings(BaseSettings):
    """``MW_CONSOLE_*``: the console's own knobs (the pipeline's stay in settings.py)."""

    model_config = SettingsConfigDict(env_prefix="MW_CONSOLE_", env_file=".env",
                                      extra="ignore")

    users_file: Path | None = Field(
        None, description="YAML of users with token hashes or token_env names (auth.py).")
    db: Path | None = Field(None, description="Console state file; default "
                            "data_dir/console.sqlite.")
    clock: str = Field("event", description="'event': countdowns against the latest event "
                       "time in the store (replays); 'wall': against the wall clock.")
    stale_days: float = Field(14.0, description="No post or repost for this many days: stale.")
    poll_interval: float = Field(1.0, description="Seconds between live-stream store polls.")
    session_ttl: float = Field(12 * 3600.0, description="Seconds a login lasts (one shift).")
    secure_cookie: bool = Field(False, description="Mark the session cookie Secure (TLS).")
    shifts: str = Field("08:00,20:00", description="Shift changes, Asia/Shanghai, HH:MM list.")
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Reverse proxies in front of the console (addresses or CIDR networks, "
        'JSON: ["10.0.0.2"]). A request from one of them is counted against the client '
        "its X-Forwarded-For names (the nearest hop that is not a trusted proxy): behind a "
        "proxy every client shares its address, and one token guesser would lock everyone "
        "out of login for a minute. Empty (default): X-Forwarded-For is ignored, since any "
        "client can write it.")


MAX_OPEN_SHOWN = 200


class NotFound(LookupError):
    """An alert id the store does not have (HTTP 404)."""


@dataclass
class _Cached:
    at: float
    key: Any
    value: Any


def shift_start(now: float, shifts: str) -> float:
    """The latest shift change at or before ``now`` (Asia/Shanghai)."""
    local = datetime.fromtimestamp(now, tz=board.SHANGHAI)
    times = sorted(tuple(int(x) for x in s.strip().split(":")) for s in shifts.split(",")
                   if s.strip())
    best: datetime | None = None
    for day in (local.date() - timedelta(days=1), local.date()):
        for h, m in times:
            cand = datetime(day.year, day.month, day.day, h, m, tzinfo=board.SHANGHAI)
            if cand <= local and (best is None or cand > best):
                best = cand
    return best.timestamp() if best else now - 12 * 3600


class Console:
    """The console's state and reads for one process."""

    def __init__(self, settings: Settings, queries: ConsoleQueries, state: ConsoleState,
                 users: Users, csettings: ConsoleSettings | None = None,
                 registry: Registry | None = None) -> None:
        self.settings = settings
        self.cs = csettings or ConsoleSettings()
        self.queries = queries
        self.state = state
        self.users = users
        self.registry_path = settings.registry
        self.registry = registry if registry is not None else (
            Registry.load(settings.registry) if settings.registry else Registry())
        self.policy = LinkagePolicy(
            deadline=settings.linkage_deadline, depth=settings.linkage_depth,
            level_deadlines=settings.linkage_level_deadlines,
            account_deadlines=settings.linkage_account_deadlines)
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.queries.close()
        self.state.close()

    # --- helpers --------------------------------------------------------------------------
    def _cached(self, name: str, key: Any, ttl: float, fn: Any) -> Any:
        """Several open pages refresh the same board: compute once per ``ttl``."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit and hit.key == key and now - hit.at < ttl:
                return hit.value
        value = fn()
        with self._lock:
            self._cache[name] = _Cached(now, key, value)
        return value

    def ref_time(self) -> float:
        latest = self._cached("latest", None, 1.0, self.queries.latest_event_time)
        return board.reference_time(latest, self.cs.clock, time.time())

    def _account_info(self, platform: str, account_id: str | None) -> dict[str, Any]:
        acc = self.registry.get(platform, account_id)
        if acc is None:
            return {}
        return {"name": acc.name, "unit": acc.unit, "level": acc.level}

    def owners_for(self, *, unit: str | None = None, level: str | None = None,
                   account: str | None = None, platform: str | None = None
                   ) -> tuple[str, ...] | None:
        """The matrix accounts a filter means (None: no owner filter)."""
        if not (unit or level or account):
            return None
        out = []
        for a in self.registry.all():
            if platform and a.platform != platform:
                continue
            if (unit and a.unit != unit) or (level and a.level != level) or (
                    account and a.id != account):
                continue
            out.append(a.id)
        if account and not out and not (unit or level):
            out = [account]  # not in the registry: still filter by it
        return tuple(sorted(set(out)))

    # --- alerts ---------------------------------------------------------------------------
    def decorate(self, a: dict[str, Any]) -> dict[str, Any]:
        """An alert as the page shows it: its workflow state, names, samples split."""
        return self.decorate_many([a])[0]

    def decorate_many(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        states = self.state.states([a["id"] for a in alerts])
        out = []
        for a in alerts:
            platform = a.get("platform") or "weibo"
            info = self._account_info(platform, a.get("account_id"))
            samples = []
            for s in a.get("samples") or []:
                acc = self.registry.get(platform, s)
                if acc is not None:  # linkage alerts list laggard accounts
                    samples.append({"text": f"{acc.name}（{acc.unit or acc.level or ''}）",
                                    "url": None, "account_id": acc.id})
                else:
                    text, url = split_sample(s)
                    samples.append({"text": text, "url": url})
            st = states.get(a["id"])
            out.append({
                **a, "account_name": a.get("account_name") or info.get("name"),
                "unit": a.get("unit") or info.get("unit"),
                "level": a.get("level") or info.get("level"),
                "sample_posts": samples,
                "state": (st.asdict() if st else {"status": "new", "assignee": None,
                                                   "updated_at": None, "updated_by": None}),
            })
        return out

    def alert_list(self, f: AlertFilter, status: str | None = None) -> dict[str, Any]:
        cursor = self.queries.alert_cursor()  # before the read: nothing falls in between
        alerts = self.decorate_many(self.queries.alerts(f))
        if status == "open":
            alerts = [a for a in alerts if a["state"]["status"] != CLOSED]
        elif status:
            alerts = [a for a in alerts if a["state"]["status"] == status]
        return {"alerts": alerts, "cursor": cursor}

    def alert_detail(self, alert_id: str) -> dict[str, Any]:
        found = self.queries.alerts_by_id([alert_id])
        if not found:
            raise NotFound(alert_id)
        return {**self.decorate(found[0]), "history": self.state.history(alert_id)}

    def act(self, alert_id: str, user: str, action: str, *, assignee: str | None = None,
            note: str | None = None) -> dict[str, Any]:
        if not self.queries.alerts_by_id([alert_id]):
            raise NotFound(alert_id)
        if action == "assign" and (not assignee or self.users.get(assignee) is None):
            raise TransitionError("assignee must be a console user")
        self.state.apply(alert_id, user, action, assignee=assignee, note=note)
        return self.alert_detail(alert_id)

    def handover(self, since: float | None = None, until: float | None = None
                 ) -> dict[str, Any]:
        """Open alerts and what was done in the shift, for the one taking over."""
        now = time.time()
        until = until or now
        since = since if since is not None else shift_start(now, self.cs.shifts)
        recent = self.decorate_many(self.queries.alerts(AlertFilter(limit=500)))
        open_ = [a for a in recent if a["state"]["status"] != CLOSED]
        actions = self.state.actions_between(since, until)
        ids = sorted({x["alert_id"] for x in actions})
        by_id = {a["id"]: a for a in self.decorate_many(self.queries.alerts_by_id(ids))}
        for x in actions:
            a = by_id.get(x["alert_id"])
            x["alert"] = {k: a.get(k) for k in ("title", "severity", "rule", "timestamp",
                                                "account_name", "unit")} if a else None
        return {
            "since": board.iso(since), "until": board.iso(until), "open_alerts": open_,
            "actions": actions, "notes": self.state.handover_notes(since, until),
            "counts": {"open": len(open_),
                       "new": sum(a["state"]["status"] == "new" for a in open_),
                       "acknowledged": sum(a["state"]["status"] == "acknowledged"
                                           for a in open_),
                       "closed_in_shift": len({x["alert_id"] for x in actions
                                               if x["action"] == "close"}),
                       "actions": len(actions)},
        }

    # --- feed -----------------------------------------------------------------------------
    def feed(self, *, sentiment: str | None, platform: str | None, kind: str | None,
             level: str | None, unit: str | None, account: str | None, q: str | None,
             before: float | None, limit: int) -> dict[str, Any]:
        owners = self.owners_for(unit=unit, level=level, platform=platform)
        f = FeedFilter(sentiment=sentiment, platform=platform, kind=kind, owners=owners,
                       q=q, before=before, limit=limit)
        if account:
            # the account's own posts and everything about it
            acct = (account,) if owners is None else tuple(o for o in owners if o == account)
            f = FeedFilter(sentiment=sentiment, platform=platform, kind=kind, owners=acct,
                           author=account, q=q, before=before, limit=limit)
        events = self.queries.feed(f)
        for e in events:
            info = self._account_info(e["platform"], e.get("owner_id"))
            e["owner_name"] = e.get("owner_name") or info.get("name")
            e["owner_unit"] = e.get("owner_unit") or info.get("unit")
            e["owner_level"] = e.get("owner_level") or info.get("level")
        nxt = epoch(events[-1]["created_at"]) if len(events) == limit else None
        return {"events": events, "next_before": nxt}

    # --- matrix board ---------------------------------------------------------------------
    def open_tasks(self, ref: float) -> board.OpenTasks:
        sup = board.superiors(self.registry, self.policy)
        span = board.max_deadline(self.policy)
        posts = self.queries.posts_by(sup, ref - span, ref + 1e-3)
        keys = [(p["platform"], p["id"]) for p in posts]
        closed = self.queries.closed_task_ids(keys) if keys else set()
        reposts: list[dict[str, Any]] = []
        for platform in sorted({p for p, _ in keys}):
            ids = [pid for p, pid in keys if p == platform and (p, pid) not in closed]
            since = min(epoch(x["created_at"]) for x in posts if x["platform"] == platform)
            reposts += self.queries.reposts_of(platform, ids, since)
        return board.open_tasks(self.registry, self.policy, posts, reposts, closed, ref)

    def board(self, days: float = 7.0) -> dict[str, Any]:
        ref = self.ref_time()
        return self._cached("board", (ref, days), 2.0, lambda: self._board(ref, days))

    def _board(self, ref: float, days: float) -> dict[str, Any]:
        since = ref - days * board.DAY
        open_ = self.open_tasks(ref)
        closed = self.queries.closed_tasks(since, ref + 1e-3)
        last = self.queries.last_posts()
        return {
            "ref": board.iso(ref), "ref_ts": ref, "clock": self.cs.clock, "days": days,
            "deadline_default": self.policy.deadline,
            # most urgent first; a big matrix has hundreds open, the page shows 200
            "open_tasks": open_.tasks[:MAX_OPEN_SHOWN], "closed_recent": board.closed_summary(
                self.registry, closed),
            "responses": board.response_table(self.registry, closed, since, ref + 1e-3, last),
            "stale": board.stale_accounts(self.registry, last, ref, self.cs.stale_days),
            "stale_days": self.cs.stale_days,
            "counts": {"open": len(open_.tasks), "closed": len(closed),
                       "laggards": sum(len(t["laggards"]) for t in open_.tasks)},
        }

    def series(self, *, account: str | None, unit: str | None, platform: str | None,
               days: float) -> dict[str, Any]:
        ref = self.ref_time()
        owners = self.owners_for(unit=unit, account=account, platform=platform) or ()
        since, until = ref - days * board.DAY, ref + 1e-3
        bucket = board.pick_bucket(until - since)
        rows = self.queries.series(platform, owners, since, until, bucket)
        return {"ref": board.iso(ref), "bucket": bucket, "owners": list(owners),
                "points": board.fill_series(rows, since, until, bucket)}

    def linkage_rates(self, *, superior: str, platform: str, days: float) -> dict[str, Any]:
        ref = self.ref_time()
        closed = self.queries.closed_tasks(ref - days * board.DAY, ref + 1e-3)
        open_ = self.open_tasks(ref).tasks
        return {"ref": board.iso(ref), "superior": board.who(self.registry, platform, superior),
                "rows": board.subordinate_rates(self.registry, platform, superior, closed,
                                                open_, at=ref)}

    # --- meta and registry --------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        accts = sorted(self.registry.all(), key=lambda a: (a.platform, a.level or "", a.id))
        ref = self.ref_time()
        return {
            "accounts": [{"id": a.id, "platform": a.platform, "name": a.name, "unit": a.unit,
                          "level": a.level, "parent": a.parent,
                          "active": self.registry.active_at(a, ref)}
                         for a in accts if not a.synthetic],
            "units": sorted({a.unit for a in accts if a.unit}),
            "levels": [lv for lv in LEVELS if any(a.level == lv for a in accts)],
            "platforms": sorted({a.platform for a in accts}),
            "superiors": [board.who(self.registry, p, s) | {"platform": p}
                          for p, s in board.superiors(self.registry, self.policy)],
            "users": [u.public() for u in self.users.all()],
            "ref": board.iso(ref), "clock": self.cs.clock,
            "registry_writable": self.registry_path is not None,
        }

    @staticmethod
    def validate_registry(text: str, at: float | None = None
                          ) -> tuple[Registry | None, dict[str, Any]]:
        """An uploaded registry and its report. Every bad input is a RegistryError (YAML
        included, via Registry.from_text): a report the API answers 422 with. Anything
        else is a bug and propagates (500). CPU-heavy on a big upload: call it in a
        thread. ``active`` counts the accounts active at ``at`` (default: now), a
        closed_at deciding whatever ``active`` says."""
        try:
            reg = Registry.from_text(text, source="upload")
        except RegistryError as e:
            return None, {"ok": False, "error": str(e)}
        sup = {(a.platform, a.parent) for a in reg.all() if a.parent}
        when = time.time() if at is None else at
        return reg, {"ok": True, "accounts": len(reg), "units": len(reg.units),
                     "superiors": len(sup),
                     "active": sum(1 for a in reg.all() if reg.active_at(a, when))}

    def replace_registry(self, text: str) -> dict[str, Any]:
        """Write a validated registry over the configured file (kept as .bak first)."""
        reg, report = self.validate_registry(text, self.ref_time())
        if reg is None:
            return report
        if self.registry_path is None:
            raise PermissionError("no registry file is configured (MW_REGISTRY)")
        path = Path(self.registry_path)
        if path.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path.with_name(f"{path.name}.bak-{stamp}").write_bytes(path.read_bytes())
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        self.registry = reg
        with self._lock:
            self._cache.clear()
        return {**report, "written": str(path)}
