"""Rule evaluation: events, time, linkage tasks and collector health → alerts. Pure.

State. One JSON-able dict per owner key (``platform:owner_id``) holds every rule's state
for that owner, so the stream keeps it in one changelogged table next to the partition
the owner's events arrive on, and a restarted worker continues with identical alerts.
Layout::

    {"v": 1, "max_ts": <owner's latest event time>,
     "rules": {<rule name>: <that rule's state, by type>}}

Time. Everything runs on event time: buckets close at the owner's own watermark
(latest event − the rule's lateness), deadlines (unanswered, stale) are computed event
times, and an alert's ``timestamp`` is the event time it fired at, never the wall clock.
Time-driven alerts (stale, unanswered) fire only from :meth:`RuleEngine.sweep`
(watermark), always with the same computed timestamp and id, so the result does not
depend on when or how often the sweep runs. An owner's events arrive in partition order
but not in event-time order (collectors page newest-first, archives are arbitrary), so an
event only records: a later-arriving earlier post can split a silence, and an answer may
arrive before its question. The sweep decides once the watermark says nothing earlier
can still come; a finite replay sweeps at its end.

Reuse. ``spike`` is :class:`VolumeCounter` + :class:`SpikeDetector` exactly as the
stream's volume agent used them. ``negative_surge`` runs the same counter with a thin
:class:`SurgeDetector` that tests the negative count with the NB detector and adds the
share condition.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick

from matrixwatch.alerts.rules import (
    SEVERITIES,
    HealthRuleParams,
    KeywordRuleParams,
    LaggingRuleParams,
    LowRuleParams,
    Rule,
    SpikeRuleParams,
    StaleRuleParams,
    SurgeRuleParams,
    UnansweredRuleParams,
    severity_rank,
)
from matrixwatch.alerts.text import (
    KIND_ZH,
    LEVEL_ZH,
    alert_id,
    local_str,
    name_of,
    redact_urls,
    sample,
    snippet,
)
from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import iso_from_epoch
from matrixwatch.streams.records import (
    Account,
    Alert,
    CollectorHealth,
    Event,
    LinkageResult,
    epoch,
)
from matrixwatch.streams.spikes import SpikeDetector, SpikeSignal
from matrixwatch.streams.volume import VolumeCounter, new_state

__all__ = ["END_OF_INPUT_GUARD", "RuleEngine", "SurgeDetector", "SurgeSignal", "check_health",
           "is_question"]


def check_health(h: CollectorHealth) -> None:
    """ValueError("bad health record: <field>: ...") unless the fields have their types.

    Records on mw-health are decoded without coercion, so a collector bug (or a hand-made
    record) can carry ``"consecutive_failures": "three"``; the stream dead-letters such a
    record with this reason instead of failing somewhere inside the rule.
    """
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"bad health record: {field}: {why}")

    for name in ("source", "status", "at", "platform"):
        if not isinstance(getattr(h, name, None), str) or not getattr(h, name):
            raise bad(name, "not a non-empty string")
    for name in ("last_error", "account_id"):
        if getattr(h, name, None) is not None and not isinstance(getattr(h, name), str):
            raise bad(name, "not a string")
    n = getattr(h, "consecutive_failures", None)
    if type(n) is not int or n < 0:
        raise bad("consecutive_failures", f"not a count: {str(n)[:40]!r}")
    try:
        epoch(h.at)
    except (ValueError, TypeError) as e:
        raise bad("at", str(e)[:80]) from None

STATE_VERSION = 1
#: Watermarks at or beyond this (year ~5138) are the replay's end-of-input punctuation
#: (9999-12-31), not a time anything happened at: they close linkage tasks but must not
#: make every account "stale" or every question "unanswered".
END_OF_INPUT_GUARD = 1e11
#: How long past a question's window the account's comments are remembered (by the owner's
#: latest event time): an answer that arrives before its question still counts if the
#: question is at most this much older than the owner's latest event. Collectors page
#: posts newest-first and fetch an old post's comments later, so days are not enough.
UNANSWERED_MARGIN = 30 * 86400.0
#: Posts a stale_account state keeps before it closes its oldest silence without a sweep
#: (thinned, they span at least this many half-windows: about 7 months at 14 days).
STALE_MAX_POSTS = 32
_EVENT_TYPES = ("spike", "negative_surge", "keyword", "stale_account", "unanswered")


def _bump(severity: str, levels: int = 1) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, severity_rank(severity) + levels)]


def _num(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _g(x: float) -> str:
    """A baseline for people: two significant digits below 10, one decimal above."""
    return f"{x:.2g}" if x < 10 else f"{x:.1f}"


# --- negative share on top of the NB detector -------------------------------------------
@dataclass(frozen=True)
class SurgeSignal(SpikeSignal):
    """A negative-count spike whose negative share also rose."""

    total: float = 0.0
    share: float = 0.0
    base_share: float = 0.0


class SurgeDetector:
    """Detector for :class:`VolumeCounter` whose buckets hold all events and negative ids.

    The counter feeds ``step`` the bucket's total; the negative counts of the open buckets
    are put into ``state["neg"]`` by the caller before every ``advance``/``early``. The NB
    detector judges the negative count (learned baseline, floors, refractory); the bucket
    fires only if the negative share is also at least ``min_share`` and ``min_share_rise``
    above its learned baseline (a ratio of two EWMAs), and the total at least ``min_total``.
    A count spike without the share rise is undone in the NB state, so it does not start
    a refractory period that would mute a real surge later.
    """

    def __init__(self, params: SurgeRuleParams) -> None:
        self.p = params
        self.nb = SpikeDetector(params.detector)
        self._a = 1.0 - 0.5 ** (params.detector.bucket_seconds / params.share_half_life)

    @staticmethod
    def new() -> dict:
        return {"nb": None, "neg": {}, "sh": [0.0, 0.0]}

    def may_fire(self, value: float) -> bool:
        """The negative count is at most the total, so both floors bound the total."""
        return value >= max(self.p.min_total, self.nb.params.min_count)

    def step(self, state: dict | None, t: float, value: float) -> tuple[dict, SurgeSignal | None]:
        state = state or self.new()
        neg = float(state["neg"].get(repr(t), 0))
        prev = state["nb"]
        nb, sig = self.nb.step(prev, t, neg)
        n_w, d_w = state["sh"]
        base = n_w / d_w if d_w > 0 else 0.0
        share = neg / value if value > 0 else 0.0
        out: SurgeSignal | None = None
        if sig is not None:
            p = self.p
            if value >= p.min_total and share >= p.min_share and share - base >= p.min_share_rise:
                out = SurgeSignal(t=sig.t, value=sig.value, baseline=sig.baseline,
                                  score=sig.score, severity=sig.severity, total=value,
                                  share=share, base_share=base)
            else:  # as if the NB detector had not fired
                quiet = prev is not None and prev["until"] is not None and t < prev["until"]
                nb = dict(nb)
                nb["until"], nb["sev"] = (prev["until"], prev["sev"]) if quiet else (None, -1)
        if (prev is None or t > prev["t"]) and value > 0:
            n_w = (1.0 - self._a) * n_w + self._a * neg
            d_w = (1.0 - self._a) * d_w + self._a * value
        return {"nb": nb, "neg": state["neg"], "sh": [n_w, d_w]}, out


# --- question detection -----------------------------------------------------------------
def is_question(text: str, params: UnansweredRuleParams) -> bool:
    """A netizen question: ？/? or a question word (请问, 怎么, 为什么…), not a 回复@ thread."""
    t = text.strip()
    if len(t) < params.min_chars or t.startswith("回复@"):
        return False
    if params.question_marks and ("？" in t or "?" in t):
        return True
    return any(m in t for m in params.markers)


def _thin(items: list, width: float, at: Callable[[Any], float] = lambda x: x) -> None:
    """Drop, in place, each inner item whose neighbours are less than ``width`` apart.

    On a sorted list of times this keeps every answer to "is there a time in [t, t+width]"
    (for unanswered) and every gap of at least ``width`` between consecutive times (for
    stale_account), whatever order the times were added in: a dropped time sits in a gap
    shorter than ``width``, and later additions only shorten gaps. The ends always stay.
    """
    i = 1
    while i < len(items) - 1:
        if at(items[i + 1]) - at(items[i - 1]) < width:
            del items[i]
        else:
            i += 1


def _post_of(ev: Event) -> str:
    """The post an event is about: a comment's post, a repost's root, a post itself."""
    if ev.kind == "comment" and ev.post_id:
        return ev.post_id
    if ev.kind == "repost" and ev.root_id:
        return ev.root_id
    return ev.id


class RuleEngine:
    """Evaluates rules over owner state dicts; see the module docstring."""

    def __init__(self, rules: Sequence[Rule], registry: Registry) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.registry = registry
        self.event_rules = [r for r in self.rules if r.type in _EVENT_TYPES]
        self.lagging_rules = [r for r in self.rules if r.type == "linkage_lagging"]
        self.low_rules = [r for r in self.rules if r.type == "linkage_low"]
        self.health_rules = [r for r in self.rules if r.type == "collector_health"]
        self._counters: dict[str, VolumeCounter] = {}
        self._automata: dict[str, Any] = {}
        for r in self.rules:
            if r.type == "spike":
                p: Any = r.params
                self._counters[r.name] = VolumeCounter(p.bucket, SpikeDetector(p.detector))
            elif r.type == "negative_surge":
                self._counters[r.name] = VolumeCounter(r.params.bucket, SurgeDetector(r.params))
            elif r.type == "keyword":
                self._automata[r.name] = self._automaton(r.params)

    # --- helpers ------------------------------------------------------------------------
    @staticmethod
    def _automaton(p: KeywordRuleParams) -> Any:
        words: dict[str, list[tuple[str, str]]] = {}
        for kl in p.lists:
            for w in kl.words:
                key = w if p.case_sensitive else w.lower()
                words.setdefault(key, []).append((kl.name, w))
        a = ahocorasick.Automaton()
        for key, vals in words.items():
            a.add_word(key, vals)
        a.make_automaton()
        return a

    def _acc(self, platform: str, account_id: str | None) -> Account | None:
        return self.registry.get(platform, account_id)

    def _make(self, rule: Rule, *, key: str, discr: object, severity: str, at: str,
              platform: str, account_id: str | None, post_id: str | None, title: str,
              message: str, values: dict[str, float], samples: list[str]) -> Alert:
        acc = self._acc(platform, account_id)
        return Alert(
            id=alert_id(rule.name, key, f"{discr}|{severity}"),
            rule=rule.name, type=rule.type, severity=severity, timestamp=at,
            account_id=account_id, post_id=post_id, platform=platform,
            title=title, message=message, values=values, samples=samples,
            account_name=acc.name if acc else None,
            unit=acc.unit if acc else None, level=acc.level if acc else None,
        )

    def _who(self, platform: str, account_id: str | None) -> str:
        acc = self._acc(platform, account_id)
        name = name_of(acc, account_id)
        if acc is None:
            return name
        extra = "，".join(x for x in (acc.unit, LEVEL_ZH.get(acc.level or "")) if x)
        return f"{name}（{extra}）" if extra else name

    # --- events -------------------------------------------------------------------------
    def on_event(self, state: dict | None, event: Event) -> tuple[dict, list[Alert]]:
        """Fold one event of the owner into its state (updated in place and returned)."""
        st = state if state is not None else {"v": STATE_VERSION, "max_ts": None, "rules": {}}
        ts = event.ts
        if st["max_ts"] is None or ts > st["max_ts"]:
            st["max_ts"] = ts
        acc = self._acc(event.platform, event.owner_id)
        alerts: list[Alert] = []
        for rule in self.event_rules:
            rs = st["rules"].get(rule.name)
            if rule.type in ("spike", "negative_surge"):
                rs, out = self._volume(rule, rs, event, acc, st["max_ts"])
            elif rule.type == "keyword":
                out = self._keyword(rule, event, acc)
            elif rule.type == "stale_account":
                rs, out = self._stale_event(rule, rs, event, acc)
            else:
                rs, out = self._unanswered_event(rule, rs, event, acc, st["max_ts"])
            if rs is not None:
                st["rules"][rule.name] = rs
            alerts.extend(out)
        return st, alerts

    def fold(self, events: Iterable[Event], state_of: Callable[[str], dict | None]
             ) -> tuple[list[Alert], dict[str, dict], list[tuple[Event, Exception]]]:
        """:meth:`on_event` for a batch, in order, per owner key (``platform:owner``).

        Returns the alerts (``observed_at`` = the firing event's collection time), the
        new state of every key touched, and the events that raised with their exception.
        An event that raises is left out and the batch goes on: retried event by event,
        the events before it would be folded a second time into states already changed
        in place (their "fired" marks set, their alerts not yet sent).
        """
        alerts: list[Alert] = []
        states: dict[str, dict] = {}
        failed: list[tuple[Event, Exception]] = []
        for e in events:
            key = f"{e.platform}:{e.owner_id}"
            try:
                states[key], out = self.on_event(
                    states[key] if key in states else state_of(key), e)
            except Exception as exc:
                failed.append((e, exc))
                continue
            alerts += [a.derive(observed_at=e.collected_at) for a in out]
        return alerts, states, failed

    def activity_key(self, event: Event) -> str | None:
        """The author's key when a matrix account's post or repost is keyed to another
        owner (a county account reposting its superior's post lands on the superior's key).

        ``stale_account`` must count that repost as the author's update; the caller passes
        the author's state to :meth:`on_author_activity`. None when nothing needs it.
        """
        if (event.kind not in ("post", "repost") or event.account_id == event.owner_id
                or not any(r.type == "stale_account" for r in self.event_rules)
                or self.registry.get(event.platform, event.account_id) is None):
            return None
        return f"{event.platform}:{event.account_id}"

    def on_author_activity(self, state: dict | None, event: Event) -> tuple[dict, list[Alert]]:
        """Record a post/repost as its author's activity (stale_account only); see
        :meth:`activity_key`. Volume and the other rules are not touched."""
        st = state if state is not None else {"v": STATE_VERSION, "max_ts": None, "rules": {}}
        acc = self._acc(event.platform, event.account_id)
        alerts: list[Alert] = []
        for rule in self.event_rules:
            if rule.type == "stale_account":
                rs, out = self._stale_event(rule, st["rules"].get(rule.name), event, acc,
                                            owner=event.account_id)
                if rs is not None:
                    st["rules"][rule.name] = rs
                alerts += out
        return st, alerts

    # spike / negative_surge ---------------------------------------------------------------
    def _volume(self, rule: Rule, rs: dict | None, ev: Event, acc: Account | None,
                owner_max: float) -> tuple[dict | None, list[Alert]]:
        p: SpikeRuleParams = rule.params
        surge = rule.type == "negative_surge"
        flt = rule.filter
        match = (flt.matches_event(ev, acc) if not surge else
                 (not flt.kinds or ev.kind in flt.kinds)
                 and flt.matches_account(ev.platform, ev.owner_id, acc))
        if rs is None:
            if not match:
                return None, []
            rs = {}
        if p.per == "account":
            c = rs.get("c")
            if c is None:
                if not match:
                    return rs, []
                c = rs["c"] = self._new_counter_state(surge)
            return rs, self._feed(rule, c, ev, match, owner_max, None)
        if not match:
            return rs, []
        posts = rs.setdefault("posts", {})
        post = _post_of(ev)
        c = posts.get(post)
        if c is None:
            self._prune_posts(p, posts, owner_max)
            c = posts[post] = self._new_counter_state(surge)
        c["last"] = max(c.get("last", ev.ts), ev.ts)
        return rs, self._feed(rule, c, ev, True, owner_max, post)

    @staticmethod
    def _new_counter_state(surge: bool) -> dict:
        c = new_state()
        if surge:
            c["det"] = SurgeDetector.new()
        return c

    @staticmethod
    def _prune_posts(p: SpikeRuleParams, posts: dict, owner_max: float) -> None:
        """Drop posts quiet for post_ttl, then the least recently active beyond max_posts."""
        for k in [k for k, c in posts.items() if c.get("last", 0.0) < owner_max - p.post_ttl]:
            del posts[k]
        if len(posts) >= p.max_posts:
            order = sorted(posts, key=lambda k: (posts[k].get("last", 0.0), k))
            for k in order[: len(posts) - p.max_posts + 1]:
                del posts[k]

    def _feed(self, rule: Rule, c: dict, ev: Event, match: bool, owner_max: float,
              post: str | None) -> list[Alert]:
        p: SpikeRuleParams = rule.params
        counter = self._counters[rule.name]
        surge = rule.type == "negative_surge"
        wm = owner_max - p.lateness
        sigs: list[SpikeSignal] = []
        if c.get("wm") is None or wm > c["wm"]:
            c["wm"] = wm
            if not counter.idle(c, wm):
                if surge:
                    self._inject_neg(c)
                sigs += counter.advance(c, wm)
        if match:
            negative = ev.sentiment_label == "negative"
            if not counter.add(c, ev.doc_id, ev.ts, negative):
                return self._volume_alerts(rule, sigs, c, ev, post)
            if p.samples and (negative or not surge):
                recent = c.setdefault("recent", [])
                smp = sample(ev.text, ev.url or None, 50)
                if all(s != smp for _, s in recent):  # a duplicate event is one sample
                    recent.append([ev.ts, smp])
                    del recent[: -p.samples]
            if surge:
                self._inject_neg(c)
            sigs += counter.early(c)
        out = self._volume_alerts(rule, sigs, c, ev, post)
        self._prune_recent(c, counter.bucket)
        return out

    @staticmethod
    def _prune_recent(c: dict, bucket: float) -> None:
        """Forget samples of closed buckets once their alerts are built: an alert shows
        samples from the bucket it fires for, and a closed bucket never fires again.

        The state is written to the changelog whenever it changes, and these samples
        were 38 % of its bytes on the 10k-account load run (every quiet post kept its
        last three).
        """
        recent = c.get("recent")
        if not recent or c["last_closed"] is None:
            return
        floor = c["last_closed"] + bucket  # start of the earliest bucket still open
        if recent[0][0] < floor:
            c["recent"] = [r for r in recent if r[0] >= floor]

    @staticmethod
    def _inject_neg(c: dict) -> None:
        c["det"]["neg"] = {k: len(slot["neg"]) for k, slot in c["open"].items()}

    def _volume_alerts(self, rule: Rule, sigs: Iterable[SpikeSignal], c: dict, ev: Event,
                       post: str | None) -> list[Alert]:
        out = []
        p: SpikeRuleParams = rule.params
        for sig in sigs:
            acc_key = f"{ev.platform}:{ev.owner_id}"
            key = acc_key if post is None else f"{acc_key}/{post}"
            who = self._who(ev.platform, ev.owner_id)
            start = local_str(sig.t, seconds=False)
            minutes = p.bucket / 60
            values: dict[str, float] = {"value": sig.value, "baseline": _num(sig.baseline),
                                        "score": _num(sig.score), "bucket_start": sig.t,
                                        "bucket_seconds": p.bucket}
            where = f"微博 {post} " if post else ""
            if isinstance(sig, SurgeSignal):
                values.update(total=sig.total, share=_num(sig.share),
                              base_share=_num(sig.base_share))
                title = f"{name_of(self._acc(ev.platform, ev.owner_id), ev.owner_id)} " \
                        f"{where}负面舆情激增"
                message = (f"{who}{where}：{start} 起 {minutes:g} 分钟内负面 {sig.value:.0f} 条 / "
                           f"共 {sig.total:.0f} 条，负面占比 {sig.share:.0%}（基线 "
                           f"{sig.base_share:.0%}），负面条数基线 {_g(sig.baseline)}，"
                           f"统计量 {sig.score:.1f}")
            else:
                title = f"{name_of(self._acc(ev.platform, ev.owner_id), ev.owner_id)} " \
                        f"{where}{'互动' if post else '声量'}突增"
                message = (f"{who}{where}：{start} 起 {minutes:g} 分钟内 {sig.value:.0f} 条，"
                           f"基线 {_g(sig.baseline)}，统计量 {sig.score:.1f}（-log10 p）")
            samples = [s for t, s in c.get("recent", []) if t >= sig.t] or \
                [s for _, s in c.get("recent", [])]
            out.append(self._make(
                rule, key=key, discr=sig.t, severity=rule.severity or sig.severity,
                at=ev.created_at, platform=ev.platform, account_id=ev.owner_id,
                post_id=post, title=title, message=message, values=values,
                samples=samples[-p.samples:] if p.samples else [],
            ))
        return out

    # keyword ------------------------------------------------------------------------------
    def _keyword(self, rule: Rule, ev: Event, acc: Account | None) -> list[Alert]:
        if not rule.filter.matches_event(ev, acc):
            return []
        p: KeywordRuleParams = rule.params
        auto = self._automata[rule.name]
        hits: dict[str, set[str]] = {}
        for f in p.fields:
            text = getattr(ev, f, None) or ""
            if not p.case_sensitive:
                text = text.lower()
            for _, vals in auto.iter(text):
                for list_name, word in vals:
                    hits.setdefault(list_name, set()).add(word)
        n = sum(len(v) for v in hits.values())
        if n < p.min_hits:
            return []
        base = rule.base_severity()
        sev = base
        for kl in p.lists:
            if kl.name in hits and kl.severity and severity_rank(kl.severity) > severity_rank(sev):
                sev = kl.severity
        names = [kl.name for kl in p.lists if kl.name in hits]  # rule order, deterministic
        detail = "；".join(f"{nm}：{'、'.join(sorted(hits[nm]))}" for nm in names)
        values: dict[str, float] = {"hits": float(n)}
        values.update({f"list:{nm}": float(len(hits[nm])) for nm in names})
        who = self._who(ev.platform, ev.owner_id)
        kind = KIND_ZH.get(ev.kind, ev.kind)
        post = _post_of(ev)
        return [self._make(
            rule, key=f"{ev.platform}:{ev.owner_id}/{post}", discr=ev.doc_id, severity=sev,
            at=ev.created_at, platform=ev.platform, account_id=ev.owner_id, post_id=post,
            title=f"{name_of(acc, ev.owner_id)} {kind}命中关注词（{'、'.join(names)}）",
            message=f"{who}相关{kind}命中关注词 {detail}：「{snippet(ev.text, 80)}」",
            values=values, samples=[sample(ev.text, ev.url or None, 80)],
        )]

    # stale_account ------------------------------------------------------------------------
    # State: {"p": [[ts, iso, id], ...], "n": k, "fin": t | None, "g": [[a, iso, id, b, k]]}.
    # ``p`` holds the posts not yet final, in time order; p[0] is the anchor (the latest
    # post at or before ``fin``, the horizon the last sweep finalised) and ``n`` counts the
    # alerts already fired for the silence after it. Posts arrive out of time order, so a
    # post only records: a silence is decided in :meth:`sweep`, once the watermark has
    # passed its deadline and no earlier post can still arrive. A post older than ``fin``
    # is late and ignored (as the old ``ts <= last`` check did). ``g`` holds long silences
    # pushed out of ``p`` by the size cap (a long replay with no sweep), to fire at sweep.
    @staticmethod
    def _stale_state(rs: dict | None) -> dict:
        """The rule's state in the current layout; states written before posts were kept
        out of order ({"last", "iso", "id", "n"}) are migrated on read."""
        if rs is None:
            return {"p": [], "n": 0, "fin": None, "g": []}
        if "last" in rs:  # v1: only the latest post; posts before it were ignored
            return {"p": [[rs["last"], rs["iso"], rs["id"]]], "n": rs.get("n", 0),
                    "fin": rs["last"], "g": []}
        return rs

    def _stale_event(self, rule: Rule, rs: dict | None, ev: Event, acc: Account | None,
                     owner: str | None = None) -> tuple[dict | None, list[Alert]]:
        """Record a post of the account; never fires (see the state comment above).

        ``owner``: whose state this is (default the event's owner; the author for a
        post keyed to another owner, without rebuilding the event for it)."""
        owner = ev.owner_id if owner is None else owner
        kinds = rule.filter.kinds or ("post", "repost")
        if (ev.kind not in kinds or ev.account_id != owner
                or not rule.filter.matches_account(ev.platform, owner, acc)):
            return rs, []
        st = self._stale_state(rs)
        ts = ev.ts
        if st["fin"] is not None and ts < st["fin"]:
            return st, []  # late: the silence around it is already decided
        posts: list = st["p"]
        i = bisect.bisect_left([x[0] for x in posts], ts)
        if i < len(posts) and posts[i][0] == ts:
            if ev.id < posts[i][2]:  # same time, two ids: keep one, whatever the order
                posts[i] = [ts, ev.created_at, ev.id]
            return st, []
        posts.insert(i, [ts, ev.created_at, ev.id])
        _thin(posts, rule.params.after, lambda x: x[0])
        if len(posts) > STALE_MAX_POSTS:  # no sweep for ages: close the oldest silence
            a, b = posts.pop(0), posts[0]
            if b[0] - a[0] >= rule.params.after:
                st["g"].append([*a, b[0], st["n"]])
            st["n"], st["fin"] = 0, b[0]
        return st, []

    def _stale_sweep(self, rule: Rule, rs: dict, platform: str, account_id: str,
                     watermark: float) -> tuple[dict, list[Alert]]:
        """Fire the silences the watermark has decided, in time order, then keep only the
        posts after it (and the anchor)."""
        st = self._stale_state(rs)
        out: list[Alert] = []
        gaps: list[list] = []
        for a_ts, a_iso, a_id, b, n in st["g"]:
            more, n = self._stale_due(rule, platform, account_id, (a_ts, a_iso, a_id), n,
                                      min(b, watermark))
            out += more
            if b > watermark:
                gaps.append([a_ts, a_iso, a_id, b, n])
        st["g"] = gaps
        posts = st["p"]
        anchor = -1  # the latest post at or before the watermark
        for i, a in enumerate(posts):
            if a[0] > watermark:
                break
            upto = min(posts[i + 1][0], watermark) if i + 1 < len(posts) else watermark
            more, n = self._stale_due(rule, platform, account_id, (a[0], a[1], a[2]),
                                      st["n"] if i == 0 else 0, upto)
            out += more
            anchor, st["n"] = i, n  # the last one here is the new anchor
        if anchor > 0:
            del posts[:anchor]
        if st["fin"] is None or watermark > st["fin"]:
            st["fin"] = watermark
        return st, out

    def _stale_due(self, rule: Rule, platform: str, account_id: str,
                   last: tuple[float, str, str], n: int, upto: float
                   ) -> tuple[list[Alert], int]:
        """Alerts k = n, n+1, … for the silence after post ``last`` that fall at or before
        ``upto`` (the next post, or the watermark); returns them and the new count."""
        p: StaleRuleParams = rule.params
        last_ts, last_iso, last_id = last
        start = last_ts + p.after
        if start > upto:
            return [], n
        due = 1
        if p.remind_every > 0:
            due += min(p.max_reminders, math.floor((upto - start) / p.remind_every))
        acc = self._acc(platform, account_id)
        out = []
        for k in range(n, due):
            at = start + k * p.remind_every
            if acc is not None and not self.registry.active_at(acc, at):
                continue
            days = (at - last_ts) / 86400.0
            who = self._who(platform, account_id)
            out.append(self._make(
                rule, key=f"{platform}:{account_id}", discr=f"{last_ts}|{k}",
                severity=rule.base_severity(), at=iso_from_epoch(at, last_iso),
                platform=platform, account_id=account_id, post_id=None,
                title=f"{name_of(acc, account_id)} 已 {days:g} 天未更新",
                message=(f"{who}最近一次发布于 {local_str(last_ts, seconds=False)}"
                         f"（北京时间），已 {days:g} 天无更新（规则：{p.after / 86400:g} 天）。"
                         f"“监测时间点前2周内无更新”为单项否决指标。"),
                values={"days_since": _num(days, 3), "last_post": last_ts,
                        "threshold_days": _num(p.after / 86400.0, 3), "reminder": float(k)},
                samples=[last_id],
            ))
        return out, max(n, due)

    # unanswered ---------------------------------------------------------------------------
    # State: {"q": {qid: [ts, post, iso, text, asker]} pending questions, "done": {qid: ts}
    # answered or fired, "ans": {qid: ts} the earliest account reply pointing at a question
    # id, "said": {post: [ts, ...]} when the account commented on a post}. Comments arrive
    # out of time order (an answer may come before its question), so every account comment
    # is remembered for the window plus UNANSWERED_MARGIN (by the owner's latest event
    # time), and a question is judged against all of them. Only the sweep fires: a reply
    # after the deadline does not prove the question unanswered, an earlier one may follow.
    def _unanswered_event(self, rule: Rule, rs: dict | None, ev: Event, acc: Account | None,
                          owner_max: float) -> tuple[dict | None, list[Alert]]:
        if ev.kind != "comment" or not ev.post_id:
            return rs, []
        p: UnansweredRuleParams = rule.params
        if ev.account_id == ev.owner_id:  # the account speaks in its own comments
            if not rule.filter.matches_account(ev.platform, ev.owner_id, acc):
                return rs, []
            rs = self._unanswered_state(rs)
            ts = ev.ts
            if ev.reply_to_id and ts < rs["ans"].get(ev.reply_to_id, math.inf):
                rs["ans"][ev.reply_to_id] = ts
            said = rs["said"].setdefault(ev.post_id, [])
            if ts not in said:
                bisect.insort(said, ts)
                _thin(said, p.after)
            for qid in sorted(rs["q"], key=lambda k: (rs["q"][k][0], k)):
                if self._answered(rs, qid, rs["q"][qid], p):
                    rs["done"][qid] = rs["q"].pop(qid)[0]
            self._unanswered_prune(rs, p, owner_max)
            return rs, []
        if ev.reply_to_id or not rule.filter.matches_event(ev, acc) or not is_question(ev.text, p):
            return rs, []
        rs = self._unanswered_state(rs)
        if ev.id in rs["q"] or ev.id in rs["done"]:
            return rs, []
        # Kept small (it is changelogged): no URL, the post link is derived from post_id.
        q = [ev.ts, ev.post_id, ev.created_at, snippet(ev.text, 40),
             (ev.account_name or ev.account_id)[:30]]
        if self._answered(rs, ev.id, q, p):  # its answer came first
            rs["done"][ev.id] = ev.ts
        else:
            rs["q"][ev.id] = q
        if len(rs["q"]) > p.max_pending:
            oldest = min(rs["q"], key=lambda k: (rs["q"][k][0], k))
            del rs["q"][oldest]
        self._unanswered_prune(rs, p, owner_max)
        return rs, []

    @staticmethod
    def _unanswered_state(rs: dict | None) -> dict:
        """The rule's state; states from before answers were remembered get empty ones."""
        if rs is None:
            return {"q": {}, "done": {}, "ans": {}, "said": {}}
        rs.setdefault("ans", {})
        rs.setdefault("said", {})
        return rs

    @staticmethod
    def _answered(rs: dict, qid: str, q: list, p: UnansweredRuleParams) -> bool:
        """A reply to the question, or any account comment on its post after it, within
        the window."""
        t0, deadline = q[0], q[0] + p.after
        if rs["ans"].get(qid, math.inf) <= deadline:
            return True
        said = rs["said"].get(q[1], [])
        i = bisect.bisect_left(said, t0)
        return i < len(said) and said[i] <= deadline

    @staticmethod
    def _unanswered_prune(rs: dict, p: UnansweredRuleParams, owner_max: float) -> None:
        """Forget what only a question older than the window + margin could use."""
        horizon = owner_max - p.after - UNANSWERED_MARGIN
        rs["done"] = {k: t for k, t in rs["done"].items() if t >= horizon}
        ans = {k: t for k, t in rs["ans"].items() if t >= horizon}
        if len(ans) > 4 * p.max_pending:
            ans = dict(sorted(ans.items(), key=lambda x: (x[1], x[0]))[-4 * p.max_pending:])
        rs["ans"] = ans
        said: dict[str, list[float]] = {}
        for post, times in rs["said"].items():
            kept = [t for t in times if t >= horizon]
            if kept:
                said[post] = kept
        if len(said) > p.max_pending:
            said = dict(sorted(said.items(), key=lambda x: (x[1][-1], x[0]))[-p.max_pending:])
        rs["said"] = said

    def _unanswered_alert(self, rule: Rule, platform: str, owner: str, qid: str,
                          q: list) -> Alert:
        p: UnansweredRuleParams = rule.params
        ts, post, iso, text, asker = q
        hours = p.after / 3600.0
        acc = self._acc(platform, owner)
        return self._make(
            rule, key=f"{platform}:{owner}/{post}", discr=qid, severity=rule.base_severity(),
            at=iso_from_epoch(ts + p.after, iso), platform=platform, account_id=owner,
            post_id=post, title=f"{name_of(acc, owner)} 网民提问 {hours:g} 小时未回复",
            message=(f"{self._who(platform, owner)}的微博 {post} 下，网民“{asker}”于 "
                     f"{local_str(ts, seconds=False)}（北京时间）提问：「{text}」，"
                     f"{hours:g} 小时内账号未回复。"),
            values={"hours": _num(hours, 3), "asked_at": ts},
            samples=[text],
        )

    # --- time ---------------------------------------------------------------------------
    def sweep(self, key: str, state: dict | None, watermark: float
              ) -> tuple[dict | None, list[Alert]]:
        """Fire what the watermark proves (unanswered past deadline, stale accounts).

        Idempotent: what fired is recorded in the state. Alerts carry computed event times
        (question + N hours, last post + 14 days), not the sweep's. Only accounts that have
        posted at least once can be stale (an account never seen has no "last post" to
        count from). Watermarks at or past END_OF_INPUT_GUARD fire nothing.
        """
        if state is None or watermark >= END_OF_INPUT_GUARD:
            return state, []
        platform, _, owner = key.partition(":")
        out: list[Alert] = []
        for rule in self.event_rules:
            rs = state["rules"].get(rule.name)
            if rs is None:
                continue
            if rule.type == "stale_account":
                state["rules"][rule.name], more = self._stale_sweep(rule, rs, platform, owner,
                                                                    watermark)
                out += more
            elif rule.type == "unanswered":
                p: UnansweredRuleParams = rule.params
                for qid in sorted(rs["q"], key=lambda k: (rs["q"][k][0], k)):
                    q = rs["q"][qid]
                    if q[0] + p.after <= watermark:
                        out.append(self._unanswered_alert(rule, platform, owner, qid, q))
                        del rs["q"][qid]
                        rs["done"][qid] = q[0]
        return state, out

    # --- linkage ------------------------------------------------------------------------
    def _laggards(self, platform: str, ids: Sequence[str], limit: int) -> str:
        names = []
        for a in ids[:limit]:
            acc = self._acc(platform, a)
            if acc is None:
                names.append(a)
            else:
                names.append(f"{acc.name}（{acc.unit}）" if acc.unit else acc.name)
        more = f" 等 {len(ids)} 个" if len(ids) > limit else ""
        return "、".join(names) + more if names else "无"

    def on_linkage_progress(self, task: dict, watermark: float) -> list[Alert]:
        """linkage_lagging at each passed checkpoint not yet evaluated (recorded in
        ``task["checkpoints_fired"]``; the caller stores the task)."""
        if not self.lagging_rules or not task.get("expected"):
            return []
        fired: list[str] = task.setdefault("checkpoints_fired", [])
        platform, owner = task["platform"], task["account_id"]
        acc = self._acc(platform, owner)
        span = task["deadline"] - task["t0"]
        out = []
        for rule in self.lagging_rules:
            if not rule.filter.matches_account(platform, owner, acc):
                continue
            p: LaggingRuleParams = rule.params
            for f in p.checkpoints:
                tag = f"{rule.name}@{f:g}"
                at = task["t0"] + f * span
                if tag in fired or at >= watermark:
                    continue
                fired.append(tag)
                expected = task["expected"]
                on_time = [a for a in expected if task["linked"].get(a, math.inf) <= f * span]
                rate = len(on_time) / len(expected)
                if rate >= p.threshold:
                    continue
                lag = [a for a in expected if a not in on_time]
                hours = f * span / 3600.0
                out.append(self._make(
                    rule, key=f"{platform}:{task['post_id']}", discr=f"{f:g}",
                    severity=rule.base_severity(), at=iso_from_epoch(at, task["created_at"]),
                    platform=platform, account_id=owner, post_id=task["post_id"],
                    title=f"{name_of(acc, owner)} 微博联动进度滞后（{hours:g} 小时 {rate:.0%}）",
                    message=(f"{self._who(platform, owner)}于 "
                             f"{local_str(task['t0'], seconds=False)}（北京时间）发布的微博 "
                             f"{task['post_id']}，发布后 {hours:g} 小时（时限的 {f:.0%}）"
                             f"转发 {len(on_time)}/{len(expected)}（{rate:.0%}，"
                             f"要求 {p.threshold:.0%}），尚未转发："
                             f"{self._laggards(platform, lag, p.max_listed)}"),
                    values={"checkpoint": f, "rate": round(rate, 6), "linked": float(len(on_time)),
                            "expected": float(len(expected)), "threshold": p.threshold},
                    samples=lag,
                ))
        return out

    def on_linkage_closed(self, result: LinkageResult) -> list[Alert]:
        """linkage_low: the final rate of a closed task below the threshold."""
        out = []
        platform, owner = result.platform, result.account_id
        acc = self._acc(platform, owner)
        for rule in self.low_rules:
            p: LowRuleParams = rule.params
            if result.rate >= p.threshold or not result.expected:
                continue
            if not rule.filter.matches_account(platform, owner, acc):
                continue
            sev = rule.base_severity()
            if p.escalate_below is not None and result.rate < p.escalate_below:
                sev = _bump(sev)
            lag = [a for a in result.expected if a not in result.linked]
            out.append(self._make(
                rule, key=f"{platform}:{result.post_id}", discr=result.deadline, severity=sev,
                at=result.deadline, platform=platform, account_id=owner,
                post_id=result.post_id,
                title=f"{name_of(acc, owner)} 转发联动率偏低（{result.rate:.0%}）",
                message=(f"{self._who(platform, owner)}的微博 {result.post_id} 截止 "
                         f"{local_str(result.deadline, seconds=False)}（北京时间）联动率 "
                         f"{result.rate:.0%}（{len(result.linked)}/{len(result.expected)}，"
                         f"要求 {p.threshold:.0%}），未转发："
                         f"{self._laggards(platform, lag, p.max_listed)}"),
                values={"rate": result.rate, "linked": float(len(result.linked)),
                        "expected": float(len(result.expected)), "threshold": p.threshold},
                samples=lag,
            ))
        return out

    # --- collector health ---------------------------------------------------------------
    def on_health(self, health: CollectorHealth) -> list[Alert]:
        """collector_health alerts for one report; ValueError if the report is malformed."""
        check_health(health)
        out = []
        for rule in self.health_rules:
            p: HealthRuleParams = rule.params
            if health.status not in p.statuses:
                continue
            if health.status == "failing" and health.consecutive_failures < p.min_failures:
                continue
            f = rule.filter
            if f.platforms and health.platform not in f.platforms:
                continue
            if f.accounts and health.account_id not in f.accounts:
                continue
            sev = rule.base_severity()
            if health.consecutive_failures >= p.escalate_failures:
                sev = _bump(sev)
            err = redact_urls(snippet(health.last_error or "", 200))
            what = ("登录凭据失效（cookie/token 需更新）" if health.status == "auth_expired"
                    else f"连续失败 {health.consecutive_failures} 次")
            target = f"，账号 {self._who(health.platform, health.account_id)}" \
                if health.account_id else ""
            out.append(self._make(
                rule, key=f"{health.platform}:{health.source}",
                discr=f"{health.status}|{health.at}", severity=sev, at=health.at,
                platform=health.platform, account_id=health.account_id, post_id=None,
                title=f"采集器 {health.source} 异常：{what}",
                message=(f"采集器 {health.source}{target}：{what}，"
                         f"{local_str(epoch(health.at))}（北京时间）"
                         + (f"。最近错误：{err}" if err else "")),
                values={"consecutive_failures": float(health.consecutive_failures)},
                samples=[health.source],
            ))
        return out
