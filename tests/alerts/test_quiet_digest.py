"""Quiet hours: held alerts queue in their key's state; a digest per channel at window end."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from matrixwatch.alerts.dispatch import Dispatcher, HeldIndex, quiet_window
from matrixwatch.alerts.notifiers.render import QUIET_DIGEST, digest_counts
from matrixwatch.alerts.rules import QuietHours
from matrixwatch.alerts.text import SHANGHAI
from matrixwatch.streams.records import Alert
from tests.alerts.helpers import A2, rule
from tests.alerts.test_dispatch import CHANNELS, CST, RULE, alert

NIGHT = datetime(2026, 11, 2, 23, 30, tzinfo=CST)
END = datetime(2026, 11, 3, 7, 0, tzinfo=CST).timestamp()  # the window 23:00-07:00 ends


def run(d: Dispatcher, alerts: list[Alert], states: dict | None = None,
        roundtrip: bool = False) -> dict:
    """Decide in order; ``roundtrip`` passes every state through JSON like the table."""
    states = {} if states is None else states
    for a in alerts:
        k = Dispatcher.key(a)
        states[k], _ = d.decide(states.get(k), a)
        if roundtrip:
            states = json.loads(json.dumps(states))
    return states


def night_alerts() -> list[Alert]:
    return [alert(NIGHT, post="p1"),
            alert(NIGHT + timedelta(hours=2), post="p2", values={"hits": 3.0}),
            alert(NIGHT + timedelta(hours=3), "blue", post="p1"),
            alert(NIGHT + timedelta(hours=4), post="p3", level="city")]


def test_quiet_window_bounds() -> None:
    wrap = QuietHours(start=23 * 60, end=7 * 60)
    at = datetime(2026, 11, 3, 3, 0, tzinfo=SHANGHAI)
    assert quiet_window(wrap, at) == (datetime(2026, 11, 2, 23, 0, tzinfo=SHANGHAI),
                                      datetime(2026, 11, 3, 7, 0, tzinfo=SHANGHAI))
    at = datetime(2026, 11, 2, 23, 59, 59, tzinfo=SHANGHAI)
    assert quiet_window(wrap, at)[1] == datetime(2026, 11, 3, 7, 0, tzinfo=SHANGHAI)
    day = QuietHours(start=12 * 60, end=14 * 60)
    at = datetime(2026, 11, 3, 13, 59, tzinfo=SHANGHAI)
    assert quiet_window(day, at) == (datetime(2026, 11, 3, 12, 0, tzinfo=SHANGHAI),
                                     datetime(2026, 11, 3, 14, 0, tzinfo=SHANGHAI))
    allday = QuietHours(start=0, end=0)
    at = datetime(2026, 11, 3, 9, 0, tzinfo=SHANGHAI)
    assert quiet_window(allday, at) == (datetime(2026, 11, 3, 0, 0, tzinfo=SHANGHAI),
                                        datetime(2026, 11, 4, 0, 0, tzinfo=SHANGHAI))


def test_held_alerts_accumulate_in_their_key_state() -> None:
    d = Dispatcher([RULE], CHANNELS)
    states = run(d, night_alerts())
    p1 = states[f"kw|weibo|{A2}|p1"]
    assert [e["a"]["severity"] for e in p1["queue"]] == ["yellow", "blue"]
    assert all(e["end"] == END for e in p1["queue"])
    assert p1["queue"][0]["start"] == datetime(2026, 11, 2, 23, 0, tzinfo=CST).timestamp()
    assert p1["queue"][0]["ch"] == ["county_bot"]
    assert states[f"kw|weibo|{A2}|p3"]["queue"][0]["ch"] == ["city_bot"]
    assert "message" not in p1["queue"][0]["a"]
    # Sent (not held) alerts queue nothing; nor does a day-time alert.
    day = run(d, [alert(NIGHT.replace(hour=12), post="p9"),
                  alert(NIGHT, "orange", post="p8")])
    assert all("queue" not in st for st in day.values())


def test_no_digest_before_the_window_ends() -> None:
    d = Dispatcher([RULE], CHANNELS)
    states = run(d, night_alerts())
    changes, digests = d.flush(states.items(), END - 1)
    assert changes == {} and digests == []


def test_digest_when_the_window_ends_one_per_channel() -> None:
    d = Dispatcher([RULE], CHANNELS)
    states = run(d, night_alerts())
    changes, digests = d.flush(states.items(), END)
    assert [g.channel for g in digests] == ["city_bot", "county_bot"]
    city, county = digests
    assert len(county.held) == 3 and len(city.held) == 1
    a = county.alert
    assert a.type == QUIET_DIGEST and a.severity == "yellow"
    assert datetime.fromisoformat(a.timestamp).timestamp() == END
    assert a.values is not None and a.values["total"] == 3.0
    assert digest_counts(a) == [("kw", "keyword", "yellow", 2), ("kw", "keyword", "blue", 1)]
    assert len(a.samples or []) == 3
    assert (a.samples or [])[0].startswith("黄色 · 甲市西区发布 评论命中关注词")
    # The queues are emptied and nothing else in the state changes.
    for k, st in changes.items():
        assert "queue" not in st
        assert {x: v for x, v in states[k].items() if x != "queue"} == st
    states.update(changes)
    assert d.flush(states.items(), END + 86400) == ({}, [])


def test_digest_lists_the_top_alerts_and_counts_the_rest() -> None:
    d = Dispatcher([RULE], CHANNELS)
    night = [alert(NIGHT + timedelta(minutes=5 * i), "blue" if i % 2 else "yellow",
                   post=f"p{i}") for i in range(12)]
    states = run(d, night)
    [digest] = d.flush(states.items(), END)[1]
    assert digest.alert.values is not None and digest.alert.values["total"] == 12.0
    assert len(digest.alert.samples or []) == 5
    assert all(s.startswith("黄色") for s in digest.alert.samples or [])


def test_a_rule_routed_to_two_channels_is_in_both_digests() -> None:
    r = rule("type: keyword\nparams: {lists: [{name: a, words: [b]}]}\nrealert: 30m\n"
             "quiet_hours: {start: '23:00', end: '07:00', min_severity: orange}\n"
             "routing:\n  - {channels: [county_bot, safety_bot]}\n", name="kw")
    d = Dispatcher([r], CHANNELS)
    states = run(d, night_alerts()[:2])
    digests = d.flush(states.items(), END)[1]
    assert [g.channel for g in digests] == ["county_bot", "safety_bot"]
    assert digests[0].held == digests[1].held and digests[0].alert.id != digests[1].alert.id


def test_unrouted_held_alerts_are_not_queued() -> None:
    r = rule("type: keyword\nparams: {lists: [{name: a, words: [b]}]}\n"
             "quiet_hours: {start: '23:00', end: '07:00', min_severity: orange}\n"
             "routing:\n  - {channels: [off_bot]}\n", name="kw")
    states = run(Dispatcher([r], CHANNELS), [alert(NIGHT)])
    assert "queue" not in next(iter(states.values()))


def test_a_late_held_alert_comes_in_a_digest_of_its_own() -> None:
    d = Dispatcher([RULE], CHANNELS)
    states = run(d, night_alerts()[:2])
    changes, first = d.flush(states.items(), END + 60)
    states.update(changes)
    late = alert(NIGHT + timedelta(hours=7, minutes=20), post="p5")  # 06:50, seen after 07:01
    states = run(d, [late], states)
    changes, second = d.flush(states.items(), END + 120)
    assert [g.held for g in second] == [[late.id]]
    assert second[0].alert.id != first[0].alert.id


def test_state_round_trips_through_json_and_a_restart() -> None:
    seq = night_alerts() + [alert(NIGHT + timedelta(hours=1, minutes=i), post="p1")
                            for i in range(0, 60, 7)]
    d = Dispatcher([RULE], CHANNELS)
    plain = run(d, seq)
    stored = run(d, seq, roundtrip=True)
    assert stored == json.loads(json.dumps(plain))
    # A new worker: a new dispatcher, its index rebuilt from the table it recovered.
    d2 = Dispatcher([RULE], CHANNELS)
    idx = HeldIndex()
    idx.advance(END - 1)
    assert idx.keys_due(lambda: stored.items()) == []
    idx.advance(END)
    keys = idx.keys_due(lambda: stored.items())
    assert keys == sorted(k for k, st in stored.items() if st.get("queue"))
    changes, digests = d2.flush([(k, stored[k]) for k in keys], idx.clock)
    assert digests == d.flush(plain.items(), END)[1]
    # Idempotent across a crash between sending and saving: same digest, same id.
    assert d2.flush([(k, stored[k]) for k in keys], idx.clock)[1] == digests
    idx.note(changes.items())
    assert idx.keys_due(lambda: stored.items()) == []


def test_index_overlay_and_clock() -> None:
    idx = HeldIndex()
    idx.advance(10.0)
    idx.advance(5.0)
    assert idx.clock == 10.0
    table = {"a": {"queue": [{"end": 8.0}]}, "b": {"queue": [{"end": 20.0}]}, "c": {}}
    assert idx.keys_due(lambda: table.items()) == ["a"]
    assert idx.keys_due(lambda: table.items(), {"b": {"queue": [{"end": 9.0}]}}) == ["a", "b"]
    idx.stale = True
    assert idx.keys_due(lambda: {}.items()) == []


def test_state_with_held_alerts_does_not_expire() -> None:
    d = Dispatcher([RULE], CHANNELS)
    st = run(d, [alert(NIGHT)])[f"kw|weibo|{A2}|p1"]
    assert not d.expired(st, NIGHT.timestamp() + 10 * 86400)
    assert d.expired({k: v for k, v in st.items() if k != "queue"},
                     NIGHT.timestamp() + 10 * 86400)


def test_held_queue_is_bounded_but_counts_everything(monkeypatch) -> None:
    import matrixwatch.alerts.dispatch as dispatch

    monkeypatch.setattr(dispatch, "MAX_HELD", 3)
    r = rule("type: keyword\nparams: {lists: [{name: a, words: [b]}]}\nrealert: 0\n"
             "quiet_hours: {start: '23:00', end: '07:00', min_severity: orange}\n", name="kw")
    d = Dispatcher([r], CHANNELS)
    seq = [alert(NIGHT + timedelta(minutes=i), "blue" if i >= 4 else "yellow")
           for i in range(6)]
    states = run(d, seq)
    [st] = states.values()
    assert len(st["queue"]) == 3 and st["queue"][-1]["more"] == {"yellow": 1, "blue": 2}
    [digest] = d.flush(states.items(), END)[1]
    assert digest.alert.values is not None and digest.alert.values["total"] == 6.0
    assert digest_counts(digest.alert) == [("kw", "keyword", "yellow", 4),
                                           ("kw", "keyword", "blue", 2)]
