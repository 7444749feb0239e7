"""HTTP push endpoint: auth, limits, bad input, and 202 only after Kafka has the batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import pytest

from matrixwatch.collectors.base import Item, KafkaSink, MemorySink, Sink
from matrixwatch.collectors.push import make_app, start_server
from matrixwatch.streams.normalize import normalize_line
from matrixwatch.streams.records import CollectorHealth
from matrixwatch.streams.weibo_time import CST

TOKEN = "s3cret-token-for-tests"
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collectors"
AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=CST)


def native_status(i: int = 0) -> dict:
    st = json.loads((FIX / "openapi_user_timeline.json").read_text())["statuses"][0]
    st["id"] = st["id"] + i
    st["idstr"] = st["mid"] = str(st["id"])
    return st


def native_comment() -> dict:
    return json.loads((FIX / "openapi_comments_show.json").read_text())["comments"][0]


def normalized_event() -> dict:
    return {"platform": "wechat", "id": "2650000001_1", "kind": "post",
            "account_id": "MzAwMDAwMDAwMQ==", "owner_id": "MzAwMDAwMDAwMQ==",
            "text": "今冬明春供暖保障", "created_at": "2026-11-21T11:00:00+08:00",
            "url": "https://mp.weixin.qq.com/s?__biz=x&mid=2650000001&idx=1"}


async def _serve(sink: Sink, **kw: int) -> AsyncIterator[str]:
    runner, port = await start_server(make_app(sink, token=TOKEN, **kw), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}/v1/events"
    finally:
        await runner.cleanup()


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, MemorySink]]:
    sink = MemorySink()
    async for url in _serve(sink, max_bytes=64 * 1024, max_items=10):
        yield url, sink


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_auth(endpoint: tuple[str, MemorySink]) -> None:
    url, sink = endpoint
    async with httpx.AsyncClient() as c:
        none = await c.post(url, json=[native_status()])
        wrong = await c.post(url, json=[native_status()],
                             headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
        basic = await c.post(url, json=[native_status()],
                             headers={"Authorization": f"Basic {TOKEN}"})
        ok = await c.post(url, json=[native_status(), native_comment(), normalized_event()],
                          headers=AUTH)
    assert none.status_code == wrong.status_code == basic.status_code == 401
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    assert ok.status_code == 202 and ok.json() == {"accepted": 3}
    assert len(sink.items) == 3
    st, cm, ev = sink.items
    # Keys are the worker's table keys: the post's author for the comment too.
    assert st.key == cm.key == b'"weibo:9000000001"'
    assert ev.key == b'"wechat:MzAwMDAwMDAwMQ=="'

    assert normalize_line(cm.line, collected_at=AS_OF).kind == "comment"


async def test_no_token_configured_refuses_everything() -> None:
    sink = MemorySink()
    runner, port = await start_server(make_app(sink, token=None), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"http://127.0.0.1:{port}/v1/events", json=[native_status()],
                             headers={"Authorization": "Bearer anything"})
    finally:
        await runner.cleanup()
    assert r.status_code == 503 and not sink.items


async def test_size_limits(endpoint: tuple[str, MemorySink]) -> None:
    url, sink = endpoint
    big = [dict(native_status(i), text="长" * 3000) for i in range(10)]  # > 64 KiB
    async def chunks() -> AsyncIterator[bytes]:
        body = json.dumps(big).encode()
        for k in range(0, len(body), 8192):
            yield body[k : k + 8192]

    async with httpx.AsyncClient() as c:
        declared = await c.post(url, json=big, headers=AUTH)
        chunked = await c.post(url, content=chunks(),
                               headers={**AUTH, "Content-Type": "application/json"})
        too_many = await c.post(url, json=[native_status(i) for i in range(11)], headers=AUTH)
    assert declared.status_code == chunked.status_code == 413
    assert too_many.status_code == 413 and "more than 10" in too_many.json()["error"]
    assert not sink.items


async def test_bad_input(endpoint: tuple[str, MemorySink]) -> None:
    url, sink = endpoint
    h = {**AUTH, "Content-Type": "application/json"}
    async with httpx.AsyncClient() as c:
        bad_json = await c.post(url, content=b'[{"id": 1,', headers=h)
        not_list = await c.post(url, content=b'{"id": 1}', headers=h)
        empty = await c.post(url, content=b"[]", headers=h)
        invalid = await c.post(url, headers=AUTH, json=[
            native_status(), {"id": 5, "text": "no user", "created_at": "x"},
            dict(normalized_event(), created_at="2026-11-21 11:00"), "str"])
        ctype = await c.post(url, content=b"<xml/>", headers={**AUTH,
                                                            "Content-Type": "application/xml"})
    assert bad_json.status_code == 400 and "bad JSON" in bad_json.json()["error"]
    assert not_list.status_code == 400 and empty.status_code == 400
    assert invalid.status_code == 422
    reasons = {p["index"]: p["reason"] for p in invalid.json()["items"]}
    assert set(reasons) == {1, 2, 3}
    assert "missing field: user" in reasons[1] and "bad time" in reasons[2]
    assert ctype.status_code == 415
    assert not sink.items  # all or nothing: a 4xx never publishes part of a batch


async def test_ndjson_and_events_envelope(endpoint: tuple[str, MemorySink]) -> None:
    url, sink = endpoint
    nd = b"\n".join(orjson.dumps(native_status(i)) for i in range(3)) + b"\n"
    async with httpx.AsyncClient() as c:
        r1 = await c.post(url, content=nd, headers={**AUTH,
                                                    "Content-Type": "application/x-ndjson"})
        r2 = await c.post(url, json={"events": [normalized_event()]}, headers=AUTH)
    assert r1.status_code == r2.status_code == 202 and len(sink.items) == 4


class SlowSink(MemorySink):
    """Acknowledges late, or fails: the answer must wait for (and reflect) the sink."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        super().__init__()
        self.delay, self.fail = delay, fail
        self.acked_at: float | None = None

    async def send(self, items: Sequence[Item]) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("broker down")
        await super().send(items)
        self.acked_at = asyncio.get_running_loop().time()


async def test_answer_waits_for_the_sink_and_503_when_it_fails() -> None:
    slow = SlowSink(0.3)
    async for url in _serve(slow):
        async with httpx.AsyncClient() as c:
            r = await c.post(url, json=[native_status()], headers=AUTH)
            answered = asyncio.get_running_loop().time()
    assert r.status_code == 202 and slow.acked_at is not None and slow.acked_at <= answered
    down = SlowSink(0.0, fail=True)
    async for url in _serve(down):
        async with httpx.AsyncClient() as c:
            r = await c.post(url, json=[native_status()], headers=AUTH)
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"


@pytest.mark.broker
async def test_202_means_the_batch_is_on_kafka(tmp_path: Path) -> None:
    """Real embedded broker: when 202 returns, every message is readable from the topic."""
    from kafka import KafkaConsumer, TopicPartition

    from matrixwatch.broker import EmbeddedBroker, ensure_topics

    raw, health = "mwpush-raw", "mwpush-health"
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        await asyncio.to_thread(ensure_topics, broker.bootstrap, [raw, health], 2)
        sink = KafkaSink(broker.bootstrap, raw, health)
        await sink.start()
        batch = [native_status(i) for i in range(20)] + [native_comment(), normalized_event()]
        try:
            async for url in _serve(sink):
                async with httpx.AsyncClient(timeout=30) as c:
                    r = await c.post(url, json=batch, headers=AUTH)
                assert r.status_code == 202 and r.json() == {"accepted": 22}

                def read() -> list[tuple[bytes | None, bytes, dict]]:
                    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap,
                                             enable_auto_commit=False,
                                             consumer_timeout_ms=2000)
                    consumer.assign([TopicPartition(raw, p) for p in range(2)])
                    consumer.seek_to_beginning()
                    out = [(m.key, m.value, dict(m.headers)) for m in consumer]
                    consumer.close()
                    return out

                # Read with the event loop blocked: the producer cannot send anything
                # more, so whatever is readable was on the broker when 202 was sent.
                msgs = read()
            await sink.health(CollectorHealth(source="weibo_mobile", status="failing",
                                              at="2026-11-21T12:00:00+08:00",
                                              consecutive_failures=3, last_error="418"))
            hc = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=2000)
            hc.assign([TopicPartition(health, p) for p in range(2)])
            hc.seek_to_beginning()
            health_msgs = [orjson.loads(m.value) for m in hc]
            hc.close()
        finally:
            await sink.close()
    assert len(msgs) == 22
    assert [(h["source"], h["status"]) for h in health_msgs] == [("weibo_mobile", "failing")]
    values = sorted(orjson.loads(v).get("idstr") or orjson.loads(v)["id"] for _, v, _ in msgs)
    assert values == sorted(str(o.get("idstr") or o["id"]) for o in batch)
    assert all("mw-as-of" in h for _, _, h in msgs)
    keys = {k for k, _, _ in msgs}
    assert keys == {b'"weibo:9000000001"', b'"wechat:MzAwMDAwMDAwMQ=="'}


# --------------------------------------------------------------------------- rate limits


def test_rate_limiter_buckets_per_client() -> None:
    """Burst, refill at ``rate``, one bucket per client, bounded number of buckets."""
    from matrixwatch.collectors.push import RateLimiter

    now = [0.0]
    lim = RateLimiter(rate=2.0, burst=3, max_clients=2, clock=lambda: now[0])
    assert [lim.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.acquire("a") == pytest.approx(0.5)  # empty: next token in 1/rate
    assert lim.acquire("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert lim.acquire("a") == 0.0  # refilled one token
    lim.acquire("c")
    assert len(lim._buckets) == 2  # least recently seen ("b") dropped


async def test_429_when_a_client_exceeds_its_rate() -> None:
    sink = MemorySink()
    now = [100.0]
    runner, port = await start_server(
        make_app(sink, token=TOKEN, rate=1.0, burst=2, clock=lambda: now[0]), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/v1/events"
    try:
        async with httpx.AsyncClient() as c:
            ok = [await c.post(url, json=[native_status(i)], headers=AUTH) for i in range(2)]
            limited = await c.post(url, json=[native_status(9)], headers=AUTH)
            guess = await c.post(url, json=[native_status(9)],
                                 headers={"Authorization": "Bearer guess"})
            now[0] += 1.0
            again = await c.post(url, json=[native_status(3)], headers=AUTH)
            health = await c.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await runner.cleanup()
    assert [r.status_code for r in ok] == [202, 202]
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert "rate limit" in limited.json()["error"]
    assert guess.status_code == 429  # checked before the token: guessing is throttled too
    assert again.status_code == 202
    assert health.status_code == 200  # the health check is not limited
    assert len(sink.items) == 3


async def test_429_when_too_many_requests_are_in_flight() -> None:
    slow = SlowSink(0.5)
    runner, port = await start_server(make_app(slow, token=TOKEN, max_inflight=1),
                                      "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/v1/events"
    try:
        async with httpx.AsyncClient() as c:
            first = asyncio.create_task(c.post(url, json=[native_status(1)], headers=AUTH))
            await asyncio.sleep(0.2)  # the first is waiting for its (slow) sink
            second = await c.post(url, json=[native_status(2)], headers=AUTH)
            done = await first
            third = await c.post(url, json=[native_status(3)], headers=AUTH)
    finally:
        await runner.cleanup()
    assert done.status_code == 202 and third.status_code == 202
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert "in progress" in second.json()["error"]


async def test_token_compared_in_constant_time(endpoint: tuple[str, MemorySink]) -> None:
    """Every bearer token goes through hmac.compare_digest; none through ``==``."""
    import hmac
    import inspect
    from unittest import mock

    from matrixwatch.collectors import push

    url, _ = endpoint
    with mock.patch.object(push.hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        async with httpx.AsyncClient() as c:
            bad = await c.post(url, json=[native_status()], headers={"Authorization": "Bearer x"})
            good = await c.post(url, json=[native_status()], headers=AUTH)
    assert bad.status_code == 401 and good.status_code == 202
    assert spy.call_count == 2
    assert {call.args[1] for call in spy.call_args_list} == {TOKEN.encode()}
    src = inspect.getsource(push)
    assert "== token" not in src and "token ==" not in src and "!= token" not in src


# --------------------------------------------------------------------------- audit fixes


async def test_deeply_nested_json_is_a_400_not_a_500() -> None:
    """The stdlib parser raised RecursionError on deep nesting (a 500); now a 400 reason."""
    sink = MemorySink()
    deep = b"[" * 100_000 + b"]" * 100_000
    line = b"[" * 3000 + b"]" * 3000
    async for url in _serve(sink):
        async with httpx.AsyncClient() as c:
            body = await c.post(url, content=deep,
                                headers={**AUTH, "Content-Type": "application/json"})
            nd = await c.post(url, content=orjson.dumps(native_status()) + b"\n" + line,
                              headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert body.status_code == 400 and body.json()["error"].startswith("bad JSON")
    assert nd.status_code == 400 and nd.json()["error"].startswith("bad JSON on line 2")
    assert not sink.items


async def test_items_the_publisher_cannot_encode_are_422(
        endpoint: tuple[str, MemorySink]) -> None:
    """Parseable but too deep for orjson.dumps (254 levels): a per-item 422, not a 500."""
    url, sink = endpoint
    deep = orjson.loads(b"[" * 300 + b"]" * 300)
    async with httpx.AsyncClient() as c:
        r = await c.post(url, json=[native_status(), dict(native_status(1), extra=deep)],
                         headers=AUTH)
    assert r.status_code == 422
    assert [p["index"] for p in r.json()["items"]] == [1]
    assert "cannot encode" in r.json()["items"][0]["reason"]
    assert not sink.items


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+14:00",
                                        "9999-12-31T00:00:00+08:00"])
async def test_event_times_out_of_bounds_are_422_for_every_shape(
        endpoint: tuple[str, MemorySink], created_at: str) -> None:
    """The worker dead-letters these (normalize's time bounds), so the endpoint refuses
    them too: normalized events used to skip the bounds and get a 202."""
    url, sink = endpoint
    status = native_status()
    status["created_at"] = created_at
    async with httpx.AsyncClient() as c:
        event = await c.post(url, json=[dict(normalized_event(), created_at=created_at)],
                             headers=AUTH)
        native = await c.post(url, json=[status], headers=AUTH)
    assert event.status_code == native.status_code == 422
    assert event.json()["items"][0]["reason"].startswith("bad time: created_at")
    assert not sink.items


async def test_max_future_is_the_workers_setting() -> None:
    """``max_future`` (MW_MAX_FUTURE_SKEW) moves the bound; ``inf`` turns it off."""
    far = dict(normalized_event(), created_at="2999-01-01T00:00:00+08:00")
    for max_future, expected in ((0.0, 422), (float("inf"), 202)):
        sink = MemorySink()
        runner, port = await start_server(make_app(sink, token=TOKEN, max_future=max_future),
                                          "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient() as c:
                r = await c.post(f"http://127.0.0.1:{port}/v1/events", json=[far],
                                 headers=AUTH)
        finally:
            await runner.cleanup()
        assert r.status_code == expected


async def test_line_over_the_workers_cap_is_422() -> None:
    """A line the worker would dead-letter unparsed ("line too large") is refused here."""
    sink = MemorySink()
    runner, port = await start_server(make_app(sink, token=TOKEN, max_line_bytes=4096),
                                      "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"http://127.0.0.1:{port}/v1/events",
                             json=[dict(native_status(), pad="x" * 5000)], headers=AUTH)
    finally:
        await runner.cleanup()
    assert r.status_code == 422 and "line too large" in r.json()["items"][0]["reason"]
    assert not sink.items


async def test_bom_before_the_body_is_still_accepted(endpoint: tuple[str, MemorySink]) -> None:
    url, sink = endpoint
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=b"\xef\xbb\xbf" + orjson.dumps([native_status()]),
                         headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 202 and len(sink.items) == 1
