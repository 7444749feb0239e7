"""One pass over stored events → everything the index and the checks need, per account.

Why one pass: a month of a 500-account matrix is ~700k events, most of them netizen
comments. Parsing them once and folding them into small per-account aggregates keeps
the monthly report well under a minute and its memory at the aggregates' size, whatever
the period. The fold is order-independent and keyed by event id, so duplicated events
(at-least-once delivery, overlapping reads) never count twice.

Inputs are stored event dicts (``Event.asdict()``). Windows: the period ``[lo, hi)``;
publication times are kept for any time (the checks look back before the period); the
year-ago period feeds 成长指数; account replies are kept up to ``reply_until`` so a
question asked late in the period can still be answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from matrixwatch.alerts.engine import is_question
from matrixwatch.alerts.rules import UnansweredRuleParams
from matrixwatch.registry import Registry
from matrixwatch.reports.content import ContentClassifier, own_text
from matrixwatch.reports.errata import ErrataChecker, Hit
from matrixwatch.reports.period import Period
from matrixwatch.streams.records import epoch

Key = tuple[str, str]
Counts = tuple[int | None, int | None, int | None]  # reposts, comments, attitudes


@dataclass
class AccountData:
    """What one registry account did (and had done to it), folded from events."""

    publish: dict[str, tuple[float, bool]] = field(default_factory=dict)  # id → (ts, original)
    originals: dict[str, Counts] = field(default_factory=dict)  # in the period
    reposts: dict[str, str | None] = field(default_factory=dict)  # id → root author, period
    originals_prev: dict[str, Counts] = field(default_factory=dict)  # year-ago period
    published_prev: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)  # published id → content class
    errata: dict[str, tuple[str, str, tuple[Hit, ...]]] = field(default_factory=dict)
    first_followers: tuple[float, str, int] | None = None
    last_followers: tuple[float, str, int] | None = None
    fans: set[str] = field(default_factory=set)  # distinct users who reposted/commented
    questions: dict[str, tuple[float, str, str]] = field(default_factory=dict)  # id→(ts,post,text)
    replies: dict[str, tuple[float, str, str | None, str]] = field(default_factory=dict)


@dataclass
class Collected:
    period: Period
    prev: Period
    data: dict[Key, AccountData]
    obs_reposts: dict[Key, set[str]]  # (platform, root post id) → repost ids by others
    obs_comments: dict[Key, set[str]]  # (platform, post id) → comment ids by others
    linkage_events: list[dict[str, Any]]  # events by registry accounts in the period

    def account(self, key: Key) -> AccountData:
        return self.data.get(key) or AccountData()


_SLIM = ("id", "platform", "kind", "account_id", "owner_id", "root_account_id", "created_at")


def collect(
    registry: Registry,
    events: Iterable[Mapping[str, Any]],
    period: Period,
    *,
    classifier: ContentClassifier,
    errata: ErrataChecker,
    reply_hours: float = 24.0,
    question: UnansweredRuleParams | None = None,
) -> Collected:
    """Fold ``events`` (any order, duplicates allowed) into per-account aggregates."""
    q_params = question or UnansweredRuleParams()
    lo, hi = period.lo, period.hi
    prev = period.year_ago()
    plo, phi = prev.lo, prev.hi
    reply_until = hi + reply_hours * 3600.0
    data: dict[Key, AccountData] = {}
    obs_reposts: dict[Key, set[str]] = {}
    obs_comments: dict[Key, set[str]] = {}
    linkage: dict[Key, dict[str, Any]] = {}
    accounts = registry.accounts

    def acct(key: Key) -> AccountData:
        d = data.get(key)
        if d is None:
            d = data[key] = AccountData()
        return d

    for e in events:
        platform, eid, kind, author = e["platform"], str(e["id"]), e["kind"], e["account_id"]
        ts = epoch(e["created_at"])
        akey = (platform, author)
        is_acc = akey in accounts
        in_p = lo <= ts < hi
        if is_acc and in_p:
            linkage[(platform, eid)] = {k: e.get(k) for k in _SLIM}
        if kind == "comment":
            okey = (platform, e.get("owner_id") or "")
            if okey not in accounts:
                continue
            if author == okey[1]:  # the account speaks under its own post: a reply
                if lo <= ts < reply_until:
                    acct(okey).replies[eid] = (ts, e.get("post_id") or "", e.get("reply_to_id"),
                                               e.get("text") or "")
                continue
            if e.get("post_id"):
                obs_comments.setdefault((platform, e["post_id"]), set()).add(eid)
            if in_p:
                d = acct(okey)
                d.fans.add(author)
                text = e.get("text") or ""
                if not e.get("reply_to_id") and e.get("post_id") and is_question(text, q_params):
                    d.questions[eid] = (ts, e["post_id"], text)
            continue
        # post or repost
        if kind == "repost":
            root_author = e.get("root_account_id")
            rkey = (platform, root_author or e.get("owner_id") or "")
            if rkey[1] != author and rkey in accounts:
                if e.get("root_id"):
                    obs_reposts.setdefault((platform, e["root_id"]), set()).add(eid)
                if in_p:
                    acct(rkey).fans.add(author)
        if not is_acc:
            continue
        d = acct(akey)
        d.publish[eid] = (ts, kind == "post")
        fc = e.get("followers_count")
        if in_p and fc is not None:
            snap = (ts, eid, int(fc))
            if d.first_followers is None or snap[:2] < d.first_followers[:2]:
                d.first_followers = snap
            if d.last_followers is None or snap[:2] > d.last_followers[:2]:
                d.last_followers = snap
        counts: Counts = (e.get("reposts_count"), e.get("comments_count"),
                          e.get("attitudes_count"))
        if in_p:
            if kind == "post":
                d.originals[eid] = counts
            else:
                d.reposts[eid] = e.get("root_account_id")
            d.labels[eid] = classifier.classify_event(e)
            own = e.get("text") or ""
            if kind == "repost":
                own = own_text(own)
            hits = errata.scan(own)
            if hits:
                d.errata[eid] = (e["created_at"], kind, hits)
        elif plo <= ts < phi:
            d.published_prev.add(eid)
            if kind == "post":
                d.originals_prev[eid] = counts
    return Collected(period, prev, data, obs_reposts, obs_comments, list(linkage.values()))


def received(c: Collected, platform: str, originals: Mapping[str, Counts]
             ) -> tuple[int, int, int | None]:
    """Reposts, comments and likes received by these originals.

    Per post, the larger of the platform's counter (as last collected) and the distinct
    reposts/comments seen in the store: counters include what was never collected, the
    store catches what the counter has not caught up with. Likes only exist as counters:
    None when no post carries one (a platform without likes).
    """
    reposts = comments = 0
    likes: int | None = None
    for pid, (rc, cc, ac) in originals.items():
        reposts += max(rc or 0, len(c.obs_reposts.get((platform, pid), ())))
        comments += max(cc or 0, len(c.obs_comments.get((platform, pid), ())))
        if ac is not None:
            likes = (likes or 0) + ac
    return reposts, comments, likes
