"""channels.yaml: secrets only from env or files, never printed; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrixwatch.alerts.channels import ChannelConfig, ChannelError, Secret
from matrixwatch.alerts.dispatch import DeliveryFailed, deliver
from tests.alerts.notifiers.conftest import sample_alert

ENV = {"MW_DINGTALK_TOKEN": "tok-abc", "MW_DINGTALK_SECRET": "SECdef", "MW_WECOM_KEY": "k-123",
       "MW_FEISHU_HOOK": "hook-456", "MW_FEISHU_SECRET": "fs-789",
       "MW_ALERT_WEBHOOK_URL": "https://hooks.example.org/x/T0K",
       "MW_ALERT_WEBHOOK_SECRET": "whsec-42",
       "MW_SMTP_PASSWORD": "pw-000"}


def test_packaged_file_disabled_without_env_enabled_with_it() -> None:
    off = ChannelConfig.load(env={})
    assert set(off.channels) == {"duty_dingtalk", "duty_wecom", "duty_feishu", "ops_webhook",
                                 "duty_email"}
    assert off.enabled() == []
    assert off.channels["duty_dingtalk"].missing == ("env MW_DINGTALK_TOKEN",
                                                     "env MW_DINGTALK_SECRET")
    on = ChannelConfig.load(env=ENV)
    assert on.enabled() == list(on.channels)
    assert on.channels["duty_dingtalk"].endpoint() == \
        "https://oapi.dingtalk.com/robot/send?access_token=tok-abc"
    assert on.channels["duty_wecom"].endpoint().endswith("/webhook/send?key=k-123")
    assert on.channels["duty_feishu"].endpoint() == \
        "https://open.feishu.cn/open-apis/bot/v2/hook/hook-456"
    assert on.channels["ops_webhook"].endpoint() == ENV["MW_ALERT_WEBHOOK_URL"]
    text = repr(on.channels) + str(on) + repr(on.routes)
    for value in ENV.values():
        assert value not in text
    assert repr(Secret("x")) == "Secret('***')"


def test_env_override_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "dd.secret"
    secret.write_text("SECfromfile\n", encoding="utf-8")
    f = tmp_path / "channels.yaml"
    f.write_text(f"""
channels:
  dd: {{type: dingtalk, token_file: {secret}, secret_file: {tmp_path / 'missing'}}}
  dd2: {{type: dingtalk, token_file: {secret}}}
""", encoding="utf-8")
    cfg = ChannelConfig.load(env={"MW_ALERT_CHANNELS": str(f)})
    assert cfg.source == str(f)
    assert not cfg.channels["dd"].enabled
    assert cfg.channels["dd"].missing[0].startswith("file ")
    assert cfg.channels["dd2"].enabled and cfg.channels["dd2"].token == Secret("SECfromfile")
    assert cfg.channels["dd2"].verify is True  # TLS verification on by default


@pytest.mark.parametrize(("text", "expected"), [
    ("channels:\n  a: {type: slack}\n", "c.yaml:2: channels.a.type: expected one of"),
    ("channels:\n  a:\n    type: dingtalk\n    token: abc\n",
     "c.yaml:4: channels.a.token: unknown key for dingtalk"),
    ("channels:\n  a: {type: dingtalk}\n", "c.yaml:2: channels.a: dingtalk channels need "
                                           "token_env"),
    ("channels:\n  a: {type: webhook}\n", "c.yaml:2: channels.a: webhook channels need exactly"),
    ("channels:\n  a: {type: webhook, url: ftp://x}\n", "c.yaml:2: channels.a.url: expected an"),
    ("channels:\n  a: {type: email, host: h, to: [x@y]}\n", "c.yaml:2: channels.a.sender:"),
    ("channels:\n  a: {type: webhook, url: 'http://h', retry: {attempts: 0}}\n",
     "c.yaml:2: channels.a.retry.attempts: expected a whole number >= 1"),
    ("channels: {}\nroutes:\n  - {channels: [ghost]}\n",
     "c.yaml:3: channels: unknown channel 'ghost'"),
    ("chanels: {}\n", "c.yaml:1: chanels: unknown key"),
])
def test_errors(text: str, expected: str) -> None:
    with pytest.raises(ChannelError) as e:
        ChannelConfig.from_text(text, env={}, file="c.yaml")
    assert str(e.value).startswith(expected), str(e.value)


async def test_delivery_to_a_disabled_channel_is_an_error_not_silence() -> None:
    cfg = ChannelConfig.load(env={"MW_DINGTALK_TOKEN": "tok-abc"})
    with pytest.raises(DeliveryFailed, match="disabled: missing env MW_DINGTALK_SECRET") as e:
        await deliver(sample_alert(), "duty_dingtalk", cfg)
    assert "tok-abc" not in str(e.value)
    with pytest.raises(DeliveryFailed, match="unknown_channel"):
        await deliver(sample_alert(), "nope", cfg)
