"""Generic webhook: JSON body signed with HMAC-SHA256 in X-Matrixwatch-Signature."""

from __future__ import annotations

import hashlib
import hmac
import socket

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, deliver
from tests.alerts.notifiers.conftest import HTTPStub, Request, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY

SECRET = "whsec-9f8e7d6c5b4a"


def config(url: str) -> ChannelConfig:
    return ChannelConfig.from_text(f"""
channels:
  hook:
    type: webhook
    url_env: HOOK_URL
    secret_env: HOOK_SECRET
    headers: {{X-Team: duty}}
    trust_env: false
    retry: {FAST_RETRY}
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
    assert shared_client(cfg.channels["hook"]) is first and not first.is_closed
    await first.aclose()  # a closed client is replaced, not reused
    assert shared_client(cfg.channels["hook"]) is not first
