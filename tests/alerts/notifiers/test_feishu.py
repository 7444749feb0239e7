"""Feishu bot: interactive card, signature recomputed as Feishu documents it."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, RateLimited, deliver
from tests.alerts.notifiers.conftest import NOW, HTTPStub, Request, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY

HOOK = "2f5c7a1e-1111-4a2b-9c3d-8e7f6a5b4c3d"
SECRET = "qF3kZ8mN1pR7sT2vW9xY4bC6"


def config(url: str, secret: str = SECRET) -> ChannelConfig:
    return ChannelConfig.from_text(f"""
channels:
  fs:
    type: feishu
    url: {url}/open-apis/bot/v2/hook
    token_env: FS_HOOK
    secret_env: FS_SECRET
    at_userids: [ou_abc123]
    trust_env: false
    retry: {FAST_RETRY}
""", env={"FS_HOOK": HOOK, "FS_SECRET": secret})


def documented_sign(timestamp: str, secret: str) -> str:
    """string_to_sign = timestamp + "\\n" + secret is the HMAC-SHA256 key; the message is
    empty; Base64 of the digest."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, digestmod=hashlib.sha256).digest()).decode()


def feishu(req: Request) -> tuple[int, dict]:
    if req.path != f"/open-apis/bot/v2/hook/{HOOK}":
        return 404, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
    body = req.json()
    ts = body.get("timestamp", "")
    if abs(int(ts) - NOW) > 3600 or body.get("sign") != documented_sign(ts, SECRET):
        return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour "
                                            "from current time"}
    if body.get("msg_type") != "interactive" or "card" not in body:
        return 200, {"code": 9499, "msg": "Bad Request"}
    return 200, {"code": 0, "msg": "success", "data": {}}


async def test_signed_interactive_card(http_stub: HTTPStub) -> None:
    http_stub.handler = feishu
    await deliver(sample_alert(post_id="4567890123456789"), "fs", config(http_stub.url),
                  clock=lambda: NOW)
    body = http_stub.requests[0].json()
    assert body["timestamp"] == str(int(NOW))
    card = body["card"]
    assert card["header"] == {"title": {"tag": "plain_text",
                                        "content": "【橙色预警】甲市西区发布 声量突增"},
                              "template": "orange"}
    div = card["elements"][0]
    assert div["text"]["tag"] == "lark_md"
    content = div["text"]["content"]
    assert "2026-11-02 14:03:00（北京时间）" in content and "<at id=ou_abc123></at>" in content
    assert "本时段条数 11" in content and "volume_spike" in content
    buttons = card["elements"][1]["actions"]
    assert buttons[0]["url"].startswith("https://weibo.com/9100000112/")
    assert buttons[1]["url"] == "https://weibo.com/9100000112/Pq1"
    assert card["elements"][-1]["tag"] == "note"


async def test_bad_signature_is_permanent_and_secret_free(http_stub: HTTPStub) -> None:
    http_stub.handler = feishu
    with pytest.raises(DeliveryFailed) as e:
        await deliver(sample_alert(), "fs", config(http_stub.url, "wrong-secret"),
                      clock=lambda: NOW)
    assert "errcode_19021" in str(e.value) and len(http_stub.requests) == 1
    assert HOOK not in str(e.value) and "wrong-secret" not in str(e.value)


async def test_rate_limit_is_not_retried(http_stub: HTTPStub) -> None:
    """The fan-out waits the cooldown out and summarises instead (test_rate_limit.py)."""
    answers = iter([(200, {"code": 11232, "msg": "frequency limited"})])
    http_stub.handler = lambda r: next(answers, None) or feishu(r)
    with pytest.raises(RateLimited, match="errcode_11232"):
        await deliver(sample_alert(), "fs", config(http_stub.url), clock=lambda: NOW)
    assert len(http_stub.requests) == 1
