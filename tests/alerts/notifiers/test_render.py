"""What people read: Beijing time, account, unit, numbers, samples, rule."""

from __future__ import annotations

from matrixwatch.alerts.notifiers.render import markdown, plain, post_link, render
from matrixwatch.alerts.text import split_sample
from tests.alerts.helpers import REG
from tests.alerts.notifiers.conftest import sample_alert


def test_fields_in_beijing_time() -> None:
    r = render(sample_alert())
    fields = dict(r.fields)
    assert fields["时间"] == "2026-11-02 14:03:00（北京时间）"  # stored in UTC
    assert fields["账号"] == "甲市西区发布（9100000112）"
    assert fields["单位"] == "甲市西区人民政府 · 区县级"
    assert fields["数值"] == "本时段条数 11，基线 0.05，统计量(-log10 p) 20.13"
    assert fields["规则"] == "volume_spike（声量突增）"
    assert r.samples == [("停水三天了没人管，太气人了", "https://weibo.com/9100000112/Pq1"),
                         ("好的", None)]
    md = markdown(r)
    assert "1. [停水三天了没人管，太气人了](https://weibo.com/9100000112/Pq1)" in md
    assert "2. 好的" in md
    assert plain(r).startswith("【橙色预警】甲市西区发布 声量突增\n")


def test_registry_fills_missing_account_fields_and_post_links() -> None:
    a = sample_alert(account_name=None, unit=None, level=None, post_id="4567890123456789")
    fields = dict(render(a, REG).fields)
    assert fields["单位"] == "甲市西区人民政府 · 区县级"
    assert post_link(a) == "https://weibo.com/9100000112/Jsu8cevgF"
    assert post_link(sample_alert(post_id="p1")) is None


def test_linkage_percentages() -> None:
    a = sample_alert(type="linkage_low", rule="linkage_low",
                     values={"rate": 0.5, "linked": 1.0, "expected": 2.0, "threshold": 0.6})
    assert dict(render(a).fields)["数值"] == "联动率 50%，已转发 1，应转发 2，要求 60%"


def test_split_sample() -> None:
    assert split_sample("文本 https://x.cn/a") == ("文本", "https://x.cn/a")
    assert split_sample("https://x.cn/a") == ("", "https://x.cn/a")
    assert split_sample("没有链接") == ("没有链接", None)
