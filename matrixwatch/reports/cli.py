"""`matrixwatch report linkage`: matrix measures and laggards from the store."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from matrixwatch.reports.render import LinkageReport
from matrixwatch.settings import get_settings
from matrixwatch.streams.sinks.base import Store

SHANGHAI = ZoneInfo("Asia/Shanghai")
app = typer.Typer(no_args_is_help=True, add_completion=False)
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    md = "md"


def parse_when(value: str | None, default: datetime) -> datetime:
    """YYYY-MM-DD (midnight Asia/Shanghai) or ISO-8601; naive times are Asia/Shanghai."""
    if not value:
        return default
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date or ISO-8601 time: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=SHANGHAI)


def build_report(registry_path: Path, store_path: Path | None, since: datetime,
                 until: datetime) -> tuple[LinkageReport, Store]:
    """Measures over [since, until) from the configured store (or a SQLite file)."""
    from matrixwatch.registry import Registry
    from matrixwatch.reports.measures import compute, laggards, superior_matrix
    from matrixwatch.streams.sinks import make_store

    settings = get_settings()
    if store_path is not None:
        settings = settings.model_copy(update={"sqlite_path": store_path, "es_url": None})
    registry = Registry.load(registry_path)
    store = make_store(settings)
    linkage = list(store.iter_linkage())
    rows = compute(registry, linkage, store.iter_events(), since, until)
    rep = LinkageReport(since=since.isoformat(), until=until.isoformat(), rows=rows,
                        laggards=laggards(rows), matrix=superior_matrix(registry, linkage,
                                                                        since, until))
    return rep, store


@app.command("linkage")
def linkage_report(
    since: str = typer.Option(None, help="Start (YYYY-MM-DD or ISO); default: 7 days ago."),
    until: str = typer.Option(None, help="End, exclusive; default: now."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv, json or md."),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (default MW_REGISTRY)."),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: the configured)."),
    save: bool = typer.Option(True, help="Keep the measures in the store."),
) -> None:
    """Response rate, latency, 上级互动/下级联动, 覆盖度 per account; laggards; matrices."""
    from matrixwatch.registry import RegistryError
    from matrixwatch.reports import render

    reg_path = registry or get_settings().registry
    if reg_path is None:
        err.print("[red]error:[/red] no registry: pass --registry or set MW_REGISTRY")
        raise typer.Exit(2)
    end = parse_when(until, datetime.now(tz=SHANGHAI))
    start = parse_when(since, end - timedelta(days=7))
    if start >= end:
        err.print("[red]error:[/red] --since must be before --until")
        raise typer.Exit(2)
    try:
        rep, st = build_report(reg_path, store, start, end)
    except RegistryError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    if save:
        asyncio.run(save_measures(st, [r.as_dict() for r in rep.rows]))
    if fmt is Format.table:
        render.print_table(rep, Console())
    elif fmt is Format.csv:
        sys.stdout.write(render.to_csv(rep))
    elif fmt is Format.json:
        sys.stdout.write(render.to_json(rep) + "\n")
    else:
        sys.stdout.write(render.to_markdown(rep))


async def save_measures(store: Store, rows: list[dict[str, object]]) -> None:
    await store.open()
    try:
        await store.write_measures(rows)
    finally:
        await store.close()
