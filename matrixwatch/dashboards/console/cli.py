"""``matrixwatch console …``: serve the duty console, make tokens, check the users file.

Mounted in ``matrixwatch/cli.py`` as ``console`` (SUBAPPS). Tokens are printed once, to
the terminal that asked for them; only their SHA-256 goes into the users file.

All three commands and ``matrixwatch run`` use one users file: ``--users-file``, else
``MW_CONSOLE_USERS_FILE``, else ``MW_DATA_DIR/console-users.yaml`` (``var/`` by default),
the file ``run`` makes on its first start. Each used to need MW_CONSOLE_USERS_FILE, so
the console ``run`` had set up could not be reached with the README's commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console as RichConsole
from rich.markup import escape

from matrixwatch.dashboards.console.auth import (
    DUTY_OFFICER,
    ROLES,
    Users,
    UsersError,
    new_token,
    users_yaml,
)
from matrixwatch.dashboards.console.process import default_users_file
from matrixwatch.settings import get_settings

app = typer.Typer(help="The duty console (web page for duty officers and matrix managers).",
                  no_args_is_help=True, add_completion=False)
# soft_wrap: whole lines, never cut at 80 columns (`run` quotes the console's last log
# line when it fails, and a path or command cut in two cannot be pasted)
err = RichConsole(stderr=True, soft_wrap=True)

USERS_HELP = ("Users YAML (default: MW_CONSOLE_USERS_FILE, else MW_DATA_DIR/console-users.yaml,"
              " i.e. var/console-users.yaml, the file `matrixwatch run` makes).")


def users_path(explicit: Path | None) -> Path:
    """The users file of every console command (see the module docstring)."""
    return explicit or default_users_file(get_settings())


def _no_users_file(path: Path) -> str:
    return (f"no users file at {path}: `matrixwatch run` makes one on its first start, or add "
            "a user with `matrixwatch console token --name NAME --role duty-officer` "
            "(or point MW_CONSOLE_USERS_FILE / --users-file at yours)")


@app.command()
def serve(
    port: int = typer.Option(8080, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 to share)."),
    users_file: Path = typer.Option(None, "--users-file", help=USERS_HELP),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: MW_SQLITE_PATH "
                               "or data_dir/store.sqlite); ignored with MW_ES_URL."),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (default MW_REGISTRY)."),
    fd: int = typer.Option(None, "--fd", hidden=True,
                           help="Serve this inherited listening socket (`run` binds it)."),
) -> None:
    """Serve the console until Ctrl-C."""
    from matrixwatch.dashboards.console.app import build_console
    from matrixwatch.dashboards.console.app import serve as serve_app
    from matrixwatch.registry import RegistryError

    settings = get_settings()
    update: dict[str, object] = {}
    if store is not None:
        update["sqlite_path"] = store
    if registry is not None:
        update["registry"] = registry
    settings = settings.model_copy(update=update)
    path = users_path(users_file)
    if not path.exists():
        err.print(f"[red]error:[/red] {escape(_no_users_file(path))}")
        raise typer.Exit(2)
    try:
        console = build_console(settings, path)
    except (UsersError, RegistryError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    logging.getLogger("matrixwatch.console").setLevel(logging.INFO)
    where = "elasticsearch" if settings.es_url else settings.store_path

    def ready(bound: int) -> None:  # said once listening, with the real port (--port 0)
        err.print(f"console on http://{host}:{bound}/ (store: {where}; users: {path})",
                  markup=False)

    try:
        sock = socket.socket(fileno=fd) if fd is not None else None
        asyncio.run(serve_app(console, host, port, ready, sock=sock))
    except KeyboardInterrupt:
        pass
    except OSError as e:  # e.g. the port is in use: one line, not a traceback
        err.print(f"[red]error:[/red] cannot listen on {escape(host)}:{port}: "
                  f"{escape(e.strerror or str(e))}")
        raise typer.Exit(2) from None
    finally:
        console.close()


@app.command()
def token(
    name: str = typer.Option(..., "--name", help="User name shown in the history."),
    role: str = typer.Option(DUTY_OFFICER, "--role", help=" | ".join(ROLES)),
    users_file: Path = typer.Option(None, "--users-file", help=USERS_HELP),
    append: Path = typer.Option(None, "--append", help="Same as --users-file (older name)."),
    print_only: bool = typer.Option(False, "--print-only",
                                    help="Write nothing; print the users-file entry instead."),
) -> None:
    """Make a login token for a user and add the user to the users file.

    The token goes to stdout, once; the users file gets the user with the token's SHA-256
    hash, never the token. The file: --users-file, else MW_CONSOLE_USERS_FILE, else
    MW_DATA_DIR/console-users.yaml (var/console-users.yaml, the one `matrixwatch run`
    uses), made with mode 0600 if missing. A running console picks the user up without a
    restart.
    """
    name = name.strip()
    if not name:  # a blank name would sign the history and the audit log as nobody
        err.print("[red]error:[/red] --name must not be empty")
        raise typer.Exit(2)
    if role not in ROLES:
        err.print(f"[red]error:[/red] role must be one of {', '.join(ROLES)}")
        raise typer.Exit(2)
    if users_file is not None and append is not None and users_file != append:
        err.print("[red]error:[/red] --users-file and --append name different files")
        raise typer.Exit(2)
    if print_only and (users_file or append) is not None:
        err.print("[red]error:[/red] --print-only writes no file: drop --users-file/--append")
        raise typer.Exit(2)
    tok = new_token()
    entry = users_yaml(name, role, tok)
    if print_only:
        err.print("users-file entry (hash only):\n" + entry, markup=False)
    else:
        path = users_path(users_file or append)
        try:
            _add_user(path, name, entry)
        except UsersError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(2) from None
        err.print(f"added {name} ({role}) to {path}; the token below is shown only now",
                  markup=False)
    sys.stdout.write(tok + "\n")


def _add_user(path: Path, name: str, entry: str) -> None:
    """Add one entry to the users file, atomically and 0600 from the first byte: a
    running console re-reads the file when it changes, and must never see half of it."""
    import yaml

    data: Any = {"users": []}
    try:
        if path.exists():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {"users": []}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsersError(f"{path}: cannot read it as YAML ({type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.setdefault("users", []), list):
        raise UsersError(f"{path}: expected a mapping with a 'users' list")
    if any(isinstance(u, dict) and u.get("name") == name for u in data["users"]):
        raise UsersError(f"user {name!r} already in {path}")
    data["users"].extend(yaml.safe_load(entry)["users"])
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    path = Path(os.path.realpath(path))  # a symlinked users file stays a symlink
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise UsersError(f"{path}: cannot write: {e.strerror or e}") from None


@app.command()
def users(
    users_file: Path = typer.Option(None, "--users-file", help=USERS_HELP),
) -> None:
    """Check the users file and list users and roles (never tokens)."""
    path = users_path(users_file)
    if not path.exists():
        err.print(f"[red]error:[/red] {escape(_no_users_file(path))}")
        raise typer.Exit(2)
    try:
        found = Users(path).all()
    except UsersError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    for u in found:
        sys.stdout.write(f"{u.name}\t{u.role}\n")
