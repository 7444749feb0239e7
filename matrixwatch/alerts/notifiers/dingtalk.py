"""DingTalk custom robot (自定义机器人): markdown message, 加签 signing, @ by mobile.

Signing, as DingTalk documents it: ``string_to_sign = timestamp + "\\n" + secret`` (ms
timestamp), HMAC-SHA256 keyed with the secret, Base64, then URL-encoded into the
``timestamp`` and ``sign`` query parameters next to ``access_token``. The robot answers
HTTP 200 with ``{"errcode": 0}``; -1 (busy) is retried. 130101 (sending too fast) is
not: the robot is throttled for 10 minutes, so the delivery waits in the channel's
rate-limit summary instead (:class:`~matrixwatch.alerts.notifiers.base.RateLimitError`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.notifiers.base import HttpClient, check_code, dumps, post
from matrixwatch.alerts.notifiers.render import markdown, render
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert

RETRYABLE = frozenset({-1})
# 自定义机器人接入, 消息发送频率限制 (https://open.dingtalk.com/document/orgapp/custom-robot-access):
# "每个机器人每分钟最多发送20条消息到群里，如果超过20条，会限流10分钟"; the answer then is
# {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}.
RATE_LIMIT_COOLDOWN = 600.0
RATE_LIMITS: Mapping[int, float] = {130101: RATE_LIMIT_COOLDOWN}
MAX_BYTES = 18000  # the robot rejects messages above ~20000 bytes


def sign(timestamp_ms: int, secret: str) -> str:
    """Base64 HMAC-SHA256 of ``f"{timestamp_ms}\\n{secret}"`` keyed with the secret."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def build(alert: Alert, channel: Channel, registry: Registry | None,
          now: float) -> tuple[str, dict[str, Any]]:
    """(URL with token and signature, JSON payload)."""
    url = channel.endpoint()
    if channel.secret is not None:
        ts = int(now * 1000)
        sep = "&" if "?" in url else "?"
        url += f"{sep}timestamp={ts}&sign={quote_plus(sign(ts, channel.secret.get()))}"
    r = render(alert, registry)
    text = markdown(r)
    if len(text.encode()) > MAX_BYTES:
        text = text.encode()[:MAX_BYTES].decode("utf-8", "ignore") + "…"
    if channel.at_mobiles:
        text += "\n\n" + " ".join(f"@{m}" for m in channel.at_mobiles)
    payload = {
        "msgtype": "markdown",
        "markdown": {"title": r.title, "text": text},
        "at": {"atMobiles": list(channel.at_mobiles), "isAtAll": channel.at_all},
    }
    return url, payload


async def send(alert: Alert, channel: Channel, registry: Registry | None,
               client: HttpClient, now: float) -> None:
    url, payload = build(alert, channel, registry, now)
    data = await post(client, url, dumps(payload))
    check_code(data, "errcode", RETRYABLE, "errmsg", RATE_LIMITS)
