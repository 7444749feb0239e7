"""A hand-made matrix and a month of its events, with every expected number worked out.

Period 2026-10 ([2026-10-01, 2026-11-01) Asia/Shanghai). Accounts:

* P  测试省发布 (province): posts p1 on 10-01.
* A  甲市发布 (city, under P): posts a1 (政务) and a2 (民生, contains 再接再励), reposts p1
  (ar1, 民生 root); 3 netizen questions (c1 answered in 2 h and resolved, c4 answered
  after 30 h under the post, c3 never); subordinate A1 and netizen n3 repost a1.
  October 2025: 2 originals with 1 repost + 1 comment each.
* B  乙市发布 (city, under P): posts b1 (B类 心灵鸡汤) and b2 (政务). October 2025: 1
  original with 2 reposts + 2 comments.
* A1 甲东发布 (county, under A): reposts a1, posts on 10-20 and 10-25 only.
* AP 平安甲市 (department, under A, unit 甲市公安局) and AP2 甲市警方 (same unit with a
  space: a duplicate); AP posts on 10-05 (followed by a 2-week silence) and 10-28.
"""

from __future__ import annotations

from typing import Any

import yaml

from matrixwatch.registry import Registry
from matrixwatch.streams.records import Event

P, A, B, A1, AP, AP2 = ("9200000001", "9200000011", "9200000012", "9200000111",
                        "9200000112", "9200000113")
N1, N2, N3 = "8000000001", "8000000002", "8000000003"

REGISTRY: dict[str, Any] = yaml.safe_load(f"""
accounts:
  - {{id: "{P}", platform: weibo, name: 测试省发布, unit: 测试省人民政府新闻办公室,
     level: province}}
  - {{id: "{A}", platform: weibo, name: 甲市发布, unit: 甲市人民政府新闻办公室, level: city,
     parent: "{P}", verified_at: "2026-01-01"}}
  - {{id: "{B}", platform: weibo, name: 乙市发布, unit: 乙市人民政府新闻办公室, level: city,
     parent: "{P}"}}
  - {{id: "{A1}", platform: weibo, name: 甲东发布, unit: 甲市东区人民政府新闻办公室,
     level: county, parent: "{A}"}}
  - {{id: "{AP}", platform: weibo, name: 平安甲市, unit: 甲市公安局, level: department,
     parent: "{A}"}}
  - {{id: "{AP2}", platform: weibo, name: 甲市警方, unit: 甲市 公安局, level: department,
     parent: "{A}"}}
units:
  - {{name: 甲市东区人民政府新闻办公室, parent_unit: 甲市人民政府新闻办公室}}
  - {{name: 甲市西区人民政府新闻办公室, parent_unit: 甲市人民政府新闻办公室}}
  - {{name: 甲市公安局, parent_unit: 甲市人民政府新闻办公室}}
""")


def registry() -> Registry:
    return Registry.from_dict(REGISTRY)


def ev(eid: str, kind: str, author: str, when: str, text: str = "", **kw: Any
       ) -> dict[str, Any]:
    """A stored event dict (Event.asdict), ``when`` local time "YYYY-MM-DD HH:MM"."""
    ts = when.replace(" ", "T") + ":00+08:00"
    owner = kw.pop("owner_id", author)
    return Event(platform="weibo", id=eid, kind=kind, account_id=author, owner_id=owner,
                 text=text, created_at=ts, collected_at=ts, **kw).asdict()


def repost(eid: str, author: str, when: str, root: str, root_author: str, root_text: str,
           text: str = "转发微博", **kw: Any) -> dict[str, Any]:
    return ev(eid, "repost", author, when, text, owner_id=root_author, root_id=root,
              root_account_id=root_author, root_text=root_text, **kw)


def comment(eid: str, author: str, when: str, post: str, owner: str, text: str,
            **kw: Any) -> dict[str, Any]:
    return ev(eid, "comment", author, when, text, owner_id=owner, post_id=post, **kw)


P1_TEXT = "【通知】关于调整公交线路的通告"
EVENTS: list[dict[str, Any]] = [
    ev("p1", "post", P, "2026-10-01 09:00", P1_TEXT, followers_count=90000),
    # A
    ev("a1", "post", A, "2026-10-02 10:00", "【市政府召开常务会议】研究部署安全生产工作。",
       reposts_count=3, comments_count=2, attitudes_count=10, followers_count=1000),
    repost("ar1", A, "2026-10-03 08:00", "p1", P, P1_TEXT, text="转发微博//@乙市发布:再接再励",
           followers_count=1100),
    ev("a2", "post", A, "2026-10-12 10:00", "明天起气温下降，请注意保暖，再接再励。",
       reposts_count=0, comments_count=5, attitudes_count=4, followers_count=1300),
    comment("c1", N1, "2026-10-02 11:00", "a1", A, "请问什么时候开始？"),
    comment("c2", N2, "2026-10-02 12:00", "a1", A, "点赞"),
    comment("r1", A, "2026-10-02 13:00", "a1", A, "您好，已解决，感谢关注。", reply_to_id="c1",
            followers_count=1000),
    comment("c4", N1, "2026-10-03 08:00", "a1", A, "请问在哪里办理"),
    comment("r2", A, "2026-10-04 14:00", "a1", A, "您好，请拨打热线咨询。"),
    comment("c5", N2, "2026-10-04 15:00", "a1", A, "怎么又是这样？", reply_to_id="c2"),
    comment("c3", N1, "2026-10-12 11:00", "a2", A, "停车怎么办？"),
    repost("x1", A1, "2026-10-02 11:30", "a1", A, "【市政府召开常务会议】研究部署安全生产工作。"),
    repost("x2", N3, "2026-10-02 14:00", "a1", A, "【市政府召开常务会议】研究部署安全生产工作。"),
    # A, October 2025 (year-on-year)
    ev("a-old1", "post", A, "2025-10-08 10:00", "旧文一", reposts_count=1, comments_count=1),
    ev("a-old2", "post", A, "2025-10-09 10:00", "旧文二", reposts_count=1, comments_count=1),
    # B
    ev("b1", "post", B, "2026-10-05 09:00", "早安！愿你被这个世界温柔以待。", reposts_count=1,
       comments_count=1, followers_count=5000),
    ev("b2", "post", B, "2026-10-20 09:00", "第五次全国经济普查主要数据公报发布。",
       reposts_count=1, comments_count=0, followers_count=5000),
    ev("b-old", "post", B, "2025-10-10 09:00", "旧文", reposts_count=2, comments_count=2),
    # A1: silent from 10-02 to 10-20
    ev("d1", "post", A1, "2026-10-20 09:00", "今天阴有小雨，出门记得带伞。"),
    ev("d2", "post", A1, "2026-10-25 09:00", "周末去哪玩？这几个景区值得一去。"),
    # AP: 09-25, 10-01, 10-05, then 15 days of silence, 10-20, 10-28
    ev("e0", "post", AP, "2026-09-25 10:00", "反诈提醒：不要向陌生账户转账。"),
    ev("e1", "post", AP, "2026-10-01 10:00", "警情通报：某路口发生交通事故。"),
    ev("e2", "post", AP, "2026-10-05 10:00", "提醒：夜间出行注意安全。"),
    ev("e3", "post", AP, "2026-10-20 10:00", "警方提醒：谨防电信诈骗。"),
    ev("e4", "post", AP, "2026-10-28 10:00", "交通管制：马拉松比赛期间请绕行。"),
]
