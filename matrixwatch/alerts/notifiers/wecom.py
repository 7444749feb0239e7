"""WeCom (企业微信) group robot: markdown message, @ by userid and by mobile.

Markdown messages @ people with ``<@userid>`` inside the content; ``mentioned_mobile_list``
works only on text messages, so @-by-mobile is a short follow-up text message. The robot
answers ``{"errcode": 0}``; -1 (busy) is retried. 45009 (frequency limit) is not: the
robot keeps refusing for a minute, so the delivery waits in the channel's rate-limit
summary instead (:class:`~matrixwatch.alerts.notifiers.base.RateLimitError`), the @-mobile
follow-up included (the summary @s again). No signing exists for WeCom robots: the
``key`` in the URL is the secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.notifiers.base import HttpClient, check_code, dumps, post
from matrixwatch.alerts.notifiers.render import markdown, render
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert

RETRYABLE = frozenset({-1})
# 群机器人配置说明, 消息发送频率限制 (https://developer.work.weixin.qq.com/document/path/91770):
# "每个机器人发送的消息不能超过20条/分钟"; over it the answer is the global error code
# 45009 "api freq out of limit" (接口调用超过限制). 访问频率限制
# (https://developer.work.weixin.qq.com/document/path/90454): "按分钟拦截则被屏蔽60秒".
RATE_LIMIT_COOLDOWN = 60.0
RATE_LIMITS: Mapping[int, float] = {45009: RATE_LIMIT_COOLDOWN}
MAX_BYTES = 4096  # documented limit of markdown.content
_COLOR = {"blue": "comment", "yellow": "warning", "orange": "warning", "red": "warning"}


def _fit(text: str, limit: int) -> str:
    b = text.encode("utf-8")
    return text if len(b) <= limit else b[: limit - 3].decode("utf-8", "ignore") + "…"


def build(alert: Alert, channel: Channel, registry: Registry | None) -> list[dict[str, Any]]:
    """The payloads to send in order: the markdown card, then the @-mobile text if any."""
    r = render(alert, registry)
    body = markdown(r, heading=False)
    head = f'### <font color="{_COLOR.get(r.severity, "warning")}">{r.title}</font>'
    mentions = "".join(f"<@{u}>" for u in channel.at_userids)
    if channel.at_all:
        mentions += "<@all>"
    tail = f"\n{mentions}" if mentions else ""
    content = _fit(f"{head}\n{body}", MAX_BYTES - len(tail.encode())) + tail
    out: list[dict[str, Any]] = [{"msgtype": "markdown", "markdown": {"content": content}}]
    if channel.at_mobiles:
        out.append({"msgtype": "text", "text": {
            "content": _fit(r.title, 2000), "mentioned_mobile_list": list(channel.at_mobiles)}})
    return out


async def send(alert: Alert, channel: Channel, registry: Registry | None,
               client: HttpClient, now: float) -> None:
    url = channel.endpoint()
    for payload in build(alert, channel, registry):
        data = await post(client, url, dumps(payload))
        check_code(data, "errcode", RETRYABLE, "errmsg", RATE_LIMITS)
