"""The console API over a known SQLite store (conftest.py): authentication, roles, the
alert workflow and its history, the live stream, feed filters, the matrix board and
charts, hand-over and the audit log."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from matrixwatch.dashboards.console.app import COOKIE, LIMITER, MAX_BODY, create_app
from matrixwatch.dashboards.console.query import AlertFilter
from matrixwatch.dashboards.console.service import Console
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert
from tests.dashboards.console.conftest import (
    A1,
    A2,
    DUTY,
    DUTY_TOKEN,
    MANAGER,
    MANAGER_TOKEN,
    OTHER,
    OTHER_TOKEN,
    PROV,
    T0,
    A,
    B,
    C,
    H,
    make_console,
    write_store,
)

DUTY_H = {"Authorization": f"Bearer {DUTY_TOKEN}"}
MANAGER_H = {"Authorization": f"Bearer {MANAGER_TOKEN}"}


@pytest.fixture
async def client(console: Console) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(console))) as c:
        yield c


async def get(client: TestClient, path: str, headers: dict[str, str] = DUTY_H,
              **params: Any) -> Any:
    resp = await client.get(path, headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def act(client: TestClient, alert_id: str, headers: dict[str, str] = DUTY_H,
              **body: Any) -> Any:
    return await client.post(f"/api/alerts/{alert_id}/actions", json=body, headers=headers)


# --- authentication -----------------------------------------------------------------------
async def test_refused_without_token(client: TestClient) -> None:
    for path in ("/api/alerts", "/api/board", "/api/feed", "/api/stream", "/api/meta",
                 "/api/audit"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert (await resp.json())["error"] == "unauthorized"
    page = await client.get("/", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"] == "/login"
    js = await client.get("/static/app.js", allow_redirects=False)
    assert js.status == 302
    bad = await client.get("/api/alerts", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    cookie = await client.get("/api/alerts", cookies={COOKIE: "forged-session"})
    assert cookie.status == 401
    assert (await client.get("/login")).status == 200
    assert (await client.get("/healthz")).status == 200


async def test_page_loads_with_token(client: TestClient) -> None:
    resp = await client.get("/", headers=DUTY_H)
    assert resp.status == 200
    html = await resp.text()
    assert "矩阵舆情值班台" in html and "/static/app.js" in html
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert (await client.get("/static/vendor/echarts.common.min.js", headers=DUTY_H)).status \
        == 200


async def test_raised_errors_carry_the_security_headers(client: TestClient) -> None:
    for resp in (await client.get("/api/alerts?limit=nan", headers=DUTY_H),
                 await client.get("/no-such-page", headers=DUTY_H)):
        assert resp.status in (400, 404)
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers.get("Cache-Control") is None  # not an /api/ path
    bad = await client.get("/api/alerts?limit=nan", headers=DUTY_H)
    assert bad.headers["Cache-Control"] == "no-store"


async def test_login_cookie_logout_and_audit(client: TestClient, console: Console,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad = await client.post("/api/login", json={"token": "wrong"})
    assert bad.status == 401
    resp = await client.post("/api/login", json={"token": DUTY_TOKEN})
    assert resp.status == 200
    assert (await resp.json())["user"] == {"name": DUTY, "role": "duty-officer"}
    set_cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert DUTY_TOKEN not in set_cookie
    me = await client.get("/api/me")  # the session cookie alone
    assert (await me.json())["user"]["name"] == DUTY
    out = await client.post("/api/logout", json={})
    assert out.status == 200
    client.session.cookie_jar.clear()
    assert (await client.get("/api/me", cookies={COOKIE: "x"})).status == 401
    # The token from the environment (token_env) works too.
    other = await client.post("/api/login", json={"token": OTHER_TOKEN})
    assert (await other.json())["user"]["name"] == OTHER
    actions = [a["action"] for a in console.state.audit_log()]
    assert actions[::-1][:4] == ["login_failed", "login", "logout", "login"]
    # Tokens never reach a log line or the audit log.
    logged = caplog.text + json.dumps(console.state.audit_log(), ensure_ascii=False)
    for tok in (DUTY_TOKEN, OTHER_TOKEN, "wrong"):
        assert tok not in logged


async def test_failed_logins_are_rate_limited(client: TestClient) -> None:
    codes = [(await client.post("/api/login", json={"token": f"bad{i}"})).status
             for i in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    # Even the right token waits until the minute has passed.
    assert (await client.post("/api/login", json={"token": DUTY_TOKEN})).status == 429


async def test_wrong_bearer_tokens_share_the_login_limit(client: TestClient) -> None:
    """Token guessing on the API is throttled like guessing on the login form (it was
    not: 40 wrong bearer tokens all got 401); the page's session cookie keeps working."""
    assert (await client.post("/api/login", json={"token": DUTY_TOKEN})).status == 200
    codes = [(await client.get("/api/me", headers={"Authorization": f"Bearer bad{i}"})).status
             for i in range(12)]
    assert codes == [401] * 10 + [429] * 2
    locked = await client.get("/api/alerts", headers={"Authorization": "Bearer bad"})
    assert (await locked.json())["error"] == "too_many_attempts"
    assert locked.headers["Retry-After"] == "60"
    # Even the right token waits (its answer must not tell it apart), and so does login.
    assert (await client.get("/api/me", headers=DUTY_H)).status == 429
    assert (await client.post("/api/login", json={"token": DUTY_TOKEN})).status == 429
    # The page polls with its session cookie, which never counts and is never throttled.
    me = await client.get("/api/me")
    assert me.status == 200 and (await me.json())["user"]["name"] == DUTY
    # A minute later the address is forgiven.
    limiter = client.server.app[LIMITER]  # type: ignore[union-attr]
    limiter.clock = lambda: time.monotonic() + 61
    assert (await client.get("/api/me", headers=DUTY_H)).status == 200


async def _guesses(client: TestClient, forwarded_for: str, n: int) -> list[int]:
    return [(await client.get("/api/me", headers={"Authorization": f"Bearer bad{i}",
                                                   "X-Forwarded-For": forwarded_for})).status
            for i in range(n)]


async def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
        client: TestClient) -> None:
    assert await _guesses(client, "203.0.113.5", 11) == [401] * 10 + [429]
    # Any client can write the header: it must not buy a fresh allowance.
    assert await _guesses(client, "203.0.113.6", 1) == [429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
        console: Console) -> None:
    """Behind a reverse proxy every client shared the proxy's address: one guesser
    locked everyone out of login for a minute."""
    console.cs = console.cs.model_copy(update={"trusted_proxies": [
        ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("10.0.0.0/8")]})
    async with TestClient(TestServer(create_app(console))) as client:
        # The client wrote a fake first hop; 10.1.2.3 is a second trusted proxy.
        assert await _guesses(client, "1.1.1.1, 203.0.113.5, 10.1.2.3", 11) == \
            [401] * 10 + [429]
        assert await _guesses(client, "203.0.113.6", 1) == [401]  # another client
        ok = await client.get("/api/me", headers={**DUTY_H, "X-Forwarded-For": "203.0.113.7"})
        assert ok.status == 200


async def test_concurrent_guesses_cannot_outrun_the_limit(client: TestClient) -> None:
    """A burst of parallel guesses gets 10 answers, not one per request; a burst of
    requests with the right token is never throttled (successes do not count)."""
    async def me(token: str) -> int:
        return (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
                ).status

    good = await asyncio.gather(*(me(DUTY_TOKEN) for _ in range(40)))
    assert good == [200] * 40
    bad = await asyncio.gather(*(me(f"guess{i}") for i in range(30)))
    assert sorted(bad) == [401] * 10 + [429] * 20


def test_tokens_compared_in_constant_time(console: Console,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    user = console.users.authenticate(DUTY_TOKEN)  # the first user in the file
    assert user is not None and user.name == DUTY
    # Compared against every user (no early exit), always hash against hash.
    assert len(calls) == 3
    assert all(len(a) == len(b) == 64 for a, b in calls)
    calls.clear()
    assert console.users.authenticate("x" * 43) is None
    assert len(calls) == 3


# --- roles --------------------------------------------------------------------------------
async def test_duty_officer_cannot_change_registry(client: TestClient, console: Console
                                                   ) -> None:
    before = Path(str(console.registry_path)).read_text(encoding="utf-8")
    good = before.replace("甲市发布", "甲市发布（新）")
    for method, path in (("PUT", "/api/registry"), ("POST", "/api/registry/validate")):
        resp = await client.request(method, path, json={"yaml": good}, headers=DUTY_H)
        assert resp.status == 403, path
    assert (await client.get("/api/audit", headers=DUTY_H)).status == 403
    assert Path(str(console.registry_path)).read_text(encoding="utf-8") == before
    refusals = [a for a in console.state.audit_log() if a["action"] == "forbidden"]
    assert len(refusals) == 3 and {a["user"] for a in refusals} == {DUTY}


async def test_manager_validates_and_uploads_registry(client: TestClient, console: Console
                                                      ) -> None:
    path = Path(str(console.registry_path))
    good = path.read_text(encoding="utf-8").replace("甲市发布, unit", "甲市新闻发布, unit")
    ok = await client.post("/api/registry/validate", json={"yaml": good}, headers=MANAGER_H)
    assert ok.status == 200
    assert (await ok.json())["accounts"] == 7
    broken = good.replace('parent: "9100000011"', 'parent: "123"', 1)
    bad = await client.post("/api/registry/validate", json={"yaml": broken}, headers=MANAGER_H)
    assert bad.status == 422 and "unknown parent" in (await bad.json())["error"]
    refused = await client.put("/api/registry", json={"yaml": broken}, headers=MANAGER_H)
    assert refused.status == 422
    assert "甲市新闻发布" not in path.read_text(encoding="utf-8")
    up = await client.put("/api/registry", json={"yaml": good}, headers=MANAGER_H)
    assert up.status == 200, await up.text()
    assert "甲市新闻发布" in path.read_text(encoding="utf-8")
    assert list(path.parent.glob("matrix.yaml.bak-*"))
    assert console.registry.get("weibo", A).name == "甲市新闻发布"  # type: ignore[union-attr]
    audit = await get(client, "/api/audit", MANAGER_H)
    actions = [a["action"] for a in audit["audit"]]
    assert actions[:4] == ["registry.upload", "registry.upload", "registry.validate",
                           "registry.validate"]
    assert audit["audit"][0]["user"] == MANAGER


async def test_registry_validation_runs_off_the_event_loop(
        client: TestClient, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow validation (a 5k-deep parent chain took 11.5 s) must not stall the server:
    /healthz answered only after it when it ran on the event loop."""
    real = Console.validate_registry
    started, release = threading.Event(), threading.Event()

    def slow(text: str) -> Any:
        started.set()
        release.wait(5)  # on the event loop this blocks the loop for the whole 5 s
        return real(text)

    monkeypatch.setattr(Console, "validate_registry", staticmethod(slow))
    good = Path(str(console.registry_path)).read_text(encoding="utf-8")
    pending = asyncio.ensure_future(
        client.post("/api/registry/validate", json={"yaml": good}, headers=MANAGER_H))
    t0 = time.monotonic()
    while not started.is_set():
        await asyncio.sleep(0.01)
    health = await client.get("/healthz")
    waited = time.monotonic() - t0
    release.set()
    resp = await pending
    assert health.status == 200 and waited < 2.5, waited
    assert resp.status == 200 and (await resp.json())["accounts"] == 7


@pytest.mark.parametrize("text, message", [
    ("accounts: !!int abc", "cannot read 'abc'"),  # was a bare ValueError: 500
    ("accounts: " + "[" * 5000 + "]" * 5000, "invalid YAML"),  # was RecursionError: 500
    ("accounts:\n  - {id: 1, platform: weibo, name: x, closed_at: 2024-02-30}",
     "invalid YAML"),
    ("- just a list", "expected a mapping with an 'accounts' list"),
])
async def test_bad_registry_uploads_are_422_with_the_reason(
        client: TestClient, text: str, message: str) -> None:
    resp = await client.post("/api/registry/validate", json={"yaml": text}, headers=MANAGER_H)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert body["ok"] is False and message in body["error"]


async def test_registry_validation_bug_is_500_and_huge_body_413(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the registry's own error is the uploader's fault; anything else is a bug and
    must not be dressed up as a 422. Bodies are bounded (413, JSON like other errors)."""
    def broken(cls: type[Registry], text: str, source: str = "") -> Registry:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Registry, "from_text", classmethod(broken))
    resp = await client.post("/api/registry/validate", json={"yaml": "accounts: []"},
                             headers=MANAGER_H)
    assert resp.status == 500
    huge = await client.post("/api/registry/validate", json={"yaml": "#" * (MAX_BODY + 1)},
                             headers=MANAGER_H)
    assert huge.status == 413 and (await huge.json())["error"] == "too_large"


async def test_state_changes_must_be_json(client: TestClient) -> None:
    resp = await client.post("/api/alerts/alert-red-1/actions", data="action=ack",
                             headers={**DUTY_H,
                                      "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415


# --- alerts and their workflow ------------------------------------------------------------
async def test_alert_list_shows_what_fired(client: TestClient) -> None:
    data = await get(client, "/api/alerts")
    assert [a["id"] for a in data["alerts"]] == ["alert-red-1", "alert-blue-1", "alert-yellow-1"]
    red = data["alerts"][0]
    assert red["severity"] == "red" and red["timestamp"] == "2026-11-02T13:57:00+08:00"
    assert red["account_name"] == "甲市西区发布" and red["unit"] == "甲市西区人民政府"
    assert red["values"] == {"value": 8.0, "share": 1.0}
    assert red["sample_posts"] == [{"text": "停水三天了没人管，太气人了",
                                    "url": "https://weibo.com/9600000000/7000000200"}]
    assert red["state"]["status"] == "new"
    yellow = data["alerts"][2]  # linkage samples are laggard accounts, named with unit
    assert [s["account_id"] for s in yellow["sample_posts"]] == [B, C]
    assert yellow["sample_posts"][1]["text"] == "丙市发布（丙市人民政府新闻办公室）"
    assert yellow["unit"] == "测试省人民政府新闻办公室"  # from the registry
    only_red = await get(client, "/api/alerts", severity="red")
    assert [a["id"] for a in only_red["alerts"]] == ["alert-red-1"]


async def test_workflow_history_persists(client: TestClient, console: Console,
                                         tmp_path: Path, store_path: Path) -> None:
    r = await act(client, "alert-red-1", action="ack")
    assert r.status == 200 and (await r.json())["state"]["status"] == "acknowledged"
    again = await act(client, "alert-red-1", action="ack")
    assert again.status == 409
    nobody = await act(client, "alert-red-1", action="assign", assignee="不存在")
    assert nobody.status == 409
    assert (await act(client, "alert-red-1", action="assign", assignee=OTHER)).status == 200
    assert (await act(client, "alert-red-1", action="note", note="已电话联系西区宣传部")).status \
        == 200
    closed = await act(client, "alert-red-1", MANAGER_H, action="close", note="已回复网民")
    assert (await closed.json())["state"] == {
        "status": "closed", "assignee": OTHER, "updated_by": MANAGER,
        "updated_at": (await closed.json())["state"]["updated_at"]}
    assert (await act(client, "alert-red-1", action="close")).status == 409
    assert (await act(client, "missing", action="ack")).status == 404
    assert (await act(client, "alert-red-1", action="explode")).status == 400
    detail = await get(client, "/api/alerts/alert-red-1")
    hist = [(h["user"], h["action"], h["status"], h["assignee"], h["note"])
            for h in detail["history"]]
    assert hist == [
        (DUTY, "ack", "acknowledged", None, None),
        (DUTY, "assign", "acknowledged", OTHER, None),
        (DUTY, "note", "acknowledged", OTHER, "已电话联系西区宣传部"),
        (MANAGER, "close", "closed", OTHER, "已回复网民"),
    ]
    assert all(h["at"] > 0 for h in detail["history"])
    # Open list no longer has it; a fresh console on the same files still knows it all.
    open_ids = [a["id"] for a in (await get(client, "/api/alerts", status="open"))["alerts"]]
    assert "alert-red-1" not in open_ids
    fresh = make_console(tmp_path, store_path)
    try:
        assert fresh.alert_detail("alert-red-1")["state"]["status"] == "closed"
        assert len(fresh.alert_detail("alert-red-1")["history"]) == 4
    finally:
        fresh.close()
    # The pipeline store is never written by the console.
    conn = sqlite3.connect(store_path)
    doc = json.loads(conn.execute("SELECT doc FROM alerts WHERE id='alert-red-1'").fetchone()[0])
    conn.close()
    assert "state" not in doc and "history" not in doc
    audit = [a["action"] for a in console.state.audit_log()]
    assert audit[:4] == ["alert.close", "alert.note", "alert.assign", "alert.ack"]


async def test_reopen(client: TestClient) -> None:
    assert (await act(client, "alert-blue-1", action="close")).status == 200
    r = await act(client, "alert-blue-1", action="reopen", note="又有新评论")
    assert (await r.json())["state"]["status"] == "acknowledged"


async def _read_events(resp: Any, want: int, timeout: float = 8.0) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    event = None

    async def read() -> None:
        nonlocal event
        while len(out) < want:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("alert", "state"):
                out.append((event, json.loads(line[6:])))

    await asyncio.wait_for(read(), timeout)
    return out


async def test_stream_pushes_new_alerts_and_state_changes(client: TestClient,
                                                          store_path: Path) -> None:
    cursor = (await get(client, "/api/alerts"))["cursor"]
    resp = await client.get("/api/stream", params={"cursor": cursor}, headers=DUTY_H)
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    new = Alert(id="alert-new-1", rule="keyword_watchlist", type="keyword", severity="orange",
                timestamp=(T0 + 5 * H).isoformat(), account_id=A1, title="关注词命中：停水",
                samples=["停水了 https://weibo.com/1/2"], values={"hits": 3.0})
    await asyncio.to_thread(write_store, store_path, None, [new])
    (kind, data), = await _read_events(resp, 1)
    assert kind == "alert" and data["id"] == "alert-new-1"
    assert data["account_name"] == "甲市东区发布" and data["state"]["status"] == "new"
    assert int(data["cursor"]) > int(cursor)
    assert (await act(client, "alert-new-1", action="ack")).status == 200
    (kind, data), = await _read_events(resp, 1)
    assert kind == "state" and data["states"]["alert-new-1"]["status"] == "acknowledged"
    resp.close()


# --- hand-over ----------------------------------------------------------------------------
async def test_handover_lists_open_alerts_and_shift_actions(client: TestClient) -> None:
    await act(client, "alert-red-1", action="ack")
    await act(client, "alert-blue-1", action="close", note="误报")
    note = await client.post("/api/handover/notes", json={"text": "西区停水仍在发酵，早班继续跟踪"},
                             headers=DUTY_H)
    assert note.status == 200
    d = await get(client, "/api/handover", since="0")
    assert {a["id"] for a in d["open_alerts"]} == {"alert-red-1", "alert-yellow-1"}
    assert [(x["action"], x["alert_id"]) for x in d["actions"]] == [
        ("ack", "alert-red-1"), ("close", "alert-blue-1")]
    assert d["actions"][1]["note"] == "误报"
    assert d["actions"][1]["alert"]["title"] == "甲市发布 声量突增"
    assert d["notes"][0]["text"] == "西区停水仍在发酵，早班继续跟踪"
    assert d["counts"] == {"open": 2, "new": 1, "acknowledged": 1, "closed_in_shift": 1,
                           "actions": 2}
    later = await get(client, "/api/handover", since=str(10**10))
    assert later["actions"] == [] and later["notes"] == []


# --- feed ---------------------------------------------------------------------------------
async def test_feed_filters_and_search(client: TestClient) -> None:
    neg = await get(client, "/api/feed", sentiment="negative")
    ids = [e["id"] for e in neg["events"]]
    assert len(ids) == 8 and ids[0] == "7000000207"  # newest first
    assert neg["events"][0]["owner_name"] == "甲市西区发布"
    assert neg["events"][0]["owner_unit"] == "甲市西区人民政府"
    everything = await get(client, "/api/feed")
    assert len(everything["events"]) == 19
    assert [e["id"] for e in (await get(client, "/api/feed", unit="甲市西区人民政府",
                                        sentiment="negative"))["events"]] == ids
    assert (await get(client, "/api/feed", unit="乙市人民政府新闻办公室",
                      sentiment="negative"))["events"] == []
    county = await get(client, "/api/feed", level="county", kind="post")
    assert [e["id"] for e in county["events"]] == ["6000000301"]
    by_account = await get(client, "/api/feed", account=A1)  # its reposts (author)
    assert {e["id"] for e in by_account["events"]} == {"6000000202", "6000000203"}
    about_prov = await get(client, "/api/feed", account=PROV, kind="comment")
    assert [e["id"] for e in about_prov["events"]] == ["7000000001"]
    assert (await get(client, "/api/feed", platform="wechat"))["events"] == []
    found = await get(client, "/api/feed", q="太气人了3")
    assert [e["id"] for e in found["events"]] == ["7000000203"]
    assert (await get(client, "/api/feed", q="100%_"))["events"] == []  # LIKE escaped
    page1 = await get(client, "/api/feed", sentiment="negative", limit="5")
    assert page1["next_before"] is not None
    page2 = await get(client, "/api/feed", sentiment="negative", limit="5",
                      before=str(page1["next_before"]))
    assert [e["id"] for e in page1["events"] + page2["events"]] == ids
    bad = await client.get("/api/feed", params={"level": "galaxy"}, headers=DUTY_H)
    assert bad.status == 400


# --- matrix board and charts --------------------------------------------------------------
async def test_board_open_tasks_progress_countdown_laggards(client: TestClient) -> None:
    d = await get(client, "/api/board")
    assert d["ref"] == "2026-11-02T13:57:00+08:00" and d["clock"] == "event"
    tasks = d["open_tasks"]
    assert [(t["post_id"], t["progress"]) for t in tasks] == [
        ("6000000001", "2/3"), ("6000000201", "1/2")]
    p1, c1 = tasks
    assert p1["deadline"] == "2026-11-03T09:00:00+08:00"
    assert p1["remaining"] == 24 * 3600 - (4 * 3600 + 57 * 60)
    assert [x["id"] for x in p1["linked"]] == [A, B]
    assert [x["latency"] for x in p1["linked"]] == [1800.0, 7200.0]
    assert p1["laggards"] == [{"id": C, "name": "丙市发布", "unit": "丙市人民政府新闻办公室",
                               "level": "city"}]
    assert p1["name"] == "测试省发布" and p1["unit"] == "测试省人民政府新闻办公室"
    assert c1["laggards"][0]["id"] == A2 and c1["linked"][0]["latency"] == 600.0
    # p2 is in the linkage table: the pipeline closed it, so it is not open.
    assert "6000000002" not in {t["post_id"] for t in tasks}
    assert [c["post_id"] for c in d["closed_recent"]] == ["6000000002", "6000000000"]
    rates = {r["account_id"]: (r["tasks_expected"], r["tasks_linked"], r["response_rate"])
             for r in d["responses"]}
    assert rates == {A: (2, 1, 0.5), B: (2, 0, 0.0), C: (2, 0, 0.0)}
    assert d["responses"][-1]["account_id"] == A  # lowest rate first
    stale = [(s["id"], s["silent_days"]) for s in d["stale"]]
    assert stale == [(C, None), (A2, 2.2)]


def test_board_wall_clock(tmp_path: Path, store_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_console(tmp_path, store_path, clock="wall")
    try:
        monkeypatch.setattr(time, "time", lambda: (T0 + 23 * H).timestamp())
        tasks = c.board()["open_tasks"]
        assert [(t["post_id"], t["remaining"]) for t in tasks] == [
            ("6000000001", 3600.0), ("6000000201", 4 * 3600.0)]
        monkeypatch.setattr(time, "time", lambda: (T0 + 30 * H).timestamp())
        assert c.board()["open_tasks"] == []
    finally:
        c.close()


async def test_series_and_linkage_rates(client: TestClient) -> None:
    s = await get(client, "/api/series", account=A2, days="1")
    assert s["bucket"] == 1800 and s["owners"] == [A2]
    nonzero = [p for p in s["points"] if p["total"]]
    assert sum(p["total"] for p in nonzero) == 8
    assert all(p["negative_share"] == 1.0 for p in nonzero)
    unit = await get(client, "/api/series", unit="甲市西区人民政府", days="1")
    assert unit["points"] == s["points"]
    assert (await client.get("/api/series", headers=DUTY_H)).status == 400
    r = await get(client, "/api/linkage-rates", superior=PROV)
    rows = {x["id"]: x for x in r["rows"]}
    assert set(rows) == {A, B, C}
    assert (rows[A]["closed_rate"], rows[A]["open_rate"]) == (0.5, 1.0)
    assert (rows[C]["closed_rate"], rows[C]["open_rate"]) == (0.0, 0.0)
    assert rows[B]["closed_expected"] == 2 and rows[B]["open_linked"] == 1


async def test_meta_lists_matrix_and_users(client: TestClient) -> None:
    m = await get(client, "/api/meta")
    assert m["user"] == {"name": DUTY, "role": "duty-officer"}
    assert len(m["accounts"]) == 7 and "甲市西区人民政府" in m["units"]
    assert m["levels"] == ["province", "city", "county"]
    assert {s["id"] for s in m["superiors"]} == {PROV, A}
    assert {u["name"] for u in m["users"]} == {DUTY, MANAGER, OTHER}
    assert "token" not in json.dumps(m) and DUTY_TOKEN not in json.dumps(m)


async def test_empty_or_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "store.sqlite"
    c = make_console(tmp_path, missing)
    try:
        assert c.alert_list(AlertFilter())["alerts"] == []
        assert c.board()["open_tasks"] == []
        assert not missing.exists()  # the console never creates the pipeline store
    finally:
        c.close()


# --- query parameters ---------------------------------------------------------------------
BAD_NUMBERS = ("nan", "NaN", "-nan", "abc", "0x10", "²", "1,5")
HUGE_NUMBERS = ("inf", "-inf", "1e999", "-1e999", "99999999999999999999999", "1e308", "-5")
NUMERIC_PARAMS = [("/api/alerts", "limit"), ("/api/feed", "limit"), ("/api/audit", "limit"),
                  ("/api/board", "days"), (f"/api/series?account={A2}", "days"),
                  (f"/api/linkage-rates?superior={PROV}", "days")]
TIME_PARAMS = [("/api/alerts", "before"), ("/api/feed", "before"), ("/api/handover", "since"),
               ("/api/handover", "until")]


async def _status(client: TestClient, path: str, name: str, value: str) -> tuple[int, Any]:
    sep = "&" if "?" in path else "?"
    resp = await client.get(f"{path}{sep}{name}={quote(value)}", headers=MANAGER_H)
    return resp.status, await resp.json()


@pytest.mark.parametrize("path, name", NUMERIC_PARAMS)
async def test_numbers_are_clamped_or_refused_never_500(client: TestClient, path: str,
                                                        name: str) -> None:
    """NaN got through min/max and int(NaN) raised (500): text and NaN are a 400 like any
    other bad parameter; infinities and huge numbers clamp; empty means the default."""
    for value in BAD_NUMBERS:
        status, body = await _status(client, path, name, value)
        assert status == 400 and body == {"error": "bad_param",
                                          "message": f"{name}: not a number"}, value
    for value in (*HUGE_NUMBERS, "", " 7 "):
        status, body = await _status(client, path, name, value)
        assert status == 200, (value, body)


@pytest.mark.parametrize("path, name", TIME_PARAMS)
async def test_times_out_of_range_are_refused_never_500(client: TestClient, path: str,
                                                        name: str) -> None:
    """NaN, infinities and years past 9999 reached datetime and raised (500)."""
    for value in ("nan", "inf", "-inf", "1e999", "1e20", "-1e20", "99999999999999999999999"):
        status, body = await _status(client, path, name, value)
        assert status == 400 and body["error"] == "bad_param", (value, body)
        assert body["message"].startswith(f"{name}: "), body
    for value in ("abc", "2026-13-01T00:00:00+08:00", "²"):
        status, body = await _status(client, path, name, value)
        assert status == 400 and "not a time" in body["message"], (value, body)
    for value in ("", "0", str(T0.timestamp()), "2026-11-02T12:00:00+08:00"):
        status, body = await _status(client, path, name, value)
        assert status == 200, (value, body)


async def test_audit_before_is_a_row_id(client: TestClient) -> None:
    """A huge id overflowed SQLite (500) and "²" passed isdigit() but not int() (500)."""
    for value in ("99999999999999999999999", "9" * 5000, "0" * 30 + "1", ""):
        status, body = await _status(client, "/api/audit", "before", value)
        assert status == 200, (value, body)
    for value in ("²", "-1", "1.5", "nan", "1e999", "١٢"):
        status, body = await _status(client, "/api/audit", "before", value)
        assert status == 400 and body == {"error": "bad_param",
                                          "message": "before: not a whole number"}, value


async def test_stream_refuses_a_cursor_it_could_not_have_made(client: TestClient) -> None:
    """A huge cursor overflowed SQLite inside the stream (after its 200), and text or a
    negative one silently replayed old alerts as new: a 400 before the stream starts."""
    for value in ("99999999999999999999999", "abc", "-5", "nan", "1e3", "²"):
        resp = await client.get("/api/stream", params={"cursor": value}, headers=DUTY_H)
        assert resp.status == 400, value
        assert (await resp.json())["message"] == "cursor: not a cursor from /api/alerts"
