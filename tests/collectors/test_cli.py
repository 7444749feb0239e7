"""`matrixwatch collect …` end to end with --out (the fake server runs in a thread)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from matrixwatch.cli import app
from matrixwatch.collectors.cursors import CursorStore
from tests.collectors.fakeweibo import FIXTURES, FakeWeibo

runner = CliRunner()
REGISTRY = """accounts:
  - {id: "9000000001", platform: weibo, name: 某某市发布, level: city, parent: null}
  - {id: "9000000002", platform: weibo, name: 某某区发布, level: county, parent: "9000000001"}
  - {id: "9000000003", platform: weibo, name: 某某县发布, level: county, parent: "9000000001",
     active: false}
"""


@pytest.fixture
def server() -> Iterator[tuple[FakeWeibo, str]]:
    fw = FakeWeibo()
    for uid in (9000000001, 9000000002, 9000000003):
        fw.add_user(uid, str(uid))
        for _ in range(3):
            fw.add_post(uid)
    fw.feeds["gov.xml"] = ("application/rss+xml",
                           (FIXTURES / "feed_gov_rss.xml").read_text(encoding="utf-8"))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, str] = {}
    stop = asyncio.Event()

    async def main() -> None:
        async with fw.serve() as base:
            box["base"] = base
            ready.set()
            await stop.wait()

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    assert ready.wait(10)
    yield fw, box["base"]
    loop.call_soon_threadsafe(stop.set)
    t.join(10)
    loop.close()


def env(tmp_path: Path, base: str) -> dict[str, str]:
    return {"MW_WEIBO_MOBILE_URL": base, "MW_DATA_DIR": str(tmp_path), "MW_HOST_RATE": "100",
            "MW_BACKOFF_INITIAL": "0.01", "MW_KAFKA_URL": ""}


def lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_collect_weibo_once_to_jsonl(tmp_path: Path, server: tuple[FakeWeibo, str]) -> None:
    _fw, base = server
    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = runner.invoke(app, ["collect", "weibo", "--registry", str(reg), "--out", str(out)],
                      env=env(tmp_path, base))
    assert r.exit_code == 0, r.output
    got = lines(out)
    assert len(got) == 6  # the closed account is not polled
    assert {o["user"]["id"] for o in got} == {9000000001, 9000000002}
    r2 = runner.invoke(app, ["collect", "weibo", "--registry", str(reg), "--out", str(out)],
                       env=env(tmp_path, base))
    assert r2.exit_code == 0 and len(lines(out)) == 6  # cursors in MW_DATA_DIR: nothing new
    unknown = runner.invoke(app, ["collect", "weibo", "--registry", str(reg), "--account",
                                  "123", "--out", str(out)], env=env(tmp_path, base))
    assert unknown.exit_code == 2


def test_collect_weibo_reports_expired_cookie(tmp_path: Path,
                                              server: tuple[FakeWeibo, str]) -> None:
    fw, base = server
    fw.cookie = "SUB=fresh"
    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = runner.invoke(app, ["collect", "weibo", "--registry", str(reg), "--out", str(out)],
                      env={**env(tmp_path, base), "MW_WEIBO_COOKIE": "SUB=stale"})
    assert r.exit_code == 1 and "AuthExpired" in r.output
    health = lines(out.with_name("out.jsonl.health.jsonl"))
    assert health[0]["status"] == "auth_expired" and health[0]["source"] == "weibo_mobile"


def test_collect_rss_file_and_hot(tmp_path: Path, server: tuple[FakeWeibo, str]) -> None:
    _fw, base = server
    out = tmp_path / "rss.jsonl"
    r = runner.invoke(app, ["collect", "rss", f"{base}/feed/gov.xml", "--account-id", "gov",
                            "--out", str(out)], env=env(tmp_path, base))
    assert r.exit_code == 0, r.output
    assert [o["platform"] for o in lines(out)] == ["web", "web"]
    out2 = tmp_path / "replay.jsonl"
    csv = FIXTURES / "crawler" / "某某市发布" / "9000000001.csv"
    r = runner.invoke(app, ["collect", "file", str(csv), "--out", str(out2)],
                      env=env(tmp_path, base))
    assert r.exit_code == 0, r.output
    assert [o["id"] for o in lines(out2)] == ["5000000000000010", "5000000000000011",
                                              "5000000000000012"]
    r = runner.invoke(app, ["collect", "hot", "9000000002", "--ttl", "60"],
                      env=env(tmp_path, base))
    assert r.exit_code == 0
    store = CursorStore(tmp_path / "collectors.sqlite")
    assert ("weibo", "9000000002") in store.hot()
    store.close()


def test_no_kafka_and_no_out_is_an_error(tmp_path: Path) -> None:
    csv = FIXTURES / "crawler" / "某某市发布" / "9000000001.csv"
    r = runner.invoke(app, ["collect", "file", str(csv)], env={"MW_KAFKA_URL": "",
                                                               "MW_DATA_DIR": str(tmp_path)})
    assert r.exit_code == 2 and "MW_KAFKA_URL" in r.output


def test_collect_run_scheduled_for_a_while(tmp_path: Path,
                                           server: tuple[FakeWeibo, str]) -> None:
    fw, base = server
    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY, encoding="utf-8")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {base}/feed/gov.xml\n    platform: web\n",
                     encoding="utf-8")
    out = tmp_path / "run.jsonl"
    r = runner.invoke(app, ["collect", "run", "--registry", str(reg), "--feeds", str(feeds),
                            "--duration", "2", "--out", str(out)],
                      env={**env(tmp_path, base), "MW_POLL_INTERVAL": "0.5"})
    assert r.exit_code == 0, r.output
    got = lines(out)
    assert len(got) == 6 + 2 and len({(o.get("platform"), o["id"]) for o in got}) == 8
    assert fw.hits["/api/container/getIndex"] >= 4  # 2 accounts, polled more than once


# --- a source that is down ----------------------------------------------------------------

SUMMARY = re.compile(r"(\d+) polls: (\d+) succeeded, (\d+) failed, (\d+) cut short")


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def run_dead(tmp_path: Path, port: int, extra: dict[str, str]) -> tuple[Result, tuple[int, ...]]:
    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY, encoding="utf-8")
    r = runner.invoke(app, ["collect", "run", "--registry", str(reg), "--duration", "1.5",
                            "--out", str(tmp_path / "run.jsonl")],
                      env={**env(tmp_path, f"http://127.0.0.1:{port}"), **extra})
    m = SUMMARY.search(r.output)
    assert m, r.output
    return r, tuple(int(g) for g in m.groups())


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_collect_run_counts_failed_polls_and_logs_a_dead_source_compactly(
        tmp_path: Path, dead_port: int, caplog: pytest.LogCaptureFixture) -> None:
    """Every poll fails fast: the summary says so, the exit code is 1, and the log has a
    few lines for the source (it had one WARNING per failed poll), no traceback."""
    r, (polls, ok, failed, cut) = run_dead(tmp_path, dead_port, {
        "MW_POLL_INTERVAL": "0.1", "MW_RETRY_ATTEMPTS": "2", "MW_BACKOFF_MAX": "0.02"})
    assert r.exit_code == 1, r.output
    assert ok == 0 and failed >= 6 and failed + cut == polls, r.output
    assert "no poll succeeded" in r.output and "ConnectError" in r.output
    assert "Traceback" not in r.output
    noisy = [x.getMessage() for x in warnings_of(caplog)]
    assert len(noisy) <= 3, noisy  # start, failing (, a slow poll's skipped runs)
    assert not [x for x in caplog.records if x.exc_info]
    first = next(m for m in noisy if m.startswith("weibo_mobile"))
    assert "poll failed" in first and "ConnectError" in first, noisy
    health = lines(tmp_path / "run.jsonl.health.jsonl")  # the alert path still gets it
    assert health and health[0]["status"] == "failing"


def test_collect_run_cuts_polls_short_quietly_at_the_end(
        tmp_path: Path, dead_port: int, caplog: pytest.LogCaptureFixture) -> None:
    """Polls still backing off when --duration ends are cancelled: counted as cut short,
    no CancelledError tracebacks (APScheduler logged one per poll), exit 1 (none
    succeeded)."""
    r, (polls, ok, failed, cut) = run_dead(tmp_path, dead_port, {"MW_BACKOFF_INITIAL": "30"})
    assert r.exit_code == 1, r.output
    assert (polls, ok, failed, cut) == (2, 0, 0, 2), r.output
    assert "Traceback" not in r.output
    assert not warnings_of(caplog), [x.getMessage() for x in caplog.records]


def test_an_account_closed_in_the_past_is_not_polled(tmp_path: Path) -> None:
    """active: true with a closed_at already past: closed (the registry's rule), so the
    collector neither polls it nor accepts it in --account; a future closed_at still polls."""
    from matrixwatch.collectors.cli import _accounts

    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY + """\
  - {id: "9000000004", platform: weibo, name: 已关闭, level: county,
     parent: "9000000001", active: true, closed_at: "2024-03-01T00:00:00+08:00"}
  - {id: "9000000005", platform: weibo, name: 将关闭, level: county,
     parent: "9000000001", active: true, closed_at: "2999-01-01T00:00:00+08:00"}
""", encoding="utf-8")
    assert _accounts(reg, None) == ["9000000001", "9000000002", "9000000005"]
    with pytest.raises(typer.Exit):
        _accounts(reg, ["9000000004"])
