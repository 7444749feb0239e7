"""The console in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no
browser is downloaded), against a real pipeline: the embedded Tansu broker and a Faust
worker replay a small matrix scenario into a SQLite store that the console reads while the
page is open.

Checks: the page is refused without a token and loads with one; an alert produced by the
pipeline appears without a reload; acknowledging it survives a reload; the matrix board
shows the replayed tasks' progress (2/3 and 1/2) with the right laggards. Screenshots of
every page go to ``test-artifacts/console/`` (or ``$MW_TEST_ARTIFACTS/console``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from matrixwatch.dashboards.console.app import ServerThread
from matrixwatch.pipeline import ReplaySession
from matrixwatch.settings import Settings
from tests.dashboards.console.conftest import (
    A1,
    A2,
    DUTY,
    DUTY_TOKEN,
    MANAGER_TOKEN,
    PROV,
    A,
    B,
    D,
    make_console,
)
from tests.factories import REGISTRY_YAML, T0, comment, repost, status

pytestmark = [pytest.mark.browser, pytest.mark.broker]

CHROMIUM = os.environ.get("MW_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AS_OF = "2026-11-05T00:00:00+08:00"
ARTIFACTS = Path(os.environ.get("MW_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[3] / "test-artifacts") / "console"
H = timedelta(hours=1)
M = timedelta(minutes=1)


def scenario() -> list[bytes]:
    """A province post reposted by 2 of 3 active cities, a city post reposted by 1 of 2
    counties, and a burst of 30 complaints on a quiet county account (a spike alert)."""
    p1 = status(5100000001, PROV, T0, "关于做好今冬明春防汛工作的通知")
    c1 = status(5100000002, A, T0 + 3 * H, "甲市今日发布暴雨黄色预警，请市民注意出行安全")
    quiet = status(5100000301, A2, T0 - 48 * H, "西区今日天气晴")
    objs: list[dict[str, Any]] = [
        quiet,
        *[comment(7100000101 + i, f"97100000{i:02d}", T0 - (47 - 6 * i) * H, quiet, "好的")
          for i in range(6)],
        p1,
        repost(5100000101, A, T0 + 30 * M, p1),
        repost(5100000102, B, T0 + 2 * H, p1, "转发//@甲市发布:转发微博", pid=5100000101),
        repost(5100000104, D, T0 + H, p1),  # 丁市 is inactive: not expected
        c1,
        repost(5100000201, A1, T0 + 3 * H + 10 * M, c1),
        repost(5100000202, A1, T0 + 4 * H, c1),
        comment(7100000001, "9810000001", T0 + 10 * M, p1, "请问什么时候开始？"),
        *[comment(7100000201 + i, f"96100000{i:02d}", T0 + 5 * H + 20 * i * timedelta(
            seconds=1), quiet, "停水三天了没人管，太气人了") for i in range(30)],
    ]
    return [json.dumps(o, ensure_ascii=False).encode() for o in objs]


@pytest.fixture(scope="module")
def pw() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return tmp_path_factory.mktemp("console-browser")


@pytest.fixture(scope="module")
def session(tmp: Path, pw: Any) -> Iterator[ReplaySession]:
    reg = tmp / "matrix.yaml"
    reg.write_text(REGISTRY_YAML, encoding="utf-8")
    with ReplaySession(reg, tmp / "replay", Settings(_env_file=None, partitions=2)  # type: ignore[call-arg]
                       ) as s:
        yield s


@pytest.fixture(scope="module")
def server(tmp: Path, session: ReplaySession) -> Iterator[ServerThread]:
    home = tmp / "console"
    home.mkdir()
    console = make_console(home, session.store_path, registry=tmp / "matrix.yaml")
    srv = ServerThread(console).start()
    yield srv
    srv.stop()
    console.close()


@pytest.fixture(scope="module")
def browser(pw: Any, tmp: Path) -> Iterator[Any]:
    ctx = pw.chromium.launch_persistent_context(
        str(tmp / "user-data"), executable_path=CHROMIUM, headless=True, args=FLAGS,
        viewport={"width": 1400, "height": 900}, locale="zh-CN", timezone_id="UTC")
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    assert not errors, errors


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/login#token={token}")
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=15000)


def test_refused_without_token(page: Any, server: ServerThread) -> None:
    page.goto(f"{server.url}/")
    assert page.url == f"{server.url}/login"
    page.wait_for_selector("#login-form")
    assert page.request.get(f"{server.url}/api/alerts").status == 401
    page.fill("#token", "not-a-token")
    page.click("#login-button")
    page.wait_for_selector("#login-error:not([hidden])")
    shot(page, "01-login-refused")


def test_page_loads_and_alert_appears_live(page: Any, server: ServerThread,
                                           session: ReplaySession) -> None:
    login(page, server.url, DUTY_TOKEN)
    assert page.url == f"{server.url}/"
    assert page.inner_text("#whoami").startswith(DUTY)
    page.wait_for_selector("#live.on")
    assert page.locator("[data-alert-id]").count() == 0
    shot(page, "02-alerts-before")
    page.evaluate("window.__sameDocument = 1")  # gone if the page reloads
    session.feed((AS_OF, line) for line in scenario())
    page.wait_for_selector("[data-rule='volume_spike']", timeout=60000)
    assert page.evaluate("window.__sameDocument") == 1, "the page reloaded"
    card = page.locator("[data-rule='volume_spike']").first
    assert card.get_attribute("data-status") == "new"
    text = card.inner_text()
    assert "甲市西区发布" in text and "甲市西区人民政府" in text
    assert "2026-11-02 14:0" in text  # Asia/Shanghai, though the browser runs in UTC
    assert "sev-" in (card.get_attribute("class") or "")
    shot(page, "03-alert-live")


def test_acknowledge_persists_across_reload(page: Any, server: ServerThread) -> None:
    card = page.locator("[data-rule='volume_spike']").first
    alert_id = card.get_attribute("data-alert-id")
    sel = f"[data-alert-id='{alert_id}']"
    page.click(f"{sel} [data-role=open]")
    page.click(f"{sel} [data-action=ack]")
    page.wait_for_selector(f"{sel}[data-status=acknowledged]")
    page.fill(f"{sel} [data-role=note]", "已联系甲市西区宣传部核实")
    page.click(f"{sel} [data-action=note]")
    page.wait_for_selector(f"{sel} [data-role=history] li:nth-child(2)")
    page.reload()
    page.wait_for_selector("body[data-ready='1']", state="attached")
    page.wait_for_selector(f"{sel}[data-status=acknowledged]")
    assert page.inner_text(f"{sel} [data-role=status]") == "已确认"
    page.click(f"{sel} [data-role=open]")
    history = page.locator(f"{sel} [data-role=history] li")
    history.nth(1).wait_for()
    assert history.count() == 2
    assert DUTY in history.nth(0).inner_text() and "确认" in history.nth(0).inner_text()
    assert "已联系甲市西区宣传部核实" in history.nth(1).inner_text()
    shot(page, "04-alert-acknowledged")


def test_matrix_board_progress(page: Any, server: ServerThread,
                               session: ReplaySession) -> None:
    session.drain(timeout=60)
    page.goto(f"{server.url}/#matrix")
    page.wait_for_selector("#open-tasks tr[data-post-id='5100000002']")
    p1 = page.locator("#open-tasks tr[data-post-id='5100000001']")
    c1 = page.locator("#open-tasks tr[data-post-id='5100000002']")
    assert p1.locator("[data-role=progress]").inner_text() == "2/3"
    assert c1.locator("[data-role=progress]").inner_text() == "1/2"
    assert p1.locator(".laggards li").all_inner_texts() == ["丙市发布（丙市人民政府新闻办公室）"]
    assert c1.locator(".laggards li").all_inner_texts() == ["甲市西区发布（甲市西区人民政府）"]
    assert "测试省发布" in p1.inner_text()
    # Countdown from the latest event time (14:09:40) to the deadline (next day 09:00).
    assert p1.locator(".countdown").inner_text() == "18小时50分"
    shot(page, "05-matrix-board")


def test_other_pages(page: Any, server: ServerThread) -> None:
    page.goto(f"{server.url}/#feed")
    page.wait_for_selector("#feed-list [data-event-id]")
    assert "停水三天了没人管" in page.inner_text("#feed-list")
    shot(page, "06-feed")
    page.goto(f"{server.url}/#handover")
    page.wait_for_selector("#handover-summary")
    assert "已联系甲市西区宣传部核实" in page.inner_text("#handover-actions")
    shot(page, "07-handover")
    page.goto(f"{server.url}/#charts")
    page.wait_for_selector("#chart-volume canvas")
    page.wait_for_selector("#chart-linkage[data-rows='3']")
    assert page.evaluate("typeof window.echarts") == "object"
    shot(page, "08-charts")
    page.click("#lang-switch")
    page.goto(f"{server.url}/#alerts")
    page.wait_for_selector("[data-rule='volume_spike'] [data-role=status]")
    assert page.inner_text("[data-tab=alerts]").startswith("Alerts")
    shot(page, "09-alerts-english")
    page.click("#lang-switch")


def test_admin_only_for_matrix_manager(page: Any, server: ServerThread) -> None:
    assert page.locator("[data-tab=admin]").is_hidden()  # the duty officer
    r = page.request.put(f"{server.url}/api/registry", data={"yaml": REGISTRY_YAML})
    assert r.status == 403
    page.click("#logout")
    page.wait_for_url(f"{server.url}/login")
    login(page, server.url, MANAGER_TOKEN)
    page.goto(f"{server.url}/#admin")
    page.wait_for_selector("#audit-table")
    page.fill("#registry-yaml", REGISTRY_YAML)
    page.click("#registry-validate")
    page.wait_for_selector("#registry-result.ok")
    audit = page.inner_text("#audit-table")
    assert "forbidden" in audit and "alert.ack" in audit and "registry.validate" in audit
    shot(page, "10-admin")
