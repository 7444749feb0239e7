"""SMTP email through the standard library, against a tiny SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
from email import policy

import pytest

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import DeliveryFailed, deliver
from tests.alerts.notifiers.conftest import SMTPStub, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY


def config(stub: SMTPStub, password: str | None = None) -> ChannelConfig:
    return ChannelConfig.from_text(f"""
channels:
  mail:
    type: email
    host: 127.0.0.1
    port: {stub.port}
    tls: none
    username: {stub.user}
    password_env: SMTP_PW
    sender: matrixwatch@example.gov.cn
    to: [duty@example.gov.cn, chief@example.gov.cn]
    retry: {FAST_RETRY}
""", env={"SMTP_PW": password or stub.password})


async def test_email_content(smtp_stub: SMTPStub) -> None:
    await deliver(sample_alert(), "mail", config(smtp_stub))
    assert smtp_stub.auths == ["alerts"]
    [m] = smtp_stub.messages
    assert m["from"] == "matrixwatch@example.gov.cn"
    assert m["to"] == ["duty@example.gov.cn", "chief@example.gov.cn"]
    msg = email.message_from_bytes(m["data"], policy=policy.default)
    assert msg["Subject"] == "【橙色预警】甲市西区发布 声量突增"
    assert msg["X-Matrixwatch-Alert-Id"] == "a1b2c3d4e5f6a7b8c9d0e1f2"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    for part in ("时间：2026-11-02 14:03:00（北京时间）", "账号：甲市西区发布（9100000112）",
                 "单位：甲市西区人民政府 · 区县级", "本时段条数 11",
                 "https://weibo.com/9100000112/Pq1", "规则：volume_spike"):
        assert part in text, part
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "<a href='https://weibo.com/9100000112/Pq1'>" in html


async def test_temporary_failure_is_retried(smtp_stub: SMTPStub) -> None:
    smtp_stub.fail_mail = ["451 try again later"]
    await deliver(sample_alert(), "mail", config(smtp_stub))
    assert len(smtp_stub.messages) == 1 and smtp_stub.auths == ["alerts", "alerts"]


async def test_permanent_failure_and_bad_password(smtp_stub: SMTPStub) -> None:
    smtp_stub.fail_mail = ["550 relay denied"]
    with pytest.raises(DeliveryFailed, match="smtp_550") as e:
        await deliver(sample_alert(), "mail", config(smtp_stub))
    assert e.value.attempts == 1
    with pytest.raises(DeliveryFailed, match="smtp_auth_535") as e:
        await deliver(sample_alert(), "mail", config(smtp_stub, password="hunter2-wrong"))
    assert "hunter2-wrong" not in str(e.value) and smtp_stub.messages == []
