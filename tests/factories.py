"""Hand-made native Weibo objects (open API v2 shapes) with synthetic ids and names."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=CST)

REGISTRY_YAML = """
accounts:
  - {id: "9100000001", platform: weibo, name: 测试省发布, unit: 测试省人民政府新闻办公室, level: province, parent: null, active: true}
  - {id: "9100000011", platform: weibo, name: 甲市发布, unit: 甲市人民政府新闻办公室, level: city, parent: "9100000001", active: true}
  - {id: "9100000012", platform: weibo, name: 乙市发布, unit: 乙市人民政府新闻办公室, level: city, parent: "9100000001", active: true}
  - {id: "9100000013", platform: weibo, name: 丙市发布, unit: 丙市人民政府新闻办公室, level: city, parent: "9100000001", active: true}
  - {id: "9100000014", platform: weibo, name: 丁市发布, unit: 丁市人民政府新闻办公室, level: city, parent: "9100000001", active: false}
  - {id: "9100000111", platform: weibo, name: 甲市东区发布, unit: 甲市东区人民政府, level: county, parent: "9100000011", active: true}
  - {id: "9100000112", platform: weibo, name: 甲市西区发布, unit: 甲市西区人民政府, level: county, parent: "9100000011", active: true}
units:
  - {name: 甲市东区人民政府, parent_unit: 甲市人民政府}
  - {name: 甲市南区人民政府, parent_unit: 甲市人民政府}
"""

NAMES = {
    "9100000001": "测试省发布", "9100000011": "甲市发布", "9100000012": "乙市发布",
    "9100000013": "丙市发布", "9100000014": "丁市发布", "9100000111": "甲市东区发布",
    "9100000112": "甲市西区发布",
}


def weibo_time(t: datetime) -> str:
    return t.strftime("%a %b %d %H:%M:%S %z %Y")


def user(uid: str) -> dict[str, Any]:
    return {"id": int(uid), "idstr": uid, "screen_name": NAMES.get(uid, f"网友{uid[-4:]}"),
            "verified": uid in NAMES, "verified_type": 1 if uid in NAMES else -1,
            "followers_count": 1000}


def status(sid: int, uid: str, t: datetime, text: str, **extra: Any) -> dict[str, Any]:
    return {"created_at": weibo_time(t), "id": sid, "idstr": str(sid), "mid": str(sid),
            "text": text, "user": user(uid), "reposts_count": 0, "comments_count": 0,
            "attitudes_count": 0, **extra}


def repost(sid: int, uid: str, t: datetime, root: dict[str, Any], text: str = "转发微博",
           pid: int | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"retweeted_status": root}
    if pid is not None:
        extra["pid"] = pid
    return status(sid, uid, t, text, **extra)


def comment(cid: int, uid: str, t: datetime, on: dict[str, Any], text: str) -> dict[str, Any]:
    return {"created_at": weibo_time(t), "id": cid, "idstr": str(cid), "mid": str(cid),
            "text": text, "user": user(uid), "status": on}
