"""Event.trusted builds the same record as Event(...); Event.ts follows created_at."""

from __future__ import annotations

from typing import Any

import pytest

from matrixwatch.streams.records import Event

BASE: dict[str, Any] = dict(
    platform="weibo", id="1", kind="repost", account_id="2", owner_id="3", text="转发",
    created_at="2026-11-21T10:00:00+08:00", collected_at="2026-11-21T10:00:05+08:00",
    root_id="9", chain=["甲", "乙"], reposts_count=4)


def test_trusted_equals_the_faust_constructor() -> None:
    a, b = Event(**BASE), Event.trusted(**BASE)
    assert a == b and b == a
    assert a.dumps() == b.dumps() and a.asdict() == b.asdict()
    assert list(a.__dict__) == list(b.__dict__)  # same fields, same order
    assert b.derive(id="5") == a.derive(id="5")


@pytest.mark.parametrize("change", [{"bogus": 1}, {"id": None}])
def test_trusted_refuses_unknown_and_missing_fields(change: dict[str, Any]) -> None:
    fields = {**BASE, **change}
    if change.get("id", "") is None:
        del fields["id"]
    with pytest.raises(TypeError):
        Event.trusted(**fields)
    with pytest.raises(TypeError):
        Event(**fields)


def test_ts_is_cached_but_follows_a_new_created_at() -> None:
    e = Event.trusted(**BASE)
    assert e.ts == 1795226400.0
    e.created_at = "2026-11-21T11:00:00+08:00"
    assert e.ts == 1795230000.0
    fresh = Event(**{**BASE, "created_at": e.created_at})
    assert e.asdict() == fresh.asdict() and e.dumps() == fresh.dumps()
    assert repr(e) == repr(fresh)  # the cache is not a field, nor shown as one
