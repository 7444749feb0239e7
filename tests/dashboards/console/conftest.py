"""Fixtures for the console: a small store with known answers, users, a running app.

The store holds one matrix (tests/factories.py) at T0 = 2026-11-02 09:00 +08:00 with
the latest event at T0+5h, so with the event clock the reference time is T0+5h:

* p1 (province, T0): expected 甲 乙 丙 (丁 is inactive); 甲 at +30 min and 乙 at +2 h
  reposted → open, 2/3, laggard 丙, deadline T0+24h (19 h left);
* c1 (甲市, T0+3h): expected 甲东 甲西; 甲东 reposted twice → open, 1/2, laggard 甲西;
* p2 (province, T0+1h): closed by the pipeline already (in the linkage table) → not open;
* p0 (province, T0-2d): closed, 甲 linked in 600 s → response rates 甲 1/1, 乙 0/1, 丙 0/1;
* 甲西区 posted last at T0-48h and 丙市 never: stale with stale_days=2;
* negative comments on 甲西区's post at T0+5h, alerts red / yellow / blue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from matrixwatch.dashboards.console.auth import Users, token_hash
from matrixwatch.dashboards.console.query import SQLiteQueries
from matrixwatch.dashboards.console.service import Console, ConsoleSettings
from matrixwatch.dashboards.console.state import ConsoleState
from matrixwatch.registry import Registry
from matrixwatch.settings import Settings
from matrixwatch.streams.records import Alert, Event, LinkageResult
from matrixwatch.streams.sinks.sqlite import SQLiteStore
from tests.factories import NAMES, REGISTRY_YAML, T0

PROV, A, B, C, D, A1, A2 = ("9100000001", "9100000011", "9100000012", "9100000013",
                            "9100000014", "9100000111", "9100000112")
H = timedelta(hours=1)
M = timedelta(minutes=1)
DUTY_TOKEN = "duty-token-0123456789abcdefghijklmnopqrstuv"
MANAGER_TOKEN = "manager-token-0123456789abcdefghijklmnopqrs"
OTHER_TOKEN = "other-token-0123456789abcdefghijklmnopqrstu"
DUTY, MANAGER, OTHER = "值班员甲", "管理员乙", "值班员丙"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium (/usr/bin/chromium) with Playwright")


def iso(t: datetime) -> str:
    return t.isoformat()


def ev(id_: str, kind: str, author: str, owner: str, t: datetime, text: str,
       label: str = "neutral", **kw: Any) -> Event:
    acc_names = NAMES
    return Event(platform="weibo", id=id_, kind=kind, account_id=author, owner_id=owner,
                 text=text, created_at=iso(t), collected_at=iso(t),
                 account_name=acc_names.get(author, f"网友{author[-4:]}"),
                 sentiment=0.1 if label == "negative" else 0.6, sentiment_label=label,
                 url=f"https://weibo.com/{author}/{id_}", **kw)


def repost_ev(id_: str, author: str, t: datetime, root: str, root_author: str,
              root_t: datetime) -> Event:
    return ev(id_, "repost", author, root_author, t, "转发微博", root_id=root,
              root_account_id=root_author, root_created_at=iso(root_t))


def scenario_events() -> list[Event]:
    evs = [
        ev("6000000000", "post", PROV, PROV, T0 - 48 * H, "省里两天前的通知"),
        ev("6000000001", "post", PROV, PROV, T0, "关于做好今冬明春防汛工作的通知"),
        ev("6000000002", "post", PROV, PROV, T0 + H, "已截止的任务（流水线已关闭）"),
        repost_ev("6000000101", A, T0 + 30 * M, "6000000001", PROV, T0),
        repost_ev("6000000102", B, T0 + 2 * H, "6000000001", PROV, T0),
        repost_ev("6000000103", D, T0 + H, "6000000001", PROV, T0),  # inactive: not expected
        ev("6000000201", "post", A, A, T0 + 3 * H, "甲市今日发布暴雨黄色预警"),
        repost_ev("6000000202", A1, T0 + 3 * H + 10 * M, "6000000201", A, T0 + 3 * H),
        repost_ev("6000000203", A1, T0 + 4 * H, "6000000201", A, T0 + 3 * H),
        ev("6000000301", "post", A2, A2, T0 - 48 * H, "西区今日天气晴"),
        ev("7000000001", "comment", "9800000001", PROV, T0 + 10 * M, "支持！", "positive",
           post_id="6000000001"),
    ]
    for i in range(8):
        evs.append(ev(f"70000002{i:02d}", "comment", f"96000000{i:02d}", A2,
                      T0 + 4 * H + 50 * M + i * M, f"停水三天了没人管，太气人了{i}", "negative",
                      post_id="6000000301"))
    return evs


def scenario_alerts() -> list[Alert]:
    return [
        Alert(id="alert-red-1", rule="negative_surge", type="negative_surge", severity="red",
              timestamp=iso(T0 + 5 * H - 3 * M), account_id=A2, title="甲市西区发布 负面激增",
              message="5 分钟内负面评论 8 条（基线 0.2）", values={"value": 8.0, "share": 1.0},
              samples=["停水三天了没人管，太气人了 https://weibo.com/9600000000/7000000200"],
              account_name="甲市西区发布", unit="甲市西区人民政府", level="county"),
        Alert(id="alert-yellow-1", rule="linkage_low", type="linkage_low", severity="yellow",
              timestamp=iso(T0 - 24 * H), account_id=PROV, post_id="6000000000",
              title="测试省发布 转发联动率偏低（33%）", message="联动率 33%",
              values={"rate": 0.333333, "linked": 1.0, "expected": 3.0}, samples=[B, C]),
        Alert(id="alert-blue-1", rule="volume_spike", type="spike", severity="blue",
              timestamp=iso(T0 + 2 * H), account_id=A, title="甲市发布 声量突增",
              message="声量 12", values={"value": 12.0}),
    ]


def scenario_linkage() -> list[LinkageResult]:
    return [
        LinkageResult(post_id="6000000000", account_id=PROV, platform="weibo",
                      created_at=iso(T0 - 48 * H), deadline=iso(T0 - 24 * H),
                      expected=[A, B, C], linked={A: 600.0}, rate=1 / 3,
                      closed_at=iso(T0 - 23 * H)),
        LinkageResult(post_id="6000000002", account_id=PROV, platform="weibo",
                      created_at=iso(T0 + H), deadline=iso(T0 + 25 * H),
                      expected=[A, B, C], linked={}, rate=0.0, closed_at=iso(T0 + 5 * H)),
    ]


def write_store(path: Path, events: list[Event] | None = None, alerts: list[Alert] | None = None,
                linkage: list[LinkageResult] | None = None) -> None:
    async def go() -> None:
        store = SQLiteStore(path)
        await store.open()
        if events:
            await store.write_events(events)
        if alerts:
            await store.write_alerts(alerts)
        if linkage:
            await store.write_linkage(linkage)
        await store.close()

    asyncio.run(go())


def users_file(tmp: Path) -> Path:
    p = tmp / "users.yaml"
    p.write_text(
        "users:\n"
        f"  - {{name: {DUTY}, role: duty-officer, token_sha256: {token_hash(DUTY_TOKEN)}}}\n"
        f"  - {{name: {MANAGER}, role: matrix-manager, token_sha256: "
        f"{token_hash(MANAGER_TOKEN)}}}\n"
        f"  - {{name: {OTHER}, role: duty-officer, token_env: MW_TEST_OTHER_TOKEN}}\n",
        encoding="utf-8")
    return p


def make_console(tmp: Path, store: Path, *, registry: Path | None = None,
                 **cs: Any) -> Console:
    reg = registry or tmp / "matrix.yaml"
    if registry is None:
        reg.write_text(REGISTRY_YAML, encoding="utf-8")
    settings = Settings(_env_file=None, data_dir=tmp, sqlite_path=store,  # type: ignore[call-arg]
                        registry=reg, es_url=None)
    csettings = ConsoleSettings(_env_file=None, **{  # type: ignore[call-arg]
        "users_file": users_file(tmp), "stale_days": 2.0, "poll_interval": 0.2, **cs})
    users = Users(csettings.users_file, env={"MW_TEST_OTHER_TOKEN": OTHER_TOKEN})
    return Console(settings, SQLiteQueries(store), ConsoleState(tmp / "console.sqlite"), users,
                   csettings, Registry.load(reg))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    p = tmp_path / "store.sqlite"
    write_store(p, scenario_events(), scenario_alerts(), scenario_linkage())
    return p


@pytest.fixture
def console(tmp_path: Path, store_path: Path) -> Iterator[Console]:
    c = make_console(tmp_path, store_path)
    yield c
    c.close()
