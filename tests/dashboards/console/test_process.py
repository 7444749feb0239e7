"""The console `matrixwatch run` starts (process.py): it links only to its own console.

The user audit: with the port held (by any program, or by another `console serve`) `run`
printed `值班台 console: http://127.0.0.1:PORT` and exited 0 while its own console had
died with "address already in use"; the link opened whatever listened there.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrixwatch.dashboards.console.app import ServerThread
from matrixwatch.dashboards.console.auth import Users
from matrixwatch.dashboards.console.process import running_console
from matrixwatch.dashboards.console.service import Console
from matrixwatch.settings import Settings
from tests.factories import REGISTRY_YAML


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout as `run` sees it: the default users file, nothing from the caller."""
    monkeypatch.delenv("MW_CONSOLE_USERS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    for var in ("http_proxy", "HTTP_PROXY"):  # a proxy must not answer for the console
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    (tmp_path / "matrix.yaml").write_text(REGISTRY_YAML, encoding="utf-8")
    return tmp_path


def run_settings(run_dir: Path, **kw: object) -> Settings:
    return Settings(_env_file=None, data_dir=run_dir / "var",  # type: ignore[call-arg]
                    registry=kw.pop("registry", run_dir / "matrix.yaml"), **kw)


@pytest.fixture
def plain_listener() -> Iterator[int]:
    """Another program on the port (it accepts, never answers HTTP)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield int(s.getsockname()[1])
    s.close()


@pytest.fixture
def other_console(console: Console) -> Iterator[int]:
    """Another `console serve` on the port: it answers /healthz 200, like ours would."""
    srv = ServerThread(console).start()
    yield srv.port
    srv.stop()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.mark.parametrize("holder", ["plain_listener", "other_console"])
def test_run_never_links_a_port_it_does_not_hold(run_dir: Path, holder: str,
                                                 request: pytest.FixtureRequest) -> None:
    """A held port is a one-line warning with the way out, and no link; the first-run
    token is not used up (no users file is made), so the next run still shows it."""
    port = request.getfixturevalue(holder)
    with running_console(run_settings(run_dir), port) as c:
        assert not c.ok and c.process is None
        assert c.notice is not None and "\n" not in c.notice
        assert f"port {port} on 127.0.0.1 is already in use" in c.notice
        assert "--console-port N, or --console-port 0" in c.notice
        assert "http://" not in c.notice
        assert c.check() is None
    assert not (run_dir / "var" / "console-users.yaml").exists()


def test_run_reports_a_console_that_exits_at_start(run_dir: Path) -> None:
    """Its own console failing (here: a registry it cannot read) is a warning with the
    reason from its log, not a link; the users file it had just made is taken back."""
    settings = run_settings(run_dir, registry=run_dir / "missing.yaml")
    with running_console(settings, free_port()) as c:
        assert not c.ok
        assert c.notice is not None and "exited with code 2" in c.notice
        assert "missing.yaml: cannot read" in c.notice and "console.log" in c.notice
        assert "http://" not in c.notice
    assert not (run_dir / "var" / "console-users.yaml").exists()


def test_run_links_its_own_console_and_says_how_to_log_in(run_dir: Path) -> None:
    """First run: the link with a new token (shown once). Later runs used to print only
    the bare URL; now they say how to get a login. A console that dies is reported once."""
    settings = run_settings(run_dir)
    port = free_port()
    with running_console(settings, port) as c:
        assert c.ok and c.notice is not None and c.process is not None
        assert c.notice.startswith(f"值班台 console: http://127.0.0.1:{port}/login#token=")
        token = c.notice.split("#token=")[1].split()[0]
        users = run_dir / "var" / "console-users.yaml"
        assert token not in users.read_text(encoding="utf-8")
        assert Users(users).authenticate(token) is not None
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/me",
                                     headers={"Authorization": f"Bearer {token}"})
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(req, timeout=5) as r:
            assert json.loads(r.read())["user"]["role"] == "matrix-manager"
        log = c.process.log_path
    assert token not in log.read_text(errors="replace")
    with running_console(settings, port) as again:
        assert again.ok and again.notice is not None and "token=" not in again.notice
        assert again.notice.startswith(f"值班台 console: http://127.0.0.1:{port}  ")
        assert ("log in with your token, or issue one: matrixwatch console token "
                "--name NAME --role duty-officer") in again.notice
        assert again.process is not None
        again.process.proc.kill()
        again.process.proc.wait()
        gone = again.check()
        assert gone is not None and "console stopped: it exited with code -9" in gone
        assert again.check() is None  # said once
