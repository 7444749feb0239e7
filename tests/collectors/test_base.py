"""Building blocks: items and headers, cursor store, normalized-event gate, health, metrics."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from matrixwatch.collectors.base import (
    HEADER_AS_OF,
    HEADER_MODE,
    AuthExpired,
    HealthTracker,
    Item,
    KafkaSink,
    MemorySink,
    RetryableError,
    describe,
)
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.http import _retry_after, is_login_url
from matrixwatch.settings import Settings
from matrixwatch.streams.normalize import InvalidInput
from matrixwatch.streams.normalized import event_from_dict, is_normalized


def test_headers_match_the_worker() -> None:
    from matrixwatch.streams import app

    assert (HEADER_AS_OF, HEADER_MODE) == (app.HEADER_AS_OF, app.HEADER_MODE)
    it = Item.of({"id": "1", "user": {"id": 42}}, as_of="2026-11-21T12:00:00+08:00",
                 replay=True)
    assert it.key == b"\"weibo:42\""  # the worker table key (JSON string)
    assert it.headers() == [("mw-as-of", b"2026-11-21T12:00:00+08:00"), ("mw-mode", b"replay")]


def test_cursor_store_commit_unseen_prune(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    st = CursorStore(db, retention=100)
    st.commit("src", {"a": {"newest": 5}}, [("status", str(i)) for i in range(1200)])
    assert st.get("src", "a") == {"newest": 5}
    assert st.unseen("src", "status", [str(i) for i in range(1195, 1205)]) == \
        {str(i) for i in range(1200, 1205)}
    assert st.unseen("other", "status", ["1"]) == {"1"}  # per source
    st.commit("src", {"a": None})
    assert st.get("src", "a") is None
    assert st.prune(time.time() + 1000) == 1200
    st.close()
    again = CursorStore(db)
    assert again.seen_count() == 0
    again.close()


def test_commit_is_atomic(tmp_path: Path) -> None:
    st = CursorStore(tmp_path / "s.sqlite")
    with pytest.raises(TypeError):
        st.commit("src", {"a": {"bad": object()}}, [("status", "1")])
    assert st.get("src", "a") is None and st.unseen("src", "status", ["1"]) == {"1"}
    st.close()


EV = {"platform": "web", "id": "art_1001", "kind": "post", "account_id": "example-gov",
      "owner_id": "example-gov", "text": "通知", "created_at": "2026-11-21T10:00:00+08:00"}


def test_event_from_dict() -> None:
    assert is_normalized(EV) and not is_normalized({"id": 1, "user": {"id": 2}})
    ev = event_from_dict(EV)
    assert ev.doc_id == "web:art_1001" and ev.collected_at == EV["created_at"]
    assert event_from_dict({**EV, "reposts_count": 3}).reposts_count == 3
    bad = [({**EV, "kind": "like"}, "bad kind"),
           ({**EV, "created_at": "2026-11-21 10:00"}, "bad time"),
           ({**EV, "platform": "Web!"}, "bad platform"),
           ({**EV, "owner_id": ""}, "missing field: owner_id"),
           ({**EV, "text": 5}, "wrong type: text"),
           ({**EV, "kind": "comment"}, "missing field: post_id"),
           ({**EV, "reposts_count": -1}, "wrong type: reposts_count"),
           ({**EV, "text": "长" * 70000}, "text too large")]
    for obj, reason in bad:
        with pytest.raises(InvalidInput, match=reason):
            event_from_dict(obj)


async def test_health_tracker_transitions() -> None:
    sink = MemorySink()
    h = HealthTracker(sink, "weibo_mobile", threshold=2, min_interval=0)
    await h.failure(RetryableError("418"))
    assert not sink.health_records
    await h.failure(RetryableError("418"))
    await h.failure(RetryableError("418"))
    await h.failure(RetryableError("418"))  # every `threshold` failures while failing
    await h.success()
    await h.failure(AuthExpired("ok:-100"), "9000000001")
    await h.failure(AuthExpired("ok:-100"), "9000000001")
    got = [(r.status, r.consecutive_failures) for r in sink.health_records]
    assert got == [("failing", 2), ("failing", 4), ("ok", 0), ("auth_expired", 1)]
    assert sink.health_records[-1].account_id == "9000000001"
    assert REGISTRY.get_sample_value("matrixwatch_collector_healthy",
                                     {"source": "weibo_mobile"}) == 0
    lag = REGISTRY.get_sample_value("matrixwatch_collector_lag_seconds",
                                    {"source": "weibo_mobile"})
    assert lag is not None and 0 <= lag < 60


async def test_health_tracker_logs_state_changes_not_every_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    """A host that is down fails every account's poll: the log gets the start (with the
    reason), the state change and the recovery, not one WARNING per failed poll."""
    sink = MemorySink()
    h = HealthTracker(sink, "weibo_mobile", threshold=3)
    down = RetryableError("connect")
    down.__cause__ = ConnectionRefusedError(111, "Connection refused")
    with caplog.at_level(logging.DEBUG, logger="matrixwatch.collectors.base"):
        for uid in range(50):
            await h.failure(down, str(uid))
        await h.success()
        try:
            raise KeyError("a bug")
        except KeyError as e:  # unexpected: its traceback is logged, once
            await h.failure(e, "9", unexpected=True)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warned] == [
        "weibo_mobile", "weibo_mobile is failing", "weibo_mobile", "weibo_mobile"]
    assert "Connection refused" in warned[0].getMessage()
    assert "polls succeed again" in warned[2].getMessage()
    assert [bool(r.exc_info) for r in warned] == [False, False, False, True]
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 48
    assert [r.status for r in sink.health_records] == ["failing", "ok"]


def test_describe_names_the_cause() -> None:
    """The fetcher's RetryableError("connect") alone does not say what went wrong."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as e:
            raise RetryableError("connect") from e
    except RetryableError as e:
        assert describe(e) == ("RetryableError: connect "
                               "(ConnectionRefusedError: [Errno 111] Connection refused)")
    assert describe(AuthExpired("ok:-100")) == "AuthExpired: ok:-100"


def test_http_helpers() -> None:
    assert _retry_after("3") == 3.0 and _retry_after(None) is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert is_login_url("https://passport.weibo.cn/signin/welcome?entry=mweibo")
    assert is_login_url("https://m.weibo.cn/login?backURL=x")
    assert not is_login_url("https://m.weibo.cn/status/O0000001a")


def test_kafka_sink_compresses_with_the_configured_codec() -> None:
    def codec(compression: str) -> str | None:
        settings = Settings(_env_file=None, compression=compression)  # type: ignore[call-arg]
        return KafkaSink.from_settings(settings, "kafka://127.0.0.1:9").compression_type

    assert codec("zstd") == "zstd"
    assert codec("none") is None
