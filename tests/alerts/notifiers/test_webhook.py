"""Generic webhook: JSON body signed with HMAC-SHA256 in X-Matrixwatch-Signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, deliver
from matrixwatch.alerts.notifiers.base import MAX_RESPONSE_BYTES, NotifyError, client_for, post
from tests.alerts.notifiers.conftest import HTTPStub, Request, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY

SECRET = "whsec-9f8e7d6c5b4a"


def config(url: str, retry: str = FAST_RETRY) -> ChannelConfig:
    return ChannelConfig.from_text(f"""
channels:
  hook:
    type: webhook
    url_env: HOOK_URL
    secret_env: HOOK_SECRET
    headers: {{X-Team: duty}}
    trust_env: false
    retry: {retry}
""", env={"HOOK_URL": url, "HOOK_SECRET": SECRET})


def receiver(req: Request) -> tuple[int, dict]:
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(req.headers.get("x-matrixwatch-signature", ""), expected):
        return 401, {"error": "bad signature"}
    return 204, b""


async def test_signed_json(http_stub: HTTPStub) -> None:
    http_stub.handler = receiver
    alert = sample_alert()
    await deliver(alert, "hook", config(f"{http_stub.url}/hooks/T0K3N"))
    req = http_stub.requests[0]
    assert req.path == "/hooks/T0K3N"
    assert req.headers["x-matrixwatch-alert-id"] == alert.id
    assert req.headers["x-team"] == "duty"
    assert req.headers["content-type"].startswith("application/json")
    body = req.json()
    assert body["alert"] == alert.asdict()
    assert body["local_time"] == "2026-11-02 14:03:00" and body["timezone"] == "Asia/Shanghai"
    assert body["severity_zh"] == "橙色" and body["title"].startswith("【橙色预警】")
    assert "https://weibo.com/9100000112/Pq1" in body["markdown"]


async def test_rejection_is_permanent(http_stub: HTTPStub) -> None:
    http_stub.handler = lambda r: (401, {"error": "bad signature"})
    with pytest.raises(DeliveryFailed, match="http_401"):
        await deliver(sample_alert(), "hook", config(f"{http_stub.url}/hooks/T0K3N"))
    assert len(http_stub.requests) == 1


async def test_unreachable_is_retried_then_reported_without_the_url_path() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DeliveryFailed) as e:
        await deliver(sample_alert(), "hook", config(f"http://127.0.0.1:{port}/hooks/T0K3N"))
    assert e.value.reason == "network" and e.value.attempts == 3
    assert "T0K3N" not in str(e.value) and "http://127.0.0.1" in str(e.value)


async def test_a_burst_reuses_one_client_and_its_connection(http_stub: HTTPStub) -> None:
    """Per-alert clients cost a TLS context each (a third of a busy worker's CPU)."""
    from matrixwatch.alerts.notifiers.base import shared_client

    http_stub.handler = receiver
    cfg = config(f"{http_stub.url}/hooks/T0K3N")
    first = shared_client(cfg.channels["hook"])
    for _ in range(3):
        await deliver(sample_alert(), "hook", cfg)
    assert len(http_stub.requests) == 3
    assert len({r.client_port for r in http_stub.requests}) == 1  # one kept-alive connection
    assert shared_client(cfg.channels["hook"]) is first and not first.is_closed
    await first.aclose()  # a closed client is replaced, not reused
    assert shared_client(cfg.channels["hook"]) is not first


def test_clients_of_a_loop_closed_without_closing_them_are_closed_later(
        http_stub: HTTPStub) -> None:
    """An open session holds its loop, so its weak entry would never go by itself."""
    from matrixwatch.alerts.notifiers import base

    # No kept-alive connection: a socket left open in a closed loop can only be closed
    # by the garbage collector ("unclosed transport" under python -X dev).
    http_stub.handler = lambda r: (*receiver(r), {"Connection": "close"})
    cfg = config(f"{http_stub.url}/hooks/T0K3N")

    async def deliver_one() -> base.HttpClient:
        await deliver(sample_alert(), "hook", cfg)
        return base.shared_client(cfg.channels["hook"])

    first = asyncio.run(deliver_one())  # and no close_shared_clients()
    assert not first.is_closed

    async def next_loop() -> base.HttpClient:
        client = await deliver_one()
        await asyncio.sleep(0)  # the old loop's clients are closed in a task of this one
        await base.close_shared_clients()
        return client

    second = asyncio.run(next_loop())
    assert second is not first and first.is_closed and second.is_closed
    assert not any(loop.is_closed() for loop in base._SHARED)
    assert len(http_stub.requests) == 2


async def test_a_redirect_is_not_followed(http_stub: HTTPStub) -> None:
    """A 3xx is a permanent error: the signed body never goes where a Location points."""
    http_stub.handler = lambda r: (302, b"", {"Location": f"{http_stub.url}/elsewhere/T0K3N"})
    with pytest.raises(DeliveryFailed) as e:
        await deliver(sample_alert(), "hook", config(f"{http_stub.url}/hooks/T0K3N"))
    assert e.value.reason == "http_302" and e.value.attempts == 1
    assert "T0K3N" not in str(e.value)
    assert [(r.method, r.path) for r in http_stub.requests] == [("POST", "/hooks/T0K3N")]


def endless(chunk: bytes) -> Iterator[bytes]:
    """An answer that never ends: only a capped reader returns from it before its timeout."""
    return itertools.repeat(chunk)


async def test_an_endless_answer_is_cut_at_the_cap(http_stub: HTTPStub) -> None:
    http_stub.handler = lambda r: (200, endless(b"x" * 8192))
    cfg = config(f"{http_stub.url}/hooks/T0K3N",
                 "{attempts: 1, initial: 0.01, max_wait: 0.02, timeout: 10}")
    client = client_for(cfg.channels["hook"])
    try:
        # Uncapped, this would read until the 10 s timeout and fail with "timeout".
        assert await post(client, f"{http_stub.url}/hooks/T0K3N", b"{}") is None
        http_stub.handler = lambda r: (503, endless(b"busy " * 1000))
        with pytest.raises(NotifyError) as e:
            await post(client, f"{http_stub.url}/hooks/T0K3N", b"{}")
        assert e.value.reason == "http_503" and e.value.retryable
        assert e.value.detail.startswith("busy busy") and len(e.value.detail) <= 300
    finally:
        await client.aclose()


async def test_answers_up_to_the_cap_are_read_and_longer_ones_are_not(
        http_stub: HTTPStub) -> None:
    def answer(size: int) -> bytes:
        return b'{"errcode": 0, "pad": "' + b"x" * (size - 25) + b'"}'

    assert len(answer(MAX_RESPONSE_BYTES)) == MAX_RESPONSE_BYTES
    cfg = config(f"{http_stub.url}/hooks/T0K3N")
    client = client_for(cfg.channels["hook"])
    try:
        http_stub.handler = lambda r: (200, answer(MAX_RESPONSE_BYTES))
        data = await post(client, f"{http_stub.url}/hooks/T0K3N", b"{}")
        assert data["errcode"] == 0
        http_stub.handler = lambda r: (200, answer(MAX_RESPONSE_BYTES + 1))
        assert await post(client, f"{http_stub.url}/hooks/T0K3N", b"{}") is None
        http_stub.handler = lambda r: (200, {"errcode": 0})  # the pool is still usable
        assert await post(client, f"{http_stub.url}/hooks/T0K3N", b"{}") == {"errcode": 0}
    finally:
        await client.aclose()


def slow_headers(r: Request) -> tuple[int, bytes]:
    time.sleep(1.5)
    return 200, b"{}"


def slow_body(r: Request) -> tuple[int, Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        yield b'{"errcode": '
        time.sleep(1.5)
        yield b"0}"
    return 200, chunks()


@pytest.mark.parametrize("handler", [slow_headers, slow_body])
async def test_a_slow_answer_times_out_and_is_retried(
        http_stub: HTTPStub, handler: Callable[[Request], tuple[int, Any]]) -> None:
    """The channel's timeout bounds the whole request, body included."""
    http_stub.handler = handler
    cfg = config(f"{http_stub.url}/hooks/T0K3N",
                 "{attempts: 2, initial: 0.01, max_wait: 0.02, timeout: 0.3}")
    with pytest.raises(DeliveryFailed) as e:  # the answers would come, after 1.5 s
        await deliver(sample_alert(), "hook", cfg)
    assert e.value.reason == "timeout" and e.value.attempts == 2  # retryable: tried again
    assert len(http_stub.requests) == 2
    assert "T0K3N" not in str(e.value)


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"])
async def test_trust_env_takes_the_proxy_from_the_environment(
        http_stub: HTTPStub, monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", http_stub.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: only the proxy can answer
    cfg = ChannelConfig.from_text(
        "channels:\n  hook: {type: webhook, url_env: HOOK_URL}\n",  # trust_env: the default
        env={"HOOK_URL": f"http://127.0.0.1:{port}/hooks/T0K3N"})
    ch = cfg.channels["hook"]
    client = client_for(ch)
    try:
        if no_proxy:
            with pytest.raises(NotifyError) as e:
                await post(client, ch.endpoint(), b"{}")
            assert e.value.reason == "network" and http_stub.requests == []
        else:
            assert await post(client, ch.endpoint(), b"{}") == {"errcode": 0, "errmsg": "ok"}
            assert [r.path for r in http_stub.requests] == ["/hooks/T0K3N"]
        off = client_for(replace(ch, trust_env=False))
        with pytest.raises(NotifyError):
            await post(off, ch.endpoint(), b"{}")
        await off.aclose()
    finally:
        await client.aclose()


async def test_a_delivery_that_succeeds_leaves_the_alert_to_reference_counting(
        http_stub: HTTPStub) -> None:
    """Run through tenacity, every delivery built reference cycles that held its alert
    until the collector's next pass; on the load run they were most of the cyclic garbage.
    The usual path (first attempt succeeds) must free the alert as soon as it is done."""
    import gc
    import weakref

    http_stub.handler = receiver
    cfg = config(f"{http_stub.url}/hooks/T0K3N")
    await deliver(sample_alert(), "hook", cfg)  # warm: the shared client and its pool
    alert = sample_alert()
    ref = weakref.ref(alert)
    gc.disable()
    try:
        await deliver(alert, "hook", cfg)
        del alert
        assert ref() is None
    finally:
        gc.enable()
