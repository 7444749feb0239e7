"""A self-contained simulated government Weibo matrix and its feed.

Why it exists: ``matrixwatch run`` needs something to watch without network access,
benchmarks need millions of realistic events, and end-to-end tests need scenarios whose
ground truth is known (who reposted what and when, where the negative surges are).

Two parts:

* :func:`build_matrix` makes a province → city → county account tree plus city/province
  departments, named the way real 政务 accounts are (浙江发布 → 杭州发布 → 西湖发布,
  平安杭州, 杭州交警 …). Every id is synthetic (10 digits starting with ``9``) and every
  account carries ``synthetic: true``.
* :class:`Simulator` replays that matrix as native Weibo open-API v2 objects (status,
  repost with ``retweeted_status``/``pid``, ``comments/show`` items), in event-time order
  (a small configurable share is delivered a few minutes late), and records what it did in
  :attr:`Simulator.truth`.

Everything is driven by ``random.Random(seed)``: the same arguments give byte-identical
output. Nothing is read from disk; the only I/O is in :func:`write_jsonl` and
:func:`write_registry`.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

try:  # tzdata is a dependency of the venv, but a fixed offset is equivalent for China.
    from zoneinfo import ZoneInfo

    TZ: Any = ZoneInfo("Asia/Shanghai")
except Exception:  # pragma: no cover - only on systems without tz data
    TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

__all__ = [
    "TZ",
    "JsonlEncoder",
    "Matrix",
    "PostTruth",
    "QuestionTruth",
    "Simulator",
    "SurgeTruth",
    "Truth",
    "build_matrix",
    "weibo_time",
    "write_jsonl",
    "write_registry",
]

CST_OFFSET = 8 * 3600
DAY = 86400
DEFAULT_START = datetime(2026, 11, 21, 0, 0, 0, tzinfo=TZ)

# --------------------------------------------------------------------------------------
# Place names: one real province (浙江) with its real cities and county-level divisions.
# Extra cities/counties beyond these are given synthetic two-character names.
# --------------------------------------------------------------------------------------

PROVINCE_SHORT = "浙江"
PROVINCE_FULL = "浙江省"
PROVINCE_CODE = "33"

CITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("杭州市", ("上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "富阳区",
               "临安区", "临平区", "钱塘区", "桐庐县", "淳安县", "建德市")),
    ("宁波市", ("海曙区", "江北区", "北仑区", "镇海区", "鄞州区", "奉化区", "象山县",
               "宁海县", "余姚市", "慈溪市")),
    ("温州市", ("鹿城区", "龙湾区", "瓯海区", "洞头区", "永嘉县", "平阳县", "苍南县",
               "文成县", "泰顺县", "瑞安市", "乐清市", "龙港市")),
    ("嘉兴市", ("南湖区", "秀洲区", "嘉善县", "海盐县", "海宁市", "平湖市", "桐乡市")),
    ("湖州市", ("吴兴区", "南浔区", "德清县", "长兴县", "安吉县")),
    ("绍兴市", ("越城区", "柯桥区", "上虞区", "新昌县", "诸暨市", "嵊州市")),
    ("金华市", ("婺城区", "金东区", "武义县", "浦江县", "磐安县", "兰溪市", "义乌市",
               "东阳市", "永康市")),
    ("衢州市", ("柯城区", "衢江区", "常山县", "开化县", "龙游县", "江山市")),
    ("舟山市", ("定海区", "普陀区", "岱山县", "嵊泗县")),
    ("台州市", ("椒江区", "黄岩区", "路桥区", "三门县", "天台县", "仙居县", "温岭市",
               "临海市", "玉环市")),
    ("丽水市", ("莲都区", "青田县", "缙云县", "遂昌县", "松阳县", "云和县", "庆元县",
               "景宁畲族自治县", "龙泉市")),
)

_ZONES: tuple[tuple[str, str, str], ...] = (
    ("高新区", "高新", "高新技术产业开发区"), ("经开区", "经开", "经济技术开发区"),
    ("新区", "新区", "新区"), ("度假区", "度假区", "旅游度假区"),
    ("综保区", "综保区", "综合保税区"),
)
_SYLLABLES = "安宁平清兴和丰泰阳江山溪源临新德永嘉明华云川凤桥林泉湖东南西北"

# Department pool: kind, account-name patterns, unit at province / city level.
# {p} = short place name (杭州), {P} = full place name (杭州市).
_DEPTS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("公安", ("平安{p}", "{p}公安"), "{P}公安厅", "{P}公安局"),
    ("交警", ("{p}交警",), "{P}公安厅交通管理局", "{P}公安局交通警察支队"),
    ("应急管理", ("{p}应急管理",), "{P}应急管理厅", "{P}应急管理局"),
    ("卫健委", ("健康{p}", "{p}卫健委"), "{P}卫生健康委员会", "{P}卫生健康委员会"),
    ("文旅", ("{p}文旅", "{p}文广旅游"), "{P}文化和旅游厅", "{P}文化广电旅游局"),
    ("共青团", ("共青团{P}委",), "共青团{P}委员会", "共青团{P}委员会"),
    ("气象", ("{p}气象",), "{P}气象局", "{P}气象局"),
    ("消防", ("{p}消防",), "{P}消防救援总队", "{P}消防救援支队"),
    ("市场监管", ("{p}市场监管",), "{P}市场监督管理局", "{P}市场监督管理局"),
    ("生态环境", ("{p}生态环境",), "{P}生态环境厅", "{P}生态环境局"),
    ("教育", ("{p}教育发布",), "{P}教育厅", "{P}教育局"),
    ("人社", ("{p}人社",), "{P}人力资源和社会保障厅", "{P}人力资源和社会保障局"),
    ("税务", ("{p}税务",), "国家税务总局{P}税务局", "国家税务总局{P}税务局"),
    ("民政", ("{p}民政",), "{P}民政厅", "{P}民政局"),
    ("住建", ("{p}住建",), "{P}住房和城乡建设厅", "{P}住房和城乡建设局"),
    ("城管", ("{p}城管",), "{P}综合行政执法指导办公室", "{P}综合行政执法局"),
)
DEPARTMENT_KINDS: tuple[str, ...] = tuple(d[0] for d in _DEPTS)


def _short(full: str) -> str:
    """杭州市 → 杭州, 景宁畲族自治县 → 景宁 (how account names abbreviate places)."""
    if full.endswith("自治县"):
        return full[:2]
    if len(full) > 2 and full[-1] in "省市区县":
        return full[:-1]
    return full


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

ACCOUNT_FIELDS: tuple[str, ...] = (
    "id", "platform", "name", "unit", "level", "parent", "active", "synthetic",
)


@dataclass
class Matrix:
    """A matrix.yaml in memory: ``accounts`` (exactly the registry fields) and ``units``.

    ``meta`` carries simulator-only hints per account id (department kind, place names)
    and is never written to YAML; a Matrix loaded from YAML gets them inferred.
    """

    accounts: list[dict[str, Any]]
    units: list[dict[str, Any]]
    meta: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @cached_property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {a["id"]: a for a in self.accounts}

    @cached_property
    def _children(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for a in self.accounts:
            if a.get("parent") is not None:
                out.setdefault(a["parent"], []).append(a)
        return out

    def superior_of(self, account_id: str) -> dict[str, Any] | None:
        """The parent account (a registry dict) or None for a root."""
        parent = self.by_id[account_id].get("parent")
        return self.by_id.get(parent) if parent is not None else None

    def subordinates(self, account_id: str, active_only: bool = True) -> list[dict[str, Any]]:
        """Direct subordinates, in registry order; closed ones dropped unless asked."""
        kids = self._children.get(account_id, [])
        return [k for k in kids if k["active"]] if active_only else list(kids)

    def ancestors(self, account_id: str) -> list[str]:
        """Ids of all superiors, nearest first."""
        out: list[str] = []
        cur = self.by_id[account_id].get("parent")
        while cur is not None and cur not in out:
            out.append(cur)
            cur = self.by_id[cur].get("parent")
        return out

    def to_yaml(self) -> str:
        """A valid matrix.yaml (ids stay quoted strings; Chinese kept readable)."""
        doc = {
            "accounts": [{k: a.get(k) for k in ACCOUNT_FIELDS} for a in self.accounts],
            "units": [{"name": u["name"], "parent_unit": u.get("parent_unit")}
                      for u in self.units],
        }
        head = ("# Synthetic 政务新媒体矩阵 generated by matrixwatch.collectors.simulator.\n"
                "# All ids are synthetic; no account here exists on Weibo.\n")
        return head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=200)

    @classmethod
    def from_yaml(cls, text: str) -> Matrix:
        """A matrix.yaml, read with the registry's rules (a quoted "false" is false)."""
        from matrixwatch.registry import parse_flag

        doc = yaml.safe_load(text) or {}
        accounts = [
            {**{k: a.get(k) for k in ACCOUNT_FIELDS},
             "id": str(a["id"]),
             "parent": None if a.get("parent") is None else str(a["parent"]),
             "active": parse_flag(a.get("active"), True, f"accounts[{i}]", "active"),
             "synthetic": parse_flag(a.get("synthetic"), False, f"accounts[{i}]", "synthetic")}
            for i, a in enumerate(doc.get("accounts") or [])
        ]
        return cls(accounts=accounts, units=list(doc.get("units") or []))


def _synthetic_places(rng: random.Random, taken: set[str], k: int) -> list[str]:
    """Place names not clashing with real ones (for oversized matrices).

    Two characters while that space lasts (~900 names), then three: a 10k-account
    matrix needs thousands of counties, and the two-character space alone never ends.
    """
    out: list[str] = []
    size, misses = 2, 0
    while len(out) < k:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(size))
        if len(set(name)) == size and name not in taken:
            taken.add(name)
            out.append(name)
            misses = 0
        else:
            misses += 1
            if misses > 200:  # this length is (nearly) used up
                size, misses = size + 1, 0
    return out


def build_matrix(
    seed: int = 7,
    cities: int = 11,
    counties_per_city: int = 8,
    departments_per_city: int = 4,
    *,
    county_police_share: float = 0.75,
    inactive_share: float = 0.02,
) -> Matrix:
    """Province → cities → counties, with departments under the province and each city.

    Each county also gets a police account (平安西湖 / 萧山公安) with probability
    ``county_police_share``. Real counties beyond ``counties_per_city`` and the next
    department kind of every city are listed as units *without* an account, so that
    覆盖度 < 1. About ``inactive_share`` of the leaf accounts (at least one) are closed.
    """
    if not 1 <= departments_per_city < len(_DEPTS):
        raise ValueError(f"departments_per_city must be in 1..{len(_DEPTS) - 1}")
    if cities < 1 or counties_per_city < 0:
        raise ValueError("need at least one city and a non-negative county count")
    rng = random.Random(seed)

    # County-level spec: (full name, short name, 主办单位, police unit).
    city_specs: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    taken = {_short(c) for c, _ in CITIES} | {_short(x) for _, cs in CITIES for x in cs}
    taken.add(PROVINCE_SHORT)
    for i in range(cities):
        if i < len(CITIES):
            city_full, real = CITIES[i]
        else:
            city_full, real = _synthetic_places(rng, taken, 1)[0] + "市", ()
        counties = [(c, _short(c),
                     f"{c}人民政府新闻办公室" if c.endswith("市")
                     else f"{city_full}{c}人民政府新闻办公室",
                     f"{city_full}公安局{c}分局" if c.endswith("区") else f"{c}公安局")
                    for c in real]
        # Small cities are padded first with functional zones (高新区, 经开区 …), which
        # run their own county-level accounts in real matrices, then with invented names.
        cp = _short(city_full)
        for zone, zshort, zunit in _ZONES:
            if len(counties) >= counties_per_city:
                break
            counties.append((f"{cp}{zone}", f"{cp}{zshort}", f"{city_full}{zunit}管理委员会",
                             f"{city_full}公安局{zone}分局"))
        if len(counties) < counties_per_city:
            for x in _synthetic_places(rng, taken, counties_per_city - len(counties)):
                full = x + "县"
                counties.append((full, x, f"{city_full}{full}人民政府新闻办公室", f"{full}公安局"))
        city_specs.append((city_full, counties))

    n_acc = 2 + cities * (2 + departments_per_city + 2 * counties_per_city)
    ids = [f"9{x:09d}" for x in rng.sample(range(10**9), n_acc)]
    id_iter = iter(ids)

    accounts: list[dict[str, Any]] = []
    units: list[dict[str, Any]] = []
    meta: dict[str, dict[str, str]] = {}
    names: set[str] = set()

    def add(name: str, unit: str, level: str, parent: dict[str, Any] | None, kind: str,
            p: str, full: str, city: str) -> dict[str, Any]:
        if name in names:  # keep screen names unique, as Weibo does
            name = f"{name}{len(names)}"
        names.add(name)
        acc = {"id": next(id_iter), "platform": "weibo", "name": name, "unit": unit,
               "level": level, "parent": parent["id"] if parent else None,
               "active": True, "synthetic": True}
        accounts.append(acc)
        units.append({"name": unit, "parent_unit": parent["unit"] if parent else None})
        meta[acc["id"]] = {"kind": kind, "p": p, "P": full, "city": city}
        return acc

    def add_dept(j: int, parent: dict[str, Any], p: str, full: str, province: bool,
                 city: str) -> dict[str, Any]:
        kind, patterns, unit_prov, unit_city = _DEPTS[j]
        name = rng.choice(patterns).format(p=p, P=full)
        unit = (unit_prov if province else unit_city).format(p=p, P=full)
        return add(name, unit, "department", parent, kind, p, full, city)

    prov = add(f"{PROVINCE_SHORT}发布", f"{PROVINCE_FULL}人民政府新闻办公室", "province",
               None, "gov", PROVINCE_SHORT, PROVINCE_FULL, PROVINCE_SHORT)
    for j in range(departments_per_city):
        add_dept(j, prov, PROVINCE_SHORT, PROVINCE_FULL, True, PROVINCE_SHORT)

    for city_full, counties in city_specs:
        cp = _short(city_full)
        city = add(f"{cp}发布", f"{city_full}人民政府新闻办公室", "city", prov, "gov",
                   cp, city_full, cp)
        for j in range(departments_per_city):
            add_dept(j, city, cp, city_full, False, cp)
        nxt = _DEPTS[departments_per_city]
        units.append({"name": nxt[3].format(p=cp, P=city_full), "parent_unit": city["unit"]})
        for k, (county_full, kp, county_unit, punit) in enumerate(counties):
            if k >= counties_per_city:  # a real county without an account in the matrix
                units.append({"name": county_unit, "parent_unit": city["unit"]})
                continue
            county = add(f"{kp}发布", county_unit, "county", city, "gov", kp, county_full, cp)
            if rng.random() < county_police_share:
                pname = rng.choice(("平安{p}", "{p}公安")).format(p=kp)
                add(pname, punit, "department", county, "公安", kp, county_full, cp)

    has_kids = {a["parent"] for a in accounts if a["parent"] is not None}
    leaves = [a for a in accounts if a["id"] not in has_kids and a["parent"] is not None]
    k_closed = max(1, round(inactive_share * len(leaves)))
    for a in rng.sample(leaves, min(k_closed, len(leaves))):
        a["active"] = False

    seen: set[str] = set()
    uniq_units = []
    for u in units:
        if u["name"] not in seen:
            seen.add(u["name"])
            uniq_units.append(u)
    return Matrix(accounts=accounts, units=uniq_units, meta=meta)


def _infer_meta(acc: dict[str, Any]) -> dict[str, str]:
    """Hints for a registry the simulator did not build (e.g. a hand-written matrix.yaml)."""
    name, unit = acc.get("name") or "", acc.get("unit") or ""
    hay = name + unit
    keys = (("交警", "交警"), ("交通警察", "交警"), ("公安", "公安"), ("平安", "公安"),
            ("应急", "应急管理"), ("卫健", "卫健委"), ("卫生健康", "卫健委"), ("健康", "卫健委"),
            ("文旅", "文旅"), ("旅游", "文旅"), ("共青团", "共青团"), ("气象", "气象"),
            ("消防", "消防"), ("市场监", "市场监管"), ("生态", "生态环境"), ("教育", "教育"),
            ("人社", "人社"), ("人力资源", "人社"), ("税务", "税务"), ("民政", "民政"),
            ("住建", "住建"), ("住房", "住建"), ("城管", "城管"), ("执法", "城管"))
    kind = "gov"
    for k, v in keys:
        if k in hay:
            kind = v
            break
    p = name
    for affix in ("发布", "平安", "公安", "交警", "健康", "共青团", "气象", "消防"):
        p = p.replace(affix, "")
    p = p[:2] or "本地"
    full = p + ("省" if acc.get("level") == "province" else "市")
    return {"kind": kind, "p": p, "P": full, "city": p}


# --------------------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------------------

_WD = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=4096)
def _day_parts(day: int) -> tuple[str, str]:
    t = time.gmtime(day * DAY)
    return f"{_WD[t.tm_wday]} {_MON[t.tm_mon - 1]} {t.tm_mday:02d} ", f" +0800 {t.tm_year}"


def weibo_time(ts: int) -> str:
    """Epoch seconds → Weibo's ``created_at`` ("Sat Nov 21 10:00:00 +0800 2026").

    Done by hand: ``strftime`` names are locale dependent, and this is a hot path.
    """
    local = ts + CST_OFFSET
    day, sec = divmod(local, DAY)
    head, tail = _day_parts(day)
    h, rem = divmod(sec, 3600)
    mi, se = divmod(rem, 60)
    return f"{head}{h:02d}:{mi:02d}:{se:02d}{tail}"


_EMOTICONS: dict[str, str] = {
    "赞": "2018new_zan_org", "心": "2018new_xin_org", "加油": "hot_jiayou_org",
    "微笑": "2018new_weixioa02_org", "哈哈": "2018new_haha_org", "给力": "2018new_geili_org",
    "怒": "2018new_nu_org", "泪": "2018new_leimu_org", "doge": "2018new_doge02_org",
    "鼓掌": "2018new_guzhang_org", "抓狂": "2018new_zhuakuang_org", "费解": "2018new_feijie_org",
    "蜡烛": "2018new_lazhu_org", "good": "2018new_good_org", "憧憬": "2018new_chongjing_org",
}
_POS_EMO = ("赞", "心", "加油", "微笑", "给力", "鼓掌", "good", "憧憬")


def _emo(name: str) -> str:
    return (f'<span class="url-icon"><img alt=[{name}] src="https://face.t.sinajs.cn/t4/'
            f'appstyle/expression/ext/normal/{_EMOTICONS[name]}.png" '
            f'style="width:1em; height:1em;" /></span>')


def _htmlize(s: str) -> str:
    """Replace ``[赞]`` markers by Weibo's emoticon HTML (done once, at import)."""
    for k in _EMOTICONS:
        s = s.replace(f"[{k}]", _emo(k))
    return s


_EMO_HTML = {k: _emo(k) for k in _EMOTICONS}


def mention(name: str) -> str:
    return f"<a href='/n/{name}'>@{name}</a>"


@lru_cache(maxsize=4096)
def topic_html(topic: str) -> str:
    q = quote(f"#{topic}#")
    return (f'<a  href="https://m.weibo.cn/search?containerid=231522type%3D1%26t%3D10'
            f'%26q%3D{q}&isnewpage=1" data-hide=""><span class="surl-text">#{topic}#</span></a>')


_LINK = ('<a data-url="http://t.cn/{code}" href="http://t.cn/{code}" data-hide="">'
         '<span class="surl-text">网页链接</span></a>')

_TOWNS = ("城东街道", "城西街道", "城南街道", "城北街道", "新城街道", "东湖街道", "江南街道",
          "湖滨街道", "文化路社区", "阳光新村", "幸福里小区", "滨江花园小区", "桃源社区",
          "和平街道", "北苑街道", "高新区")
_ROADS = ("人民路", "解放路", "中山路", "建设路", "环城北路", "文化路", "延安路", "江滨大道",
          "迎宾大道", "东湖路", "学院路", "滨江路", "体育场路", "工业大道")
_SUBJECTS = ("优化营商环境", "稳就业促增长", "城市更新", "老旧小区改造", "冬季供暖保障",
             "促消费", "数字政府建设", "乡村振兴", "民生实事项目进展", "教育资源布局")
_NOTICES = ("调整部分公交线路", "延长政务服务中心周末办理时间", "开展燃气安全专项检查",
            "实施机动车限行措施", "开展第五次全国经济普查入户登记", "发放新一轮消费券")
_REASONS = ("方便群众办事", "保障道路交通安全", "提升城市管理水平", "做好冬季安全生产工作")
_WORKS = ("道路施工", "大型活动", "马拉松比赛", "桥梁检测", "管线迁改")
_COLORS = ("黄", "橙", "红", "蓝")

# (category, share of negative comments, topic suffix or "", template). Templates use
# {p} {P} {date} {date2} {h1} {h2} {mm} {road} {road2} {town} {n} {n2} {n3} {t1} {t2}
# {subject} {notice} {reason} {work} {color} {emo} {link}.
Template = tuple[str, float, str, str]
_T_GOV: tuple[Template, ...] = (
    ("发布会", 0.08, "新闻发布会", "【{p}召开{subject}新闻发布会】{date}上午，{P}人民政府新闻办"
     "公室举行新闻发布会，介绍{subject}有关情况，并回答记者提问。{link}"),
    ("通知", 0.12, "便民提醒", "【关于{notice}的通告】为{reason}，自{date}起{notice}，"
     "请广大市民相互转告。{link}"),
    ("防汛", 0.10, "防汛", "【防汛提醒】受强降雨影响，{P}防汛防台抗旱指挥部于{date}{h1}时启动"
     "防汛Ⅳ级应急响应。请市民减少外出，远离低洼地带和危险边坡。{emo}"),
    ("交通管制", 0.22, "交通", "【交通管制】因{work}，{date}{h1}时至{h2}时，{road}（{road2}"
     "路口至{town}段）实行临时交通管制，请过往车辆提前绕行。"),
    ("疫苗接种", 0.10, "健康", "【接种提醒】{P}流感疫苗接种工作已全面启动，60岁以上老年人可"
     "免费接种。可通过“浙里办”APP预约，就近前往社区卫生服务中心接种{emo}"),
    ("招聘", 0.06, "招聘", "【招聘】{P}所属事业单位2026年下半年公开招聘工作人员{n}名，报名"
     "时间为{date}至{date2}，详见{link}"),
    ("天气预警", 0.05, "天气", "{P}气象台{date}{h1}时发布暴雨{color}色预警：预计未来6小时内"
     "部分地区累计雨量将达50毫米以上，请注意防范！"),
    ("民生", 0.10, "民生实事", "【民生实事】今年{P}{n}个老旧小区改造项目已全部开工，惠及居民"
     "{n2}户{emo}"),
    ("停水", 0.30, "停水通知", "【停水通知】因供水管道维修，{date}{h1}:00至{h2}:00，{town}"
     "部分区域暂停供水，请居民提前做好储水准备。"),
    ("政务服务", 0.06, "政务服务", "【一件事一次办】即日起，新生儿出生医学证明、户口登记、医保"
     "参保等事项可在{P}政务服务网“一网通办”{emo}"),
    ("文明", 0.04, "文明城市", "文明{p}，你我共建！{date}，{n}名志愿者走上街头开展文明劝导活动"
     "{emo}"),
)
_T_DEPT: dict[str, tuple[Template, ...]] = {
    "公安": (
        ("反诈", 0.05, "反诈", "【反诈提醒】近期冒充“客服”退款诈骗高发，警方提醒：凡是要求转账"
         "到“安全账户”的都是诈骗！{emo}"),
        ("警情通报", 0.20, "警情通报", "【警情通报】{date}{h1}时许，{town}一小区发生一起纠纷，"
         "民警迅速到场处置。目前，涉事人员已被依法控制，案件正在进一步调查中。"),
        ("便民", 0.05, "", "【好消息】{P}公安机关推出户籍业务“跨省通办”，身份证补领、居住证办理"
         "等{n}项业务可网上办理{emo}"),
    ),
    "交警": (
        ("交通管制", 0.22, "交通", "【交通管制】因{work}，{date}{h1}时至{h2}时，{road}实行临时"
         "交通管制，请过往车辆提前绕行。"),
        ("路况", 0.10, "路况", "【路况】{h1}:{mm}，{road}{road2}路口车流量较大，通行缓慢，请途经"
         "车辆注意避让。"),
        ("违法曝光", 0.15, "曝光台", "【曝光台】{date}，{p}交警开展酒驾醉驾专项整治，共查处酒驾"
         "{n}起、醉驾{n3}起。"),
    ),
    "应急管理": (
        ("安全生产", 0.05, "安全生产", "【安全生产】{P}开展冬季安全生产大检查，{date}共检查企业"
         "{n}家，督促整改隐患{n2}处。"),
        ("森林防火", 0.03, "森林防火", "【森林防火】秋冬季节天干物燥，进山入林严禁携带火种！"
         "{emo}"),
        ("防汛", 0.10, "防汛", "【防汛提醒】{date}{h1}时起{p}有强降雨，请远离河道和危险边坡。"),
    ),
    "卫健委": (
        ("健康科普", 0.03, "健康", "【健康科普】秋冬季是流感高发期，勤洗手、常通风，出现发热症状"
         "请及时就医{emo}"),
        ("义诊", 0.04, "", "{date}，{P}{n}家医院组织专家走进{town}开展义诊活动，"
         "服务群众{n2}人次。"),
        ("疫苗接种", 0.10, "健康", "【接种提醒】{P}流感疫苗接种正在进行，可通过“浙里办”预约。"),
    ),
    "文旅": (
        ("文旅", 0.03, "文旅", "【周末去哪儿】{p}{n}家景区推出冬季优惠活动，部分景区对60岁以上"
         "老人免票{emo}"),
        ("非遗", 0.02, "非遗", "非遗过大年！{date}起，{p}非遗展示周在{town}举办，快来打卡吧{emo}"),
    ),
    "共青团": (
        ("青年", 0.03, "青春", "【青春力量】{date}，{n}名青年志愿者参与{p}“暖冬行动”，为环卫工人"
         "送上温暖{emo}"),
        ("招聘", 0.06, "招聘", "【就业】{p}青年就业服务专场招聘会{date}举行，{n}家企业提供岗位"
         "{n2}个。{link}"),
    ),
    "气象": (
        ("天气预警", 0.05, "天气", "{P}气象台{date}{h1}时发布大风{color}色预警，请注意防范！"),
        ("天气", 0.03, "天气", "【天气】{date}{p}多云转阴，气温{t1}～{t2}℃，明天起冷空气南下，"
         "注意添衣保暖。"),
    ),
    "消防": (
        ("消防", 0.04, "消防", "【消防提醒】冬季用火用电增多，电动自行车请勿在楼道、室内充电！"
         "{emo}"),
    ),
    "市场监管": (
        ("食品安全", 0.15, "食品安全", "【抽检公告】{P}市场监督管理局公布{date}食品安全抽检结果，"
         "{n}批次样品中{n3}批次不合格。{link}"),
    ),
    "生态环境": (
        ("环境", 0.12, "", "【空气质量】{date}{p}空气质量指数AQI为{n}，等级为良。"),
    ),
    "教育": (
        ("教育", 0.15, "教育", "【招生】{P}2027年义务教育阶段招生工作实施意见发布，{date}起开始"
         "网上报名。{link}"),
    ),
    "人社": (
        ("招聘", 0.06, "招聘", "【招聘】{P}2026年下半年事业单位公开招聘{n}名工作人员，报名截止"
         "{date2}。{link}"),
        ("社保", 0.12, "社保", "【社保】{P}2027年度城乡居民医保参保缴费开始啦！缴费截止时间为"
         "{date2}{emo}"),
    ),
    "税务": (
        ("税务", 0.08, "", "【提醒】个人所得税综合所得年度汇算即将开始，请通过“个人所得税”APP"
         "预约办理{emo}"),
    ),
    "民政": (
        ("民政", 0.05, "", "【养老服务】{P}新增{n}家社区老年食堂，让老年人在家门口吃上“幸福餐”"
         "{emo}"),
    ),
    "住建": (
        ("住建", 0.20, "城市更新", "【城市更新】{town}片区危旧房改造项目启动，涉及住户{n2}户。"
         "{link}"),
    ),
    "城管": (
        ("城管", 0.25, "", "【城市管理】{date}，{p}综合行政执法局对{road}沿线占道经营开展集中"
         "整治。"),
    ),
}
# Posts that start a negative surge on a county account, by topic.
_T_SURGE: dict[str, Template] = {
    "停水": ("停水", 0.6, "停水通知", "【停水通知】因管网改造，{date}{h1}:00起{town}片区暂停"
             "供水，恢复时间另行通知。"),
    "拆迁": ("拆迁", 0.6, "", "【征收公告】{P}人民政府关于{town}片区旧城改造项目房屋征收决定的"
             "公告。{link}"),
    "执法": ("执法", 0.6, "", "【情况通报】关于网传{town}综合执法人员执法视频的情况说明：我区"
             "高度重视，已成立调查组，调查结果将及时向社会公布。"),
    "环境": ("环境", 0.6, "", "【情况说明】关于{town}垃圾中转站项目选址的情况说明。{link}"),
}
SURGE_TOPICS: tuple[str, ...] = tuple(_T_SURGE)

_C_POS = tuple(_htmlize(s) for s in (
    "点赞[赞]", "辛苦了[心]", "为{p}点赞！", "感谢及时发布[给力]", "收到，谢谢提醒",
    "{p}越来越好了[哈哈]", "支持！[加油]", "给一线工作人员点赞", "暖心[心]", "好消息！",
    "太及时了，谢谢[赞]", "为家乡骄傲[鼓掌]", "希望越办越好[憧憬]", "已分享给家人，谢谢[good]"))
_C_NEU = tuple(_htmlize(s) for s in (
    "转发", "收到", "了解了", "已转发给家人", "关注", "看看", "坐等后续", "知道了", "mark",
    "[doge]", "来了", "路过", "顶一下", "哦"))
_C_NEG = tuple(_htmlize(s) for s in (
    "{town}停水两天了，什么时候恢复？[怒]", "投诉多次没人管[怒]", "说了多少次了，还是没解决",
    "这就是你们的办事效率？", "晚上施工噪音扰民，根本睡不着[抓狂]", "{road}修了半年还没修好[怒]",
    "物业乱收费到底有没有人管", "天天发这些有什么用，先把问题解决了", "热线打了一天都打不通[怒]",
    "停车位太少了，还乱罚款", "小区门口的垃圾几天没人清运了", "形式主义，没什么用[费解]"))
_C_QUE = (
    "请问{road}明天还管制吗？", "请问在哪里预约？", "请问报名截止到哪天？",
    "请问{town}什么时候恢复供水？", "请问需要带什么材料？", "请问外地户籍可以办理吗？",
    "请问周末窗口上班吗？", "请问老人没有智能手机怎么办理？", "请问{town}有接种点吗？")
_C_SURGE: dict[str, tuple[str, ...]] = {
    "停水": tuple(_htmlize(s) for s in (
        "又停水！连个提前通知都没有[怒]", "{town}停水第三天了，老人孩子怎么办？",
        "自来水公司电话打不通，谁来管管", "恢复时间另行通知？这叫什么通知[怒]",
        "每次都是临时通知，能不能提前几天", "家里一滴水都没有了，生活怎么过[泪]",
        "一停就是好几天，太过分了", "要求给个准确的恢复时间！")),
    "拆迁": tuple(_htmlize(s) for s in (
        "补偿标准为什么不公开？[怒]", "补偿款拖了两年还没到位", "强拆还有没有王法[怒]",
        "评估价格太低了，根本买不起房", "征收公告就贴了一天，谁看得到", "我们不同意这个补偿方案！",
        "安置房到现在还没开工[泪]", "老百姓的房子说拆就拆？")),
    "执法": tuple(_htmlize(s) for s in (
        "执法视频都传遍了，就这样一句话？", "动手打人必须严惩[怒]", "要求公开调查结果！",
        "小摊贩也是为了生活，何必这样[泪]", "调查组调查自己人？", "等了三天就等来这个通报？",
        "暴力执法零容忍[怒]", "当事人现在怎么样了？")),
    "环境": tuple(_htmlize(s) for s in (
        "垃圾站建在小区门口，谁同意的？[怒]", "臭味已经熏了一个月了",
        "坚决反对在居民区旁边建垃圾站", "环评报告为什么不公开", "业主们都不同意！",
        "孩子的学校就在旁边[怒]", "晚上臭得根本没法开窗[抓狂]", "选址为什么不听证？")),
}
_REPLIES = ("您好，具体请以官方公告为准，感谢关注！", "您好，可拨打12345政务服务热线咨询。",
            "您好，已转相关部门核实处理，请保持电话畅通。", "您好，可通过“浙里办”APP线上办理。",
            "您好，报名截止时间请见公告原文，谢谢关注。", "您好，周末窗口正常上班，欢迎前来办理。")
_REPOST_OWN = tuple(_htmlize(s) for s in (
    "转发微博", "转发微博", "转发微博", "转发", "转发", "【转发】", "扩散周知！",
    "请广大市民注意[赞]", "关注[心]", "提醒大家！", "扩散"))
_NICK_A = ("西湖边的", "江南", "爱吃", "快乐的", "小城", "追风的", "海边的", "住在", "懒懒的",
           "打工人", "早起的", "安静的")
_NICK_B = ("小王", "阿明", "橘子", "老李", "鱼丸", "兔子", "大叔", "阿姨", "小猫", "青柠",
           "老张", "小雨")
_SOURCES = ('<a href="https://weibo.com/" rel="nofollow">微博 weibo.com</a>',
            '<a href="https://app.weibo.com/t/feed/5yiHuw" rel="nofollow">iPhone客户端</a>',
            '<a href="https://app.weibo.com/t/feed/6vtZb0" rel="nofollow">微博网页版</a>',
            '<a href="https://app.weibo.com/t/feed/c66T5g" rel="nofollow">Android</a>')

# Diurnal weight of government posting, per local hour (normalised to mean 1 below).
_HOURLY = (0.03, 0.02, 0.01, 0.01, 0.01, 0.03, 0.15, 0.6, 1.3, 1.6, 1.6, 1.4,
           0.8, 0.7, 1.3, 1.5, 1.5, 1.3, 1.0, 0.9, 0.8, 0.6, 0.3, 0.1)
_HMEAN = sum(_HOURLY) / 24
_HW = tuple(h / _HMEAN for h in _HOURLY)
_HWMAX = max(_HW)

# Posting rate (originals/day) and comments per post, by (level, is department).
_POST_RATE = {"province": 12.0, "city": 6.0, "county": 3.0, "township": 2.0,
              "national": 12.0, "department": 3.0}
_COMMENTS = {"province": 14.0, "city": 8.0, "county": 4.0, "township": 2.0,
             "national": 20.0, "department": 4.0}
_FOLLOWERS = {"province": 6_000_000, "city": 1_500_000, "county": 120_000,
              "township": 20_000, "national": 20_000_000, "department": 300_000}

# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, TZ)


@dataclass
class PostTruth:
    """One linkage task as the simulator made it: the post and every repost of it."""

    post_id: str
    account_id: str
    ts: int
    expected: tuple[str, ...]  # active direct subordinates (registry view)
    reposts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # acct → [(ts, id)]

    @property
    def created_at(self) -> datetime:
        return _dt(self.ts)

    def linked(self, deadline: float = 86400.0) -> dict[str, float]:
        """Expected account → latency (s) of its earliest repost within the deadline."""
        out: dict[str, float] = {}
        for acc in self.expected:
            times = [t for t, _ in self.reposts.get(acc, ()) if t - self.ts <= deadline]
            if times:
                out[acc] = float(min(times) - self.ts)
        return out

    def rate(self, deadline: float = 86400.0) -> float | None:
        if not self.expected:
            return None
        return len(self.linked(deadline)) / len(self.expected)


@dataclass(frozen=True)
class SurgeTruth:
    """A planned burst of negative comments on one county post."""

    account_id: str
    post_id: str
    topic: str
    start: datetime
    end: datetime
    comments: int


@dataclass
class QuestionTruth:
    comment_id: str
    post_id: str
    account_id: str  # the post's author, who is expected to answer
    asked_ts: int
    answered_ts: int | None = None


@dataclass
class Truth:
    """What the simulator did, for tests. Filled as objects are yielded."""

    posts: dict[str, PostTruth] = field(default_factory=dict)  # superior posts only
    surges: list[SurgeTruth] = field(default_factory=list)
    questions: dict[str, QuestionTruth] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # normal|laggard|never|dormant|stale|closed
    stale_since: dict[str, datetime] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # yielded objects by kind


# --------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------

_TICK_POST, _TICK_SURGE, _EMIT, _REPOST, _COMMENT, _REPLY = range(6)
_NETIZENS = 60_000


class Simulator:
    """Native Weibo objects for a matrix, in event-time order.

    Behaviour per account (fixed by the seed): posting rate, response rate to the
    superior's posts, repost latency (lognormal, median 1–3 h; laggards 5–12 h), and a
    role: ``normal``, ``laggard`` (low response), ``never`` (posts, never reposts),
    ``dormant`` (active in the registry but silent) or ``stale`` (stops at some point).

    The stream is continuous: a second call to :meth:`events` resumes where the first
    stopped. Yielded objects are fresh top-level dicts, but nested ``user``,
    ``retweeted_status`` and ``status`` objects are shared: treat them as read-only.
    """

    def __init__(
        self,
        matrix: Matrix,
        seed: int = 7,
        start: datetime | None = None,
        *,
        activity: float = 1.0,
        surges_per_day: float = 1.0,
        surges: Sequence[tuple[str, datetime]] = (),
        surge_topics: Sequence[str] = SURGE_TOPICS,
        late_share: float = 0.005,
        max_late_seconds: int = 600,
        laggard_share: float = 0.12,
        never_share: float = 0.04,
        dormant_share: float = 0.02,
        stale_share: float = 0.02,
    ) -> None:
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.matrix = matrix
        self.seed = seed
        self.start = start
        self.t0 = int(start.timestamp())
        self.truth = Truth()
        self._rng = rng = random.Random(seed)
        self._late_share = late_share
        self._max_late = max(30, max_late_seconds)
        self._surge_rate = surges_per_day / DAY
        self._surge_topics = tuple(surge_topics)

        accs = matrix.accounts
        self._accs = accs
        self._idx = {a["id"]: i for i, a in enumerate(accs)}
        n = len(accs)
        self._meta = [matrix.meta.get(a["id"]) or _infer_meta(a) for a in accs]
        self._names = [a["name"] for a in accs]
        self._active = [bool(a.get("active", True)) for a in accs]
        self._subs: list[list[int]] = [[] for _ in range(n)]
        for i, a in enumerate(accs):
            par = a.get("parent")
            if par is not None and par in self._idx and self._active[i]:
                self._subs[self._idx[par]].append(i)

        # Roles. Only accounts with a superior can be laggards or never reposters.
        never_end = 2**62
        self._resp = [0.0] * n
        self._mu = [0.0] * n
        self._sigma = [1.0] * n
        self._stale_at = [never_end] * n
        roles = self.truth.roles
        for i, a in enumerate(accs):
            if not self._active[i]:
                roles[a["id"]] = "closed"
                continue
            r = rng.random()
            has_sup = a.get("parent") is not None
            if has_sup and r < dormant_share:
                role = "dormant"
                self._stale_at[i] = self.t0
            elif has_sup and r < dormant_share + stale_share:
                role = "stale"
                self._stale_at[i] = self.t0 + rng.randint(2 * DAY, 20 * DAY)
            elif has_sup and r < dormant_share + stale_share + never_share:
                role = "never"
            elif has_sup and r < dormant_share + stale_share + never_share + laggard_share:
                role = "laggard"
            else:
                role = "normal"
            roles[a["id"]] = role
            if role == "laggard":
                self._resp[i] = rng.uniform(0.1, 0.35)
                self._mu[i] = math.log(rng.uniform(5, 12) * 3600)
                self._sigma[i] = 1.1
            elif role in ("normal", "stale"):
                self._resp[i] = rng.uniform(0.65, 0.97)
                self._mu[i] = math.log(rng.uniform(1, 3) * 3600)
                self._sigma[i] = rng.uniform(0.9, 1.15)
            if self._stale_at[i] < never_end:
                self.truth.stale_since[a["id"]] = _dt(self._stale_at[i])

        # Posting process: one superposed Poisson process, account by weighted choice.
        self._poster_idx: list[int] = []
        cum: list[float] = []
        total = 0.0
        for i, a in enumerate(accs):
            if not self._active[i] or roles[a["id"]] == "dormant":
                continue
            lvl = a.get("level") or "department"
            w = _POST_RATE.get(lvl, 3.0) * rng.lognormvariate(0, 0.35) * activity
            if lvl == "department" and self._meta[i]["kind"] == "公安":
                w *= 1.3
            total += w
            self._poster_idx.append(i)
            cum.append(total)
        self._cum = cum
        self._total_w = total
        self._cand_rate = total / DAY * _HWMAX  # candidate rate before diurnal thinning
        self._counties = [i for i, a in enumerate(accs)
                          if a.get("level") == "county" and self._active[i]
                          and roles[a["id"]] in ("normal", "laggard", "never", "stale")]
        if not self._counties:
            self._counties = list(self._poster_idx)

        self._users = [self._make_user(i) for i in range(n)]
        self._netizens: list[dict[str, Any] | None] = [None] * _NETIZENS
        self._next_id = 5_100_000_000_000_000 + rng.randint(0, 10**12)
        self._heap: list[tuple[Any, ...]] = []
        self._seq = 0
        self._pending_truth: dict[str, PostTruth] = {}
        self._tick_t = float(self.t0)  # fractional clock of the posting process (> 1/s)

        if self._cand_rate > 0:
            self._push(self.t0 + int(rng.expovariate(self._cand_rate)) + 1, _TICK_POST, 0, None)
        if self._surge_rate > 0:
            self._push(self.t0 + int(rng.expovariate(self._surge_rate)) + 1, _TICK_SURGE, 0,
                       None)
        for acc_id, when in surges:
            if acc_id not in self._idx:
                raise KeyError(f"unknown account for surge: {acc_id}")
            if not self._active[self._idx[acc_id]]:
                raise ValueError(f"closed accounts do not post: {acc_id}")
            ts = int(when.timestamp())
            self._push(ts, _TICK_SURGE, ts, self._idx[acc_id])

    # -- small helpers ---------------------------------------------------------------

    def _push(self, deliver: int, code: int, ts: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deliver, self._seq, code, ts, payload))

    def _deliver(self, ts: int) -> int:
        """Delivery time: usually the event time, sometimes a few minutes late."""
        if self._late_share and self._rng.random() < self._late_share:
            return ts + self._rng.randint(30, self._max_late)
        return ts

    def _new_id(self) -> int:
        self._next_id += 1 + int(self._rng.random() * 97)
        return self._next_id

    def _pick(self, seq: Sequence[Any]) -> Any:
        """``rng.choice`` without its overhead (hot path)."""
        return seq[int(self._rng.random() * len(seq))]

    def _int(self, a: int, b: int) -> int:
        """``rng.randint`` without its overhead (hot path)."""
        return a + int(self._rng.random() * (b - a + 1))

    def _make_user(self, i: int) -> dict[str, Any]:
        a = self._accs[i]
        rng = self._rng
        lvl = a.get("level") or "department"
        uid = int(a["id"]) if str(a["id"]).isdigit() else a["id"]
        followers = int(_FOLLOWERS.get(lvl, 100_000) * rng.lognormvariate(0, 0.6))
        unit = a.get("unit") or a["name"]
        city = self._meta[i].get("city", "")
        return {
            "id": uid, "idstr": str(a["id"]),
            "screen_name": a["name"], "name": a["name"],
            "province": PROVINCE_CODE, "city": "1000",
            "location": f"{PROVINCE_SHORT} {city}" if city != PROVINCE_SHORT else PROVINCE_SHORT,
            "description": f"{unit}官方微博",
            "profile_image_url":
                f"https://tvax{1 + i % 4}.sinaimg.cn/crop.0.0.180.180.50/{a['id']}ly8gov.jpg",
            "profile_url": f"u/{a['id']}", "gender": "m",
            "followers_count": followers,
            "friends_count": rng.randint(80, 900),
            "statuses_count": rng.randint(3_000, 60_000),
            "created_at": weibo_time(self.t0 - rng.randint(4 * 365, 13 * 365) * DAY),
            "verified": True, "verified_type": 1, "verified_reason": f"{unit}官方微博",
            "urank": rng.randint(20, 48),
        }

    def _netizen(self, k: int) -> dict[str, Any]:
        u = self._netizens[k]
        if u is None:
            uid = 8_000_000_000 + (k * 1_000_003) % 1_000_000_000
            h = (k * 2654435761) % (1 << 24)
            if h % 10 < 6:
                name = f"用户{h:06x}"
            else:
                name = f"{_NICK_A[h % len(_NICK_A)]}{_NICK_B[(h >> 4) % len(_NICK_B)]}{k}"
            u = {"id": uid, "idstr": str(uid), "screen_name": name, "name": name,
                 "province": PROVINCE_CODE, "city": "1000", "location": f"{PROVINCE_SHORT}",
                 "profile_image_url": f"https://tvax2.sinaimg.cn/crop.0.0.100.100.50/{uid}.jpg",
                 "gender": "f" if h & 1 else "m", "followers_count": h % 800,
                 "friends_count": 50 + h % 400, "statuses_count": 10 + h % 3000,
                 "verified": False, "verified_type": -1, "urank": 1 + h % 30}
            self._netizens[k] = u
        return u

    def _latency(self, i: int) -> float:
        return self._rng.lognormvariate(self._mu[i], self._sigma[i])

    def _night_shift(self, ts: int) -> int:
        """Most reposts that would land at night are done the next morning instead."""
        local_hour = ((ts + CST_OFFSET) // 3600) % 24
        if local_hour < 7 and self._rng.random() < 0.8:
            day0 = (ts + CST_OFFSET) // DAY * DAY - CST_OFFSET
            return day0 + 7 * 3600 + self._int(0, 9000)
        return ts

    # -- original posts --------------------------------------------------------------

    def _fill(self, tpl: str, i: int, ts: int) -> str:
        m = self._meta[i]
        pick, rint = self._pick, self._int
        lt = time.gmtime(ts + CST_OFFSET)
        lt2 = time.gmtime(ts + CST_OFFSET + 7 * DAY)
        h1 = rint(7, 20)
        return tpl.format(
            p=m["p"], P=m["P"], date=f"{lt.tm_mon}月{lt.tm_mday}日",
            date2=f"{lt2.tm_mon}月{lt2.tm_mday}日", h1=h1, h2=min(23, h1 + rint(2, 8)),
            mm=f"{rint(0, 59):02d}", road=pick(_ROADS), road2=pick(_ROADS),
            town=pick(_TOWNS), n=rint(12, 260), n2=rint(300, 9000),
            n3=rint(1, 11), t1=rint(2, 9), t2=rint(10, 18),
            subject=pick(_SUBJECTS), notice=pick(_NOTICES),
            reason=pick(_REASONS), work=pick(_WORKS), color=pick(_COLORS),
            emo=_EMO_HTML[pick(_POS_EMO)],
            link=_LINK.format(code=f"A6{self._rng.getrandbits(30):08x}"),
        )

    def _create_post(self, i: int, ts: int, template: Template | None = None,
                     n_burst: int = 0) -> dict[str, Any]:
        """Build an original, plan its reposts and comments, schedule its delivery."""
        rng = self._rng
        m = self._meta[i]
        if template is None:
            pool = _T_GOV if m["kind"] == "gov" else _T_DEPT.get(m["kind"], _T_GOV)
            template = pool[int(rng.random() * len(pool))]
        cat, neg, topic, tpl = template
        text = self._fill(tpl, i, ts)
        if topic and rng.random() < 0.6:
            text = topic_html(f"{m['p']}{topic}") + text
        r = rng.random()
        if r < 0.12:
            sup = self._accs[i].get("parent")
            if sup is not None and sup in self._idx:
                text += " " + mention(self._names[self._idx[sup]])
        elif r < 0.2 and self._subs[i]:
            text += " " + mention(self._names[rng.choice(self._subs[i])])
        pid = self._new_id()
        sid = str(pid)
        lvl = self._accs[i].get("level") or "department"
        n_reposts = 0
        post: dict[str, Any] = {
            "created_at": weibo_time(ts), "id": pid, "idstr": sid, "mid": sid,
            "text": text, "source": _SOURCES[i % len(_SOURCES)],
            "favorited": False, "truncated": False, "in_reply_to_status_id": "",
            "in_reply_to_user_id": "", "in_reply_to_screen_name": "",
            "pic_ids": [f"00{rng.getrandbits(64):016x}ly1hqz"] if rng.random() < 0.35 else [],
            "geo": None, "user": self._users[i], "reposts_count": 0, "comments_count": 0,
            "attitudes_count": 0, "isLongText": False, "visible": {"type": 0, "list_id": 0},
        }
        if self._subs[i]:
            acc_id = self._accs[i]["id"]
            expected = tuple(self._accs[s]["id"] for s in self._subs[i])
            self._pending_truth[sid] = PostTruth(sid, acc_id, ts, expected)
            n_reposts = self._plan_reposts(post, i, ts)
        n_comments = self._plan_comments(post, i, ts, _COMMENTS.get(lvl, 4.0), neg)
        if n_burst:
            n_comments += self._plan_burst(post, ts, cat, n_burst)
        post["reposts_count"] = n_reposts + int(rng.random() * 3)
        post["comments_count"] = n_comments
        post["attitudes_count"] = int(rng.lognormvariate(math.log(_COMMENTS.get(lvl, 4) * 3), 1))
        self._push(self._deliver(ts), _EMIT, ts, ("post", post))
        return post

    def _plan_reposts(self, root: dict[str, Any], author: int, t0: int) -> int:
        """Decide the whole repost cascade of a root now, so pid chains are consistent.

        Direct subordinates repost with their response rate; a few go through a
        sibling's earlier repost. Each repost can be passed on by the reposter's own
        subordinates (//@ chain with ``pid``), less and less likely with depth.
        """
        rng = self._rng
        count = 0
        # frontier items: (account idx, its repost plan or None for the root author, depth)
        direct: list[tuple[int, int]] = []
        for s in self._subs[author]:
            if rng.random() < self._resp[s]:
                ts = self._night_shift(t0 + 60 + int(self._latency(s)))
                if ts < self._stale_at[s]:
                    direct.append((ts, s))
        direct.sort()
        done: list[tuple[int, int, str, str]] = []  # (ts, id, name, text) of direct reposts
        stack: list[tuple[int, int, int, str, int]] = []  # (ts, acc, id, text, depth)
        for ts, s in direct:
            parent = None
            if done and rng.random() < 0.08:
                parent = done[int(rng.random() * len(done))]
            rid, text = self._schedule_repost(root, s, ts, parent)
            count += 1
            done.append((ts, rid, self._names[s], text))
            stack.append((ts, s, rid, text, 1))
            if rng.random() < 0.02:  # a duplicate repost by the same account
                ts2 = ts + 600 + int(rng.lognormvariate(math.log(3 * 3600), 1.0))
                if ts2 < self._stale_at[s]:
                    self._schedule_repost(root, s, ts2, None)
                    count += 1
        while stack:
            pts, x, prid, ptext, depth = stack.pop()
            if depth >= 3:
                continue
            factor = 0.45 if depth == 1 else 0.3
            for s in self._subs[x]:
                if rng.random() < self._resp[s] * factor:
                    ts = self._night_shift(pts + 60 + int(self._latency(s)))
                    if ts >= self._stale_at[s]:
                        continue
                    via = (pts, prid, self._names[x], ptext) if rng.random() < 0.85 else None
                    rid, text = self._schedule_repost(root, s, ts, via)
                    count += 1
                    stack.append((ts, s, rid, text, depth + 1))
        return count

    def _schedule_repost(self, root: dict[str, Any], s: int, ts: int,
                         via: tuple[int, int, str, str] | None) -> tuple[int, str]:
        own = _REPOST_OWN[int(self._rng.random() * len(_REPOST_OWN))]
        if via is not None:
            text = f"{own}//{mention(via[2])}:{via[3]}"
            pid: int | None = via[1]
        else:
            text, pid = own, None
        rid = self._new_id()
        self._push(self._deliver(ts), _REPOST, ts, (s, rid, pid, text, root))
        return rid, text

    def _plan_comments(self, post: dict[str, Any], i: int, t0: int, mean: float,
                       neg: float) -> int:
        """Ordinary netizen comments: mostly neutral/positive, some complaints/questions."""
        rng = self._rng
        n = int(rng.lognormvariate(math.log(mean) - 0.32, 0.8))
        total = n
        for _ in range(n):
            ts = t0 + 20 + int(rng.lognormvariate(7.8, 1.2))  # median ≈ 40 min
            r = rng.random()
            if r < neg:
                label = "neg"
            elif r < neg + 0.07:
                label = "q"
            elif r < neg + 0.42:
                label = "pos"
            else:
                label = "neu"
            reply_ts = None
            if label == "q" and rng.random() < 0.55:
                reply_ts = ts + 120 + int(rng.lognormvariate(math.log(2 * 3600), 1.1))
                if reply_ts < self._stale_at[i]:
                    total += 1
                else:
                    reply_ts = None
            self._push(self._deliver(ts), _COMMENT, ts, (post, i, label, reply_ts, None))
        return total

    def _plan_burst(self, post: dict[str, Any], t0: int, topic: str, n: int) -> int:
        """A negative surge: n comments within ~30 minutes of the post."""
        rng = self._rng
        i = self._idx[post["user"]["idstr"]]
        start, end = t0 + 60, t0 + 60 + 1800
        crowd = rng.randint(0, _NETIZENS - 400)
        for _ in range(n):
            ts = start + int(rng.random() * 1800)
            label = "sneg" if rng.random() < 0.85 else ("neg" if rng.random() < 0.6 else "q")
            self._push(self._deliver(ts), _COMMENT, ts, (post, i, label, None, topic, crowd))
        self.truth.surges.append(SurgeTruth(self._accs[i]["id"], post["idstr"], topic,
                                            _dt(start), _dt(end), n))
        return n

    # -- building the other objects ----------------------------------------------------

    def _build_repost(self, ts: int, payload: tuple[Any, ...]) -> dict[str, Any]:
        s, rid, pid, text, root = payload
        rng = self._rng
        sid = str(rid)
        n_comments = 0
        lvl = self._accs[s].get("level")
        obj: dict[str, Any] = {
            "created_at": weibo_time(ts), "id": rid, "idstr": sid, "mid": sid,
            "text": text, "source": _SOURCES[s % len(_SOURCES)],
            "favorited": False, "truncated": False, "in_reply_to_status_id": "",
            "in_reply_to_user_id": "", "in_reply_to_screen_name": "", "pic_ids": [],
            "geo": None, "user": self._users[s],
        }
        if pid is not None:
            obj["pid"] = pid
        obj["retweeted_status"] = root
        if lvl in ("city", "province") and rng.random() < 0.2:
            n_comments = rng.randint(1, 3)
            for _ in range(n_comments):
                cts = ts + 30 + int(rng.lognormvariate(7.5, 1.0))
                label = "neu" if rng.random() < 0.6 else "pos"
                self._push(self._deliver(cts), _COMMENT, cts, (obj, s, label, None, None))
        obj.update({"reposts_count": 0, "comments_count": n_comments,
                    "attitudes_count": int(rng.random() * 6), "isLongText": False,
                    "visible": {"type": 0, "list_id": 0}})
        root_id = root["idstr"]
        pt = self.truth.posts.get(root_id) or self._pending_truth.get(root_id)
        if pt is not None:
            pt.reposts.setdefault(self._accs[s]["id"], []).append((ts, sid))
        return obj

    def _build_comment(self, ts: int, payload: tuple[Any, ...]) -> dict[str, Any]:
        post, i, label, reply_ts, topic = payload[:5]
        rng = self._rng
        m = self._meta[i]
        if label == "sneg":
            k = payload[5] + int(rng.random() ** 1.5 * 400)  # locals, some repeat complainers
            pool = _C_SURGE.get(topic, _C_NEG)
        else:
            k = int(_NETIZENS * rng.random() ** 2)
            pool = {"pos": _C_POS, "neu": _C_NEU, "neg": _C_NEG, "q": _C_QUE}[label]
        text = pool[int(rng.random() * len(pool))]
        if "{" in text:
            text = text.format(p=m["p"], town=self._pick(_TOWNS), road=self._pick(_ROADS))
        if label in ("neg", "sneg") and rng.random() < 0.15:
            target = self._accs[i].get("parent") if rng.random() < 0.5 else None
            name = self._names[self._idx[target]] if target in self._idx else self._names[i]
            text += f" {mention(name)} 管管吧"
        cid = self._new_id()
        scid = str(cid)
        obj = {
            "created_at": weibo_time(ts), "id": cid, "idstr": scid, "mid": scid,
            "rootid": cid, "floor_number": 0, "text": text, "disable_reply": 0,
            "source": _SOURCES[1 + (cid % 3)], "user": self._netizen(k), "status": post,
        }
        if label == "q":
            q = QuestionTruth(scid, post["idstr"], self._accs[i]["id"], ts)
            self.truth.questions[scid] = q
            if reply_ts is not None:
                self._push(self._deliver(reply_ts), _REPLY, reply_ts, (obj, i))
        return obj

    def _build_reply(self, ts: int, payload: tuple[Any, ...]) -> dict[str, Any]:
        """The post's author answers a netizen question (so not every question is open)."""
        question, i = payload
        asker = question["user"]["screen_name"]
        text = f"回复{mention(asker)}:{self._pick(_REPLIES)}"
        cid = self._new_id()
        scid = str(cid)
        q = self.truth.questions.get(question["idstr"])
        if q is not None and q.answered_ts is None:
            q.answered_ts = ts
        return {
            "created_at": weibo_time(ts), "id": cid, "idstr": scid, "mid": scid,
            "rootid": question["id"], "floor_number": 0, "text": text, "disable_reply": 0,
            "source": _SOURCES[0], "user": self._users[i], "status": question["status"],
            "reply_comment": {k: question[k] for k in
                              ("created_at", "id", "idstr", "mid", "rootid", "text", "user")},
        }

    # -- the stream ------------------------------------------------------------------

    def _surge(self, ts: int, acc: int | None) -> None:
        rng = self._rng
        if acc is None:
            acc = self._counties[int(rng.random() * len(self._counties))]
            hour = ((ts + CST_OFFSET) // 3600) % 24
            if hour < 7 or hour >= 22:  # random surges follow a post, so daytime
                day0 = (ts + CST_OFFSET) // DAY * DAY - CST_OFFSET + (DAY if hour >= 22 else 0)
                ts = day0 + 8 * 3600 + self._int(0, 3 * 3600)
            if ts >= self._stale_at[acc] or not self._active[acc]:
                return
        topic = self._surge_topics[int(rng.random() * len(self._surge_topics))]
        self._create_post(acc, ts, _T_SURGE[topic], n_burst=rng.randint(40, 120))

    def events(
        self, n: int | None = None, until: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield native objects until ``n`` were yielded or delivery time passes ``until``."""
        heap = self._heap
        rng = self._rng
        pop = heapq.heappop
        limit = int(until.timestamp()) if until is not None else None
        produced = 0
        counts = self.truth.counts
        posters, cum, total = self._poster_idx, self._cum, self._total_w
        while heap and (n is None or produced < n):
            if limit is not None and heap[0][0] > limit:
                return
            deliver, _, code, ts, payload = pop(heap)
            if code == _COMMENT:
                obj = self._build_comment(ts, payload)
                counts["comment"] += 1
            elif code == _REPOST:
                obj = self._build_repost(ts, payload)
                counts["repost"] += 1
            elif code == _EMIT:
                kind, obj = payload
                pt = self._pending_truth.pop(obj["idstr"], None)
                if pt is not None:
                    self.truth.posts[obj["idstr"]] = pt
                counts[kind] += 1
            elif code == _REPLY:
                obj = self._build_reply(ts, payload)
                counts["comment"] += 1
            elif code == _TICK_POST:
                gap = rng.expovariate(self._cand_rate)
                if self._cand_rate < 1.0:  # every real matrix: ticks a second or more apart
                    nxt = deliver + 1 + int(gap)
                else:  # a load test's scaled-up activity: several posts a second
                    self._tick_t = max(self._tick_t, deliver) + gap
                    nxt = int(self._tick_t)
                self._push(nxt, _TICK_POST, 0, None)
                hour = ((deliver + CST_OFFSET) // 3600) % 24
                if rng.random() * _HWMAX < _HW[hour]:
                    i = posters[bisect_right(cum, rng.random() * total)]
                    if deliver < self._stale_at[i]:
                        self._create_post(i, deliver, None)
                continue
            else:  # _TICK_SURGE
                if payload is None:
                    self._push(deliver + 1 + int(rng.expovariate(self._surge_rate)),
                               _TICK_SURGE, 0, None)
                self._surge(deliver, payload)
                continue
            produced += 1
            yield obj


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------


class JsonlEncoder:
    """Compact JSON lines for simulator objects, fast.

    Comments embed their post and reposts embed their root, so the same nested objects
    recur on many lines. Each nested object is encoded once (cached by identity) and
    spliced in. The output is exactly ``json.dumps(obj, ensure_ascii=False,
    separators=(",", ":"))``.
    """

    _NESTED = ("user", "status", "retweeted_status")

    def __init__(self, max_cache: int = 50_000) -> None:
        self._enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._cache: dict[int, tuple[Any, str]] = {}
        self._max = max_cache

    def _nested(self, v: Any) -> str:
        hit = self._cache.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        if len(self._cache) >= self._max:
            self._cache.clear()
        out = self._enc(v)
        self._cache[id(v)] = (v, out)  # holding v keeps id(v) from being reused
        return out

    def encode(self, obj: dict[str, Any]) -> str:
        d = dict(obj)
        found = [k for k in self._NESTED if isinstance(d.get(k), dict)]
        for k in found:
            d[k] = "\x00" + k
        line = self._enc(d)
        for k in found:
            line = line.replace(f'"\\u0000{k}"', self._nested(obj[k]), 1)
        return line


def write_jsonl(path: Path, matrix: Matrix, n: int, seed: int = 7,
                start: datetime | None = None) -> int:
    """Write ``n`` simulated objects as a replay file (one native object per line)."""
    sim = Simulator(matrix, seed=seed, start=start)
    encode = JsonlEncoder().encode
    count = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        buf: list[str] = []
        for obj in sim.events(n):
            buf.append(encode(obj))
            count += 1
            if len(buf) >= 2000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    return count


def write_registry(path: Path, matrix: Matrix) -> None:
    """Write the matrix as matrix.yaml."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(matrix.to_yaml(), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m matrixwatch.collectors.simulator``: write a registry and a replay file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=10_000, help="objects to write")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", default=None, help="ISO-8601 start (default 2026-11-21 +08:00)")
    ap.add_argument("--registry", type=Path, default=Path("matrix.yaml"))
    ap.add_argument("--out", type=Path, default=Path("simulated.jsonl"))
    args = ap.parse_args(argv)
    start = datetime.fromisoformat(args.start) if args.start else None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=TZ)
    matrix = build_matrix(seed=args.seed)
    write_registry(args.registry, matrix)
    t = time.perf_counter()
    k = write_jsonl(args.out, matrix, args.n, seed=args.seed, start=start)
    dt = time.perf_counter() - t
    print(f"{len(matrix.accounts)} accounts → {args.registry}; {k} objects → {args.out} "
          f"in {dt:.1f}s ({k / max(dt, 1e-9):,.0f}/s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

