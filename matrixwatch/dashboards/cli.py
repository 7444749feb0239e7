"""``matrixwatch dashboards …``: Elasticsearch templates and Kibana dashboards.

Both set-up commands are idempotent, so the compose ``setup`` job can run them on every
``docker compose up``. Passwords come from the environment only (``--password-env``
names the variable), never from the command line where ``ps`` would show them.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import typer
from rich.console import Console

from matrixwatch.dashboards import kibana
from matrixwatch.settings import get_settings

app = typer.Typer(help="Kibana dashboards and Elasticsearch set-up.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True, soft_wrap=True)  # a path or URL must not be cut


def _auth(user: str | None, password_env: str) -> tuple[str, str] | None:
    if not user:
        return None
    password = os.environ.get(password_env)
    if password is None:
        err.print(f"[red]error:[/red] --user given but ${password_env} is not set")
        raise typer.Exit(2)
    return user, password


@app.command("import")
def import_(
    kibana_url: str = typer.Option(..., "--kibana", envvar="MW_KIBANA_URL",
                                   help="Kibana base URL, e.g. http://localhost:5601"),
    user: str = typer.Option(None, "--user", envvar="MW_KIBANA_USER", help="Basic-auth user."),
    password_env: str = typer.Option("MW_KIBANA_PASSWORD", "--password-env",
                                     help="Environment variable holding the password."),
    space: str = typer.Option(None, "--space", help="Kibana space id (default space if unset)."),
    index_prefix: str = typer.Option(None, "--index-prefix",
                                     help="Index prefix (default: MW_ES_INDEX_PREFIX)."),
    timezone: str = typer.Option("Asia/Shanghai", "--timezone",
                                 help="Kibana's dateFormat:tz advanced setting."),
    settings_: bool = typer.Option(True, "--settings/--no-settings",
                                   help="Also set dateFormat:tz."),
    wait: float = typer.Option(0.0, "--wait", help="Seconds to wait for Kibana to be up."),
    insecure: bool = typer.Option(False, "--insecure", help="Skip TLS verification."),
    directory: Path = typer.Option(kibana.KIBANA_DIR, "--dir", help="Folder of *.ndjson."),
) -> None:
    """Import the dashboards, data views and visualisations (overwrite=true: idempotent)."""
    auth = _auth(user, password_env)
    prefix = index_prefix or get_settings().es_index_prefix
    objects = kibana.with_prefix(kibana.load_objects(directory), prefix)
    problems = kibana.validate(objects, prefix)
    if problems:
        err.print("[red]error:[/red] the saved objects do not match the index templates:\n  "
                  + "\n  ".join(problems))
        raise typer.Exit(1)
    try:
        if wait:
            kibana.wait_for_kibana(kibana_url, auth=auth, verify=not insecure, timeout=wait)
        res = kibana.import_objects(kibana_url, kibana.to_ndjson(objects), auth=auth,
                                    space=space, verify=not insecure)
        if settings_:
            kibana.set_advanced_settings(kibana_url, {"dateFormat:tz": timezone}, auth=auth,
                                         space=space, verify=not insecure)
    except (kibana.KibanaError, OSError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from e
    err.print(f"imported {res.get('successCount', len(objects))} saved objects into "
              f"{kibana_url}" + (f" (dateFormat:tz = {timezone})" if settings_ else ""))


@app.command("setup-es")
def setup_es(
    wait: float = typer.Option(0.0, "--wait", help="Seconds to keep retrying while ES is down."),
    replicas: int = typer.Option(0, "--replicas", help="Replicas per index (0: single node)."),
) -> None:
    """Install the index templates and create the indices (idempotent). Uses MW_ES_*."""
    from matrixwatch.streams.sinks.elasticsearch import ElasticsearchStore

    s = get_settings()
    if not s.es_url:
        err.print("[red]error:[/red] MW_ES_URL is not set")
        raise typer.Exit(2)
    store = ElasticsearchStore(
        s.es_url, prefix=s.es_index_prefix, username=s.es_username,
        password=s.es_password.get_secret_value() if s.es_password else None,
        verify_certs=s.es_verify_certs, replicas=replicas)

    async def once() -> list[str]:
        try:
            return await store.ensure_templates()
        finally:
            await store.close()

    deadline = time.monotonic() + wait
    while True:
        try:
            problems = asyncio.run(once())
            break
        except Exception as e:
            if time.monotonic() >= deadline:
                err.print(f"[red]error:[/red] Elasticsearch set-up failed: {e}")
                raise typer.Exit(1) from e
            err.print(f"Elasticsearch not ready ({type(e).__name__}); retrying…")
            time.sleep(3)
    if problems:
        err.print("[red]error:[/red] existing indices conflict with the templates:\n  "
                  + "\n  ".join(problems))
        raise typer.Exit(1)
    err.print(f"templates and indices for {s.es_index_prefix}-* ready at {s.es_url}")


@app.command()
def check(
    directory: Path = typer.Option(kibana.KIBANA_DIR, "--dir", help="Folder of *.ndjson."),
) -> None:
    """Check the saved objects against the index templates (no Kibana needed)."""
    objects = kibana.load_objects(directory)
    problems = kibana.validate(objects)
    for p in problems:
        err.print(p)
    err.print(f"{len(objects)} objects, {len(problems)} problems")
    raise typer.Exit(1 if problems else 0)


@app.command()
def build(
    out: Path = typer.Option(kibana.KIBANA_DIR, "--out", help="Where to write *.ndjson."),
) -> None:
    """Regenerate the NDJSON from matrixwatch/dashboards/build.py (their source)."""
    from matrixwatch.dashboards.build import write

    for p in write(out):
        err.print(f"wrote {p}")
