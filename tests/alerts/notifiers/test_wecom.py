"""WeCom group robot: markdown with <@userid>, then a text message for @-by-mobile."""

from __future__ import annotations

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, deliver
from tests.alerts.notifiers.conftest import HTTPStub, Request, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def config(url: str) -> ChannelConfig:
    return ChannelConfig.from_text(f"""
channels:
  wx:
    type: wecom
    url: {url}/cgi-bin/webhook/send
    token_env: WX_KEY
    at_userids: [zhangsan]
    at_mobiles: ["13800000001"]
    trust_env: false
    retry: {FAST_RETRY}
""", env={"WX_KEY": KEY})


def wecom(req: Request) -> tuple[int, dict]:
    if req.query.get("key") != [KEY]:
        return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
    body = req.json()
    if body["msgtype"] == "markdown":
        if len(body["markdown"]["content"].encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "content exceed max length"}
    elif body["msgtype"] != "text":
        return 200, {"errcode": 40008, "errmsg": "invalid message type"}
    return 200, {"errcode": 0, "errmsg": "ok"}


async def test_markdown_and_mentions(http_stub: HTTPStub) -> None:
    http_stub.handler = wecom
    await deliver(sample_alert(), "wx", config(http_stub.url))
    md, text = (r.json() for r in http_stub.requests)
    content = md["markdown"]["content"]
    assert content.startswith('### <font color="warning">【橙色预警】甲市西区发布 声量突增</font>')
    assert "2026-11-02 14:03:00（北京时间）" in content and "甲市西区人民政府" in content
    assert "(https://weibo.com/9100000112/Pq1)" in content
    assert content.rstrip().endswith("<@zhangsan>")
    assert text == {"msgtype": "text", "text": {
        "content": "【橙色预警】甲市西区发布 声量突增", "mentioned_mobile_list": ["13800000001"]}}


async def test_long_messages_fit_the_limit(http_stub: HTTPStub) -> None:
    http_stub.handler = wecom
    await deliver(sample_alert(message="很长的说明" * 2000), "wx", config(http_stub.url))
    content = http_stub.requests[0].json()["markdown"]["content"]
    assert len(content.encode()) <= 4096 and content.endswith("<@zhangsan>")


async def test_invalid_key_is_permanent(http_stub: HTTPStub) -> None:
    http_stub.handler = lambda r: (200, {"errcode": 93000, "errmsg": f"invalid key {KEY}"})
    with pytest.raises(DeliveryFailed) as e:
        await deliver(sample_alert(), "wx", config(http_stub.url))
    assert len(http_stub.requests) == 1 and KEY not in str(e.value)
