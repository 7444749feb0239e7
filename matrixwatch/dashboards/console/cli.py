"""``matrixwatch console …``: serve the duty console, make tokens, check the users file.

Mounted in ``matrixwatch/cli.py`` as ``console`` (SUBAPPS). Tokens are printed once, to
the terminal that asked for them; only their SHA-256 goes into the users file.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console as RichConsole

from matrixwatch.dashboards.console.auth import (
    DUTY_OFFICER,
    ROLES,
    Users,
    UsersError,
    new_token,
    users_yaml,
)
from matrixwatch.settings import get_settings

app = typer.Typer(help="The duty console (web page for duty officers and matrix managers).",
                  no_args_is_help=True, add_completion=False)
err = RichConsole(stderr=True)


@app.command()
def serve(
    port: int = typer.Option(8080, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 to share)."),
    users_file: Path = typer.Option(None, "--users-file",
                                    help="Users YAML (default: MW_CONSOLE_USERS_FILE)."),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: MW_SQLITE_PATH "
                               "or data_dir/store.sqlite); ignored with MW_ES_URL."),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (default MW_REGISTRY)."),
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
    try:
        console = build_console(settings, users_file)
    except (UsersError, RegistryError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    logging.getLogger("matrixwatch.console").setLevel(logging.INFO)
    where = "elasticsearch" if settings.es_url else settings.store_path
    err.print(f"console on http://{host}:{port}/ (store: {where})")
    try:
        asyncio.run(serve_app(console, host, port))
    except KeyboardInterrupt:
        pass
    finally:
        console.close()


@app.command()
def token(
    name: str = typer.Option(..., "--name", help="User name shown in the history."),
    role: str = typer.Option(DUTY_OFFICER, "--role", help=" | ".join(ROLES)),
    append: Path = typer.Option(None, "--append", help="Add the user (hash only) to this "
                                "users file."),
) -> None:
    """Make a token for a user: the token goes to stdout once, the hash to the users file."""
    name = name.strip()
    if not name:  # a blank name would sign the history and the audit log as nobody
        err.print("[red]error:[/red] --name must not be empty")
        raise typer.Exit(2)
    if role not in ROLES:
        err.print(f"[red]error:[/red] role must be one of {', '.join(ROLES)}")
        raise typer.Exit(2)
    tok = new_token()
    entry = users_yaml(name, role, tok)
    if append is not None:
        import yaml

        data: dict[str, Any] = {"users": []}
        if append.exists():
            data = yaml.safe_load(append.read_text(encoding="utf-8")) or {"users": []}
        if any(u.get("name") == name for u in data.get("users", [])):
            err.print(f"[red]error:[/red] user {name!r} already in {append}")
            raise typer.Exit(2)
        data.setdefault("users", []).extend(yaml.safe_load(entry)["users"])
        append.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                          encoding="utf-8")
        append.chmod(0o600)
        err.print(f"added {name} ({role}) to {append}")
    else:
        err.print("users-file entry (hash only):\n" + entry)
    sys.stdout.write(tok + "\n")


@app.command()
def users(
    users_file: Path = typer.Option(None, "--users-file",
                                    help="Users YAML (default: MW_CONSOLE_USERS_FILE)."),
) -> None:
    """Check the users file and list users and roles (never tokens)."""
    from matrixwatch.dashboards.console.service import ConsoleSettings

    path = users_file or ConsoleSettings().users_file
    if path is None:
        err.print("[red]error:[/red] no users file (MW_CONSOLE_USERS_FILE)")
        raise typer.Exit(2)
    try:
        found = Users(path).all()
    except UsersError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    for u in found:
        sys.stdout.write(f"{u.name}\t{u.role}\n")
