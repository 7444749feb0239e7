"""DingTalk robot against a local server that checks 加签 exactly as DingTalk documents."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, deliver
from matrixwatch.alerts.notifiers.dingtalk import sign
from tests.alerts.notifiers.conftest import NOW, HTTPStub, Request, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY, metric

TOKEN = "dd0123456789abcdef0123456789abcdef"
SECRET = "SEC4b1d2e7f3a9c8b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1"


def config(url: str, secret: str = SECRET) -> ChannelConfig:
    return ChannelConfig.from_text(f"""
channels:
  dd:
    type: dingtalk
    url: {url}/robot/send
    token_env: DD_TOKEN
    secret_env: DD_SECRET
    at_mobiles: ["13800000000"]
    trust_env: false
    retry: {FAST_RETRY}
""", env={"DD_TOKEN": TOKEN, "DD_SECRET": secret})


def documented_sign(ts: str, secret: str) -> str:
    """timestamp + "\\n" + secret, HmacSHA256 keyed with the secret, Base64."""
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def dingtalk(req: Request, now: float) -> tuple[int, dict]:
    """What the robot does: token, then timestamp freshness and signature, then payload."""
    if req.path != "/robot/send" or req.query.get("access_token") != [TOKEN]:
        return 200, {"errcode": 300001, "errmsg": "token is not exist"}
    ts = req.query.get("timestamp", [""])[0]
    got = req.query.get("sign", [""])[0]  # parse_qs undoes the URL-encoding
    if not ts.isdigit() or abs(int(ts) - now * 1000) > 3600_000:
        return 200, {"errcode": 310000, "errmsg": "timestamp invalid"}
    if got != documented_sign(ts, SECRET):
        return 200, {"errcode": 310000, "errmsg": "sign not match"}
    body = req.json()
    if body.get("msgtype") != "markdown" or not body["markdown"].get("text"):
        return 200, {"errcode": 40035, "errmsg": "bad payload"}
    return 200, {"errcode": 0, "errmsg": "ok"}


def tricky_now() -> float:
    """A time whose signature contains '+' or '/', so URL-encoding is really exercised."""
    t = NOW
    while not any(c in sign(int(t * 1000), SECRET) for c in "+/"):
        t += 0.001
    return t


async def test_signed_markdown_with_mentions(http_stub: HTTPStub) -> None:
    now = tricky_now()
    http_stub.handler = lambda r: dingtalk(r, now)
    sent = metric("matrixwatch_alert_notifications_total", channel="dd", type="dingtalk")
    await deliver(sample_alert(), "dd", config(http_stub.url), clock=lambda: now)
    assert len(http_stub.requests) == 1
    assert metric("matrixwatch_alert_notifications_total", channel="dd",
                  type="dingtalk") == sent + 1
    # Sent byte for byte as built: the signature's %2B / %2F are not re-encoded or decoded.
    ts = int(now * 1000)
    assert http_stub.requests[0].raw_query == (
        f"access_token={TOKEN}&timestamp={ts}&sign={quote_plus(sign(ts, SECRET))}")
    body = http_stub.requests[0].json()
    assert body["markdown"]["title"] == "【橙色预警】甲市西区发布 声量突增"
    text = body["markdown"]["text"]
    for part in ("2026-11-02 14:03:00（北京时间）", "甲市西区发布（9100000112）",
                 "甲市西区人民政府 · 区县级", "本时段条数 11", "基线 0.05",
                 "[停水三天了没人管，太气人了](https://weibo.com/9100000112/Pq1)",
                 "volume_spike（声量突增）", "5 分钟内 11 条", "@13800000000"):
        assert part in text, part
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


async def test_bad_signature_fails_fast_and_leaks_nothing(http_stub: HTTPStub) -> None:
    http_stub.handler = lambda r: dingtalk(r, NOW)
    before = metric("matrixwatch_alert_notify_failures_total", channel="dd", type="dingtalk",
                    reason="errcode_310000")
    with pytest.raises(DeliveryFailed) as e:
        await deliver(sample_alert(), "dd", config(http_stub.url, secret="SECwrong"),
                      clock=lambda: NOW)
    assert len(http_stub.requests) == 1  # a signature error is not retried
    msg = str(e.value)
    assert "errcode_310000" in msg and "dd (dingtalk → http://127.0.0.1)" in msg
    for secret in (TOKEN, "SECwrong", "sign=", "access_token"):
        assert secret not in msg and secret not in repr(e.value)
    assert e.value.attempts == 1
    assert metric("matrixwatch_alert_notify_failures_total", channel="dd", type="dingtalk",
                  reason="errcode_310000") == before + 1


async def test_retries_server_errors_and_busy_answers_with_fresh_signatures(
        http_stub: HTTPStub) -> None:
    """130101 (too fast) is not retried at all: test_rate_limit.py."""
    answers = iter([(500, {"error": "busy"}), (200, {"errcode": -1, "errmsg": "system busy"})])
    http_stub.handler = lambda r: next(answers, None) or dingtalk(r, NOW)
    retries = metric("matrixwatch_alert_notify_retries_total", channel="dd", type="dingtalk",
                     reason="http_500")
    await deliver(sample_alert(), "dd", config(http_stub.url), clock=lambda: NOW)
    assert len(http_stub.requests) == 3
    assert metric("matrixwatch_alert_notify_retries_total", channel="dd", type="dingtalk",
                  reason="http_500") == retries + 1
    for r in http_stub.requests:
        assert r.query["sign"] == [documented_sign(r.query["timestamp"][0], SECRET)]


async def test_gives_up_after_the_last_attempt(http_stub: HTTPStub) -> None:
    http_stub.handler = lambda r: (503, {"error": "down"})
    with pytest.raises(DeliveryFailed, match="failed after 3 attempt"):
        await deliver(sample_alert(), "dd", config(http_stub.url), clock=lambda: NOW)
    assert len(http_stub.requests) == 3
