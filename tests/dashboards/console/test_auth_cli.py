"""Users file, workflow transitions, the `console` commands and the subprocess `run` uses."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from matrixwatch.dashboards.console.auth import (
    Users,
    UsersError,
    ensure_dev_users,
    parse_users,
    token_hash,
)
from matrixwatch.dashboards.console.cli import app
from matrixwatch.dashboards.console.process import ConsoleProcess
from matrixwatch.dashboards.console.state import (
    AlertState,
    ConsoleState,
    TransitionError,
    next_state,
)
from matrixwatch.settings import Settings
from tests.factories import REGISTRY_YAML

runner = CliRunner()


def test_users_file_errors_never_show_tokens() -> None:
    with pytest.raises(UsersError, match="role must be one of"):
        parse_users({"users": [{"name": "a", "role": "admin", "token_sha256": "0" * 64}]})
    with pytest.raises(UsersError, match="64 hex digits"):
        parse_users({"users": [{"name": "a", "role": "duty-officer",
                                "token_sha256": "secret-token"}]})
    with pytest.raises(UsersError, match="MW_X is not set"):
        parse_users({"users": [{"name": "a", "role": "duty-officer", "token_env": "MW_X"}]},
                    env={})
    with pytest.raises(UsersError, match="duplicate"):
        parse_users({"users": [{"name": "a", "role": "duty-officer", "token_sha256": "0" * 64},
                               {"name": "a", "role": "duty-officer", "token_sha256": "1" * 64}]})
    with pytest.raises(UsersError, match="needs token_sha256 or token_env"):
        parse_users({"users": [{"name": "a", "role": "duty-officer", "token": "plain"}]})
    u = parse_users({"users": [{"name": "a", "role": "duty-officer", "token_env": "T"}]},
                    env={"T": "s3cret-value"})[0]
    assert "s3cret" not in repr(u) and token_hash("s3cret-value") not in repr(u)


def test_users_file_reloads_on_change(tmp_path: Path) -> None:
    p = tmp_path / "users.yaml"
    p.write_text(yaml.safe_dump({"users": [
        {"name": "甲", "role": "duty-officer", "token_sha256": token_hash("tok-a")}]}),
        encoding="utf-8")
    users = Users(p)
    assert users.authenticate("tok-a").name == "甲"  # type: ignore[union-attr]
    assert users.authenticate("tok-b") is None
    p.write_text(yaml.safe_dump({"users": [
        {"name": "乙", "role": "matrix-manager", "token_sha256": token_hash("tok-b")}]}),
        encoding="utf-8")
    os.utime(p, (time.time() + 5, time.time() + 5))
    assert users.authenticate("tok-b").role == "matrix-manager"  # type: ignore[union-attr]
    assert users.authenticate("tok-a") is None  # removed users are out at once
    p.write_text("users: [broken", encoding="utf-8")
    os.utime(p, (time.time() + 10, time.time() + 10))
    assert users.authenticate("tok-b") is not None  # a broken edit keeps the last good list


def test_transitions() -> None:
    new = AlertState("x")
    assert next_state(new, "ack", assignee=None, note=None) == ("acknowledged", None)
    assert next_state(new, "assign", assignee="甲", note=None) == ("acknowledged", "甲")
    assert next_state(new, "close", assignee=None, note=None) == ("closed", None)
    closed = AlertState("x", "closed", "甲")
    assert next_state(closed, "reopen", assignee=None, note=None) == ("acknowledged", "甲")
    for state, action, kw in ((closed, "assign", {"assignee": "乙"}), (closed, "close", {}),
                              (new, "reopen", {}), (new, "note", {}),
                              (AlertState("x", "acknowledged"), "ack", {})):
        with pytest.raises(TransitionError):
            next_state(state, action, assignee=kw.get("assignee"), note=None)


def test_sessions_expire(tmp_path: Path) -> None:
    st = ConsoleState(tmp_path / "c.sqlite", session_ttl=0.2)
    sid = st.create_session("甲")
    assert st.session_user(sid) == "甲"
    row = st._q("SELECT sid_hash FROM sessions")[0][0]
    assert sid not in row  # only the hash is stored
    time.sleep(0.3)
    assert st.session_user(sid) is None
    st.close()


def test_token_command_writes_hash_only(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    res = runner.invoke(app, ["token", "--name", "值班员甲", "--role", "duty-officer",
                              "--append", str(users)])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    text = users.read_text(encoding="utf-8")
    assert token not in text and token_hash(token) in text
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    again = runner.invoke(app, ["token", "--name", "值班员甲", "--append", str(users)])
    assert again.exit_code == 2
    listed = runner.invoke(app, ["users", "--users-file", str(users)])
    assert listed.exit_code == 0 and "值班员甲\tduty-officer" in listed.stdout
    assert token not in listed.stdout
    bad = runner.invoke(app, ["token", "--name", "x", "--role", "root"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_token_command_refuses_a_blank_name(tmp_path: Path, name: str) -> None:
    """A blank name was accepted (rc 0): a user whose actions are signed by nobody."""
    users = tmp_path / "users.yaml"
    res = runner.invoke(app, ["token", "--name", name, "--append", str(users)])
    assert res.exit_code == 2 and "--name must not be empty" in res.output
    assert not users.exists() and res.stdout.strip() == ""
    alone = runner.invoke(app, ["token", "--name", name])
    assert alone.exit_code == 2 and alone.stdout.strip() == ""


def test_token_command_trims_the_name(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    res = runner.invoke(app, ["token", "--name", "  值班员乙 ", "--append", str(users)])
    assert res.exit_code == 0, res.output
    assert [u.name for u in Users(users).all()] == ["值班员乙"]


def test_users_file_refuses_a_blank_name() -> None:
    """The same rule for a hand-edited users file."""
    with pytest.raises(UsersError, match=r"users\[0\]: missing field 'name'"):
        parse_users({"users": [{"name": "  ", "role": "duty-officer",
                                "token_sha256": "0" * 64}]})


@pytest.fixture
def readme_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The README's setting: no MW_CONSOLE_USERS_FILE, data in ./var; yields var/."""
    from matrixwatch.settings import get_settings

    monkeypatch.delenv("MW_CONSOLE_USERS_FILE", raising=False)
    monkeypatch.delenv("MW_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield Path("var")
    get_settings.cache_clear()


def test_serve_without_users_refuses(readme_env: Path) -> None:
    """No users file anywhere: exit 2, naming the file looked for and how to make one."""
    res = runner.invoke(app, ["serve", "--port", "0"])
    assert res.exit_code == 2
    assert "no users file at var/console-users.yaml" in res.output
    assert "matrixwatch console token --name NAME --role duty-officer" in res.output
    assert "MW_CONSOLE_USERS_FILE" in res.output
    listed = runner.invoke(app, ["users"])
    assert listed.exit_code == 2 and "no users file at var/console-users.yaml" in listed.output


def test_console_commands_use_the_users_file_run_makes(
        readme_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `run`, the README's commands failed: `console serve` and `console users`
    wanted MW_CONSOLE_USERS_FILE, and `console token` wrote nothing (its help said it
    wrote the hash to the users file; only --append did). All use run's file now."""
    from matrixwatch.dashboards.console import app as app_module

    run_file = readme_env / "console-users.yaml"
    admin = ensure_dev_users(run_file)  # what `run` does on its first start
    assert admin is not None
    helped = runner.invoke(app, ["token", "--help"], env={"COLUMNS": "200"})
    assert "console-users.yaml" in helped.output and "MW_CONSOLE_USERS_FILE" in helped.output

    res = runner.invoke(app, ["token", "--name", "张三", "--role", "duty-officer"])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    text = run_file.read_text(encoding="utf-8")
    assert token not in text and token_hash(token) in text and token not in res.stderr
    assert oct(run_file.stat().st_mode & 0o777) == "0o600"
    users = Users(run_file)
    assert users.authenticate(token).name == "张三"  # type: ignore[union-attr]
    assert users.authenticate(admin).name == "admin"  # type: ignore[union-attr]

    listed = runner.invoke(app, ["users"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == ["admin\tmatrix-manager", "张三\tduty-officer"]

    served: list[Path | None] = []

    async def fake_serve(console: Any, host: str, port: int, ready: Any = None,
                         stop: Any = None, sock: Any = None) -> None:
        served.append(console.users.path)

    monkeypatch.setattr(app_module, "serve", fake_serve)
    up = runner.invoke(app, ["serve", "--port", "18431"])
    assert up.exit_code == 0, up.output
    assert served == [run_file]


def test_token_print_only_writes_nothing(readme_env: Path) -> None:
    """The old default (print the entry, write nothing) is still there, by request."""
    res = runner.invoke(app, ["token", "--name", "值班员丁", "--print-only"])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    assert token_hash(token) in res.stderr and token not in res.stderr
    assert not (readme_env / "console-users.yaml").exists()


def test_token_refuses_a_users_file_it_cannot_extend(tmp_path: Path) -> None:
    """A users file that is not a mapping with a 'users' list: exit 2, file untouched."""
    bad = tmp_path / "users.yaml"
    bad.write_text("- just a list\n", encoding="utf-8")
    res = runner.invoke(app, ["token", "--name", "x", "--users-file", str(bad)])
    assert res.exit_code == 2 and "expected a mapping" in res.output
    assert res.stdout.strip() == "" and bad.read_text(encoding="utf-8") == "- just a list\n"


def test_ensure_dev_users_once(tmp_path: Path) -> None:
    p = tmp_path / "console-users.yaml"
    token = ensure_dev_users(p)
    assert token and Users(p).authenticate(token).role == "matrix-manager"  # type: ignore[union-attr]
    assert ensure_dev_users(p) is None  # never overwritten, never shown again


def test_console_process_for_run(tmp_path: Path) -> None:
    """What `matrixwatch run` starts: the console as a subprocess on the run's store."""
    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY_YAML, encoding="utf-8")
    settings = Settings(_env_file=None, data_dir=tmp_path, registry=reg)  # type: ignore[call-arg]
    from matrixwatch.broker import free_port

    env_users = os.environ.pop("MW_CONSOLE_USERS_FILE", None)
    try:
        proc = ConsoleProcess.start(settings, port=free_port())
    finally:
        if env_users is not None:
            os.environ["MW_CONSOLE_USERS_FILE"] = env_users
    try:
        assert proc.wait_ready(30), proc.log_path.read_text(errors="replace")
        assert proc.login_url and "#token=" in proc.login_url
        token = proc.login_url.split("#token=")[1]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{proc.url}/api/meta", timeout=5)
        assert refused.value.code == 401
        req = urllib.request.Request(f"{proc.url}/api/meta",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            meta = json.loads(r.read())
        assert meta["user"]["role"] == "matrix-manager" and len(meta["accounts"]) == 7
    finally:
        proc.stop()
    assert not proc.alive()
    log = proc.log_path.read_text(errors="replace")
    assert token not in log and "GET /api/meta 401" in log
