"""Records that travel on Kafka and the registry they are interpreted against.

They are plain `faust.Record` data classes: no app, no I/O. The pure analysis
modules take and return them, so the same objects run in unit tests, offline
commands and the stream.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import faust

Kind = Literal["post", "repost", "comment"]
KINDS: tuple[str, ...] = ("post", "repost", "comment")
LEVELS: tuple[str, ...] = ("national", "province", "city", "county", "township", "department")


@lru_cache(maxsize=65536)
def parse_iso(ts: str) -> datetime:
    """ISO-8601 with offset → aware datetime (cached: the same timestamps recur a lot)."""
    dt = datetime.fromisoformat(ts)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {ts!r}")
    return dt


def epoch(ts: str) -> float:
    """Event time as epoch seconds, the unit every window and deadline uses."""
    return parse_iso(ts).timestamp()


class Event(faust.Record, serializer="json", include_metadata=False):
    """A normalized event (DESIGN.md, "Normalized event").

    ``owner_id`` is the account the event is about: the author of a post, the author of
    the commented post for a comment, the root's author for a repost. Spikes and routing
    key on it. ``root_*`` fields are copied from the embedded root so that linkage can open
    a task from a repost seen before its original.
    """

    platform: str
    id: str
    kind: str
    account_id: str
    owner_id: str
    text: str
    created_at: str
    collected_at: str
    root_id: str | None = None
    parent_id: str | None = None
    post_id: str | None = None
    account_name: str | None = None
    root_account_id: str | None = None
    root_created_at: str | None = None
    root_text: str | None = None
    chain: list[str] | None = None
    reposts_count: int | None = None
    comments_count: int | None = None
    attitudes_count: int | None = None
    followers_count: int | None = None
    url: str | None = None
    reply_to_id: str | None = None
    sentiment: float | None = None
    sentiment_label: str | None = None
    # The matrix account the event is about (owner), from the registry, for filters
    # and dashboards; None when the owner is not in the registry.
    owner_name: str | None = None
    owner_unit: str | None = None
    owner_level: str | None = None
    owner_parent: str | None = None

    @property
    def doc_id(self) -> str:
        """Deterministic id used by every sink: platform + native id."""
        return f"{self.platform}:{self.id}"

    @property
    def ts(self) -> float:
        """``created_at`` as epoch seconds, cached against the string it came from (read
        about seven times per event on the hot path)."""
        cached = self.__dict__.get("__ts__")  # dunder: Faust's repr skips it
        created = self.created_at
        if cached is None or cached[0] is not created:
            cached = self.__dict__["__ts__"] = (created, epoch(created))
        return cached[1]

    @classmethod
    def trusted(cls, **fields: Any) -> Event:
        """``Event(**fields)`` without Faust's per-field descriptors, for the hot paths
        (normalizing, unpacking): the generated ``__init__`` was a quarter of the
        normalizer's time. The result is the same object, since Event has no coercion,
        validation or ``__post_init__`` (asserted below); unknown or missing fields
        still raise TypeError."""
        extra = fields.keys() - _EVENT_FIELDS
        if extra:
            raise TypeError(f"unexpected Event fields: {sorted(extra)}")
        missing = _EVENT_REQUIRED - fields.keys()
        if missing:
            raise TypeError(f"missing Event fields: {sorted(missing)}")
        event = object.__new__(cls)
        data = event.__dict__
        data["__evaluated_fields__"] = set()
        data.update(_EVENT_DEFAULTS)  # every field, in declaration order, as Faust sets them
        data.update(fields)
        return event


_OPTIONS = Event._options
assert not (_OPTIONS.coerce or _OPTIONS.validation or _OPTIONS.has_tagged_fields
            or hasattr(Event, "__post_init__")), "Event.trusted would skip Faust's work"
_EVENT_FIELDS = frozenset(_OPTIONS.fields)
_EVENT_REQUIRED = _EVENT_FIELDS - frozenset(_OPTIONS.optionalset)
_EVENT_DEFAULTS = {f: _OPTIONS.defaults.get(f) for f in _OPTIONS.fields}


class DeadLetter(faust.Record, serializer="json", include_metadata=False):
    """An input that could not be normalized, with the reason. Never dropped silently."""

    reason: str
    source: str
    payload: str
    received_at: str
    offset: int | None = None


class Account(faust.Record, serializer="json", include_metadata=False):
    """One row of matrix.yaml (DESIGN.md, "Account registry")."""

    id: str
    platform: str
    name: str
    unit: str | None = None
    level: str | None = None
    parent: str | None = None
    active: bool = True
    synthetic: bool = False

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.id}"

    @property
    def key_tuple(self) -> tuple[str, str]:
        return (self.platform, self.id)


class Alert(faust.Record, serializer="json", include_metadata=False):
    """An alert as stored and notified. ``timestamp`` is the event time it fired at."""

    id: str
    rule: str
    type: str
    severity: str
    timestamp: str
    account_id: str | None = None
    post_id: str | None = None
    platform: str = "weibo"
    title: str = ""
    message: str = ""
    values: dict[str, float] | None = None
    samples: list[str] | None = None
    account_name: str | None = None
    unit: str | None = None
    level: str | None = None
    # collected_at of the event that fired it (event-driven rules only): where the
    # event-to-alert and event-to-notification latencies are measured from.
    observed_at: str | None = None


class LinkageResult(faust.Record, serializer="json", include_metadata=False):
    """A closed linkage task, as written to linkage.jsonl."""

    post_id: str
    account_id: str
    platform: str
    created_at: str
    deadline: str
    expected: list[str]
    linked: dict[str, float]
    rate: float
    closed_at: str


class CollectorHealth(faust.Record, serializer="json", include_metadata=False):
    """A collector's view of itself, sent to mw-health; the collector_health rule reads it.

    ``status`` is "ok", "failing" (``consecutive_failures`` in a row) or "auth_expired"
    (cookie or token no longer accepted).
    """

    source: str
    status: str
    at: str
    consecutive_failures: int = 0
    last_error: str | None = None
    account_id: str | None = None
    platform: str = "weibo"
