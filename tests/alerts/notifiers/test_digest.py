"""A quiet-hours digest on every platform: same facts, each platform's markup."""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta
from email import policy

from matrixwatch.alerts.channels import ChannelConfig
from matrixwatch.alerts.dispatch import Dispatcher, deliver
from matrixwatch.alerts.notifiers import dingtalk, feishu, smtp, webhook, wecom
from matrixwatch.alerts.notifiers.render import markdown, plain, render
from matrixwatch.streams.records import Alert
from tests.alerts.helpers import REG, rule
from tests.alerts.notifiers.conftest import CST, NOW, HTTPStub, SMTPStub, sample_alert
from tests.alerts.notifiers.helpers import FAST_RETRY

LINK = "https://weibo.com/9100000112/Pq1"
CHANNELS = ChannelConfig.from_text(f"""
channels:
  ding: {{type: dingtalk, url: "http://127.0.0.1:9/robot/send", token_env: T}}
  wx: {{type: wecom, url: "http://127.0.0.1:9/cgi-bin/webhook/send", token_env: T}}
  fs: {{type: feishu, url: "http://127.0.0.1:9/open-apis/bot/v2/hook", token_env: T}}
  hook: {{type: webhook, url_env: HOOK_URL, trust_env: false, retry: {FAST_RETRY}}}
  mail: {{type: email, host: 127.0.0.1, tls: none, sender: mw@example.gov.cn,
          to: [duty@example.gov.cn], retry: {FAST_RETRY}}}
""", env={"T": "tok", "HOOK_URL": "http://127.0.0.1:9/hook"})
RULE = rule("type: spike\nrealert: 0\n"
            "quiet_hours: {start: '23:00', end: '07:00', min_severity: orange}\n"
            "routing:\n  - {channels: [ding, wx, fs, hook, mail]}\n", name="volume_spike")


def digest(channels: ChannelConfig = CHANNELS, channel: str = "ding") -> Alert:
    d = Dispatcher([RULE], channels)
    night = datetime(2026, 11, 3, 2, 15, tzinfo=CST)
    states: dict = {}
    for i, sev in enumerate(["yellow", "blue", "yellow"]):
        a = sample_alert(id=f"held{i}", severity=sev, post_id=f"p{i}",
                         timestamp=(night + timedelta(minutes=10 * i)).isoformat())
        k = Dispatcher.key(a)
        states[k], dec = d.decide(states.get(k), a)
        assert dec.held
    _, digests = d.flush(states.items(), datetime(2026, 11, 3, 7, 0, tzinfo=CST).timestamp())
    return next(g.alert for g in digests if g.channel == channel)


def test_rendered_fields_and_lines() -> None:
    a = digest()
    r = render(a)
    f = dict(r.fields)
    assert r.title == "【静默时段汇总】暂缓 3 条告警（11-02 23:00 至 11-03 07:00）"
    assert f["时段"] == "2026-11-02 23:00 至 2026-11-03 07:00（北京时间）"
    assert f["合计"].startswith("3 条")
    assert f["分布"] == "volume_spike（声量突增）黄色 2 条；volume_spike（声量突增）蓝色 1 条"
    text, url = r.samples[0]
    assert url == LINK
    for part in ("黄色", "甲市西区发布（9100000112）", "甲市西区人民政府 · 区县级",
                 "本时段条数 11", "2026-11-03 02:15"):
        assert part in text
    assert [t[:2] for t, _ in r.samples] == ["黄色", "黄色", "蓝色"]
    md = markdown(r)
    assert "**暂缓的告警**：" in md and f"]({LINK})" in md
    assert plain(r).startswith("【静默时段汇总】暂缓 3 条告警")


def test_every_platform_renders_it() -> None:
    a = digest()
    _, ding = dingtalk.build(a, CHANNELS.get("ding"), REG, NOW)
    assert ding["msgtype"] == "markdown" and "声量突增）黄色 2 条" in ding["markdown"]["text"]
    [wx] = wecom.build(a, CHANNELS.get("wx"), REG)
    assert wx["markdown"]["content"].startswith('### <font color="warning">【静默时段汇总】')
    card = feishu.card(a, CHANNELS.get("fs"), REG)
    assert card["header"]["template"] == "yellow"
    assert "2026-11-03 02:15" in card["elements"][0]["text"]["content"]
    assert card["elements"][1]["actions"][0]["url"] == LINK
    _, body, headers = webhook.build(a, CHANNELS.get("hook"), REG)
    assert headers["X-Matrixwatch-Event"] == "digest" and headers["X-Matrixwatch-Alert-Id"] == a.id
    payload = json.loads(body)
    assert payload["digest"]["total"] == 3
    assert payload["digest"]["window_end"] == "2026-11-03 07:00:00"
    assert payload["digest"]["counts"][0] == {"rule": "volume_spike", "type": "spike",
                                              "severity": "yellow", "count": 2}
    assert payload["digest"]["top"][0]["url"] == LINK
    msg = smtp.build(a, CHANNELS.get("mail"), REG)
    assert msg["Subject"].startswith("【静默时段汇总】")
    html = msg.get_body(("html",)).get_content()
    assert LINK in html and "分布" in html


async def test_sent_through_the_channel_path(http_stub: HTTPStub, smtp_stub: SMTPStub) -> None:
    http_stub.handler = lambda r: (204, b"")
    cfg = ChannelConfig.from_text(f"""
channels:
  hook: {{type: webhook, url_env: HOOK_URL, trust_env: false, retry: {FAST_RETRY}}}
  mail: {{type: email, host: 127.0.0.1, port: {smtp_stub.port}, tls: none,
          sender: mw@example.gov.cn, to: [duty@example.gov.cn], retry: {FAST_RETRY}}}
""", env={"HOOK_URL": f"{http_stub.url}/hook"})
    r = rule("type: spike\nrealert: 0\n"
             "quiet_hours: {start: '23:00', end: '07:00', min_severity: orange}\n"
             "routing:\n  - {channels: [hook, mail]}\n", name="volume_spike")
    d = Dispatcher([r], cfg)
    a = sample_alert(severity="yellow", timestamp="2026-11-03T02:15:00+08:00")
    st, _ = d.decide(None, a)
    _, digests = d.flush([("k", st)], datetime(2026, 11, 3, 7, 0, tzinfo=CST).timestamp())
    for g in digests:
        await deliver(g.alert, g.channel, cfg, REG)
    assert http_stub.requests[0].json()["digest"]["total"] == 1
    msg = email.message_from_bytes(smtp_stub.messages[0]["data"], policy=policy.default)
    assert "暂缓 1 条告警" in msg["Subject"]
