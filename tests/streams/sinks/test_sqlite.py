"""SQLite store: upserts keyed by deterministic ids, so redelivery never double-counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from matrixwatch.streams.records import Alert, DeadLetter, Event, LinkageResult
from matrixwatch.streams.sinks.sqlite import SQLiteStore


def ev(i: int, minute: int) -> Event:
    t = f"2026-11-02T09:{minute:02d}:00+08:00"
    return Event(platform="weibo", id=str(i), kind="post", account_id="1", owner_id="1",
                 text="t", created_at=t, collected_at=t, sentiment=0.1,
                 sentiment_label="negative")


def test_redelivered_writes_do_not_duplicate(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    alert = Alert(id="x", rule="r", type="spike", severity="red",
                  timestamp="2026-11-02T09:00:00+08:00", account_id="1")
    res = LinkageResult(post_id="1", account_id="1", platform="weibo",
                        created_at="2026-11-02T09:00:00+08:00",
                        deadline="2026-11-03T09:00:00+08:00", expected=["2"],
                        linked={"2": 60.0}, rate=1.0, closed_at="2026-11-03T09:00:00+08:00")
    dl = DeadLetter(reason="json: bad", source="mw-raw/0", payload="{", received_at="x",
                    offset=3)

    async def go() -> None:
        await store.open()
        for _ in range(3):
            await store.write_events([ev(2, 5), ev(1, 9)])
            await store.write_alerts([alert])
            await store.write_linkage([res])
            await store.write_dead_letters([dl])

    asyncio.run(go())
    assert store.counts() == {"events": 2, "alerts": 1, "linkage": 1, "dead_letters": 1}
    assert [e["id"] for e in store.iter_events()] == ["2", "1"]  # event-time order
    assert next(store.iter_linkage())["linked"] == {"2": 60.0}
    store.close_sync()
