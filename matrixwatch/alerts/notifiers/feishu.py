"""Feishu / Lark custom bot (自定义机器人): interactive card, signed.

Signing, as Feishu documents it: ``string_to_sign = timestamp + "\\n" + secret`` (seconds)
is the HMAC-SHA256 *key*, the message is empty; the Base64 digest goes in the body as
``sign`` next to ``timestamp``. The bot answers ``{"code": 0}`` (older deployments
``{"StatusCode": 0}``); 9499 and 11233 are retried. 11232 (frequency limited) is not: the
delivery waits in the channel's rate-limit summary until a cooldown has passed instead
(:class:`~matrixwatch.alerts.notifiers.base.RateLimitError`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.notifiers.base import HttpClient, check_code, dumps, post
from matrixwatch.alerts.notifiers.render import SEVERITY_COLOR, markdown, render
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert

# 9499 is the guide's answer to a malformed body ("Bad Request"); 11233 is not in the guide.
# Both keep the retries they always had.
RETRYABLE = frozenset({9499, 11233})
# 自定义机器人使用指南 (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
# 100 次/分钟, 5 次/秒 per robot, and "可能出现因系统压力导致的 11232 限流错误". No cooldown
# is documented: one minute, the window of the per-minute limit.
RATE_LIMIT_COOLDOWN = 60.0
RATE_LIMITS: Mapping[int, float] = {11232: RATE_LIMIT_COOLDOWN}


def sign(timestamp_s: int, secret: str) -> str:
    """Base64 HMAC-SHA256 with key ``f"{timestamp_s}\\n{secret}"`` over an empty message."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def card(alert: Alert, channel: Channel, registry: Registry | None) -> dict[str, Any]:
    r = render(alert, registry)
    body = markdown(r, heading=False)
    mentions = "".join(f"<at id={u}></at>" for u in channel.at_userids)
    if channel.at_all:
        mentions += "<at id=all></at>"
    elements: list[dict[str, Any]] = [
        {"tag": "div", "text": {"tag": "lark_md", "content": body + (f"\n{mentions}"
                                                                       if mentions else "")}},
    ]
    buttons = []
    if r.link:
        buttons.append({"tag": "button", "text": {"tag": "plain_text", "content": "查看原微博"},
                        "url": r.link, "type": "primary"})
    for i, (_, url) in enumerate(r.samples[:3], 1):
        if url and url != r.link:
            buttons.append({"tag": "button", "text": {"tag": "plain_text",
                                                      "content": f"{r.samples_label} {i}"},
                            "url": url, "type": "default"})
    if buttons:
        elements.append({"tag": "action", "actions": buttons})
    elements.append({"tag": "note", "elements": [
        {"tag": "plain_text", "content": f"matrixwatch · 规则 {alert.rule} · {alert.id}"}]})
    return {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": r.title},
                   "template": SEVERITY_COLOR.get(r.severity, "blue")},
        "elements": elements,
    }


def build(alert: Alert, channel: Channel, registry: Registry | None,
          now: float) -> tuple[str, dict[str, Any]]:
    payload: dict[str, Any] = {}
    if channel.secret is not None:
        ts = int(now)
        payload.update(timestamp=str(ts), sign=sign(ts, channel.secret.get()))
    payload.update(msg_type="interactive", card=card(alert, channel, registry))
    return channel.endpoint(), payload


async def send(alert: Alert, channel: Channel, registry: Registry | None,
               client: HttpClient, now: float) -> None:
    url, payload = build(alert, channel, registry, now)
    data = await post(client, url, dumps(payload))
    if isinstance(data, dict) and "code" not in data and "StatusCode" in data:
        check_code(data, "StatusCode", RETRYABLE, "StatusMessage", RATE_LIMITS)
    else:
        check_code(data, "code", RETRYABLE, "msg", RATE_LIMITS)
