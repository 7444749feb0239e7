"""`matrixwatch report linkage`: matrix measures and laggards from the store."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from matrixwatch.reports.render import LinkageReport
from matrixwatch.settings import get_settings
from matrixwatch.streams.sinks.base import Store

if TYPE_CHECKING:
    from matrixwatch.reports.config import ReportConfig
    from matrixwatch.reports.monthly import Reports

SHANGHAI = ZoneInfo("Asia/Shanghai")
app = typer.Typer(no_args_is_help=True, add_completion=False)
err = Console(stderr=True, soft_wrap=True)  # a path or URL must not be cut


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


# --- issue 10: 政务新媒体指数, compliance checks, the content classifier -------------------
def _reports_for(period: str | None, at: str | None, registry: Path | None, store: Path | None,
                 config: Path | None, errata: list[Path] | None, veto: bool = True
                 ) -> tuple[Reports, ReportConfig, Store]:
    """Load registry, config and store; compute both reports for the period."""
    import yaml

    from matrixwatch.registry import Registry, RegistryError
    from matrixwatch.reports.errata import ErrataChecker
    from matrixwatch.reports.monthly import build, report_config
    from matrixwatch.reports.period import PeriodError, last_month, parse_period
    from matrixwatch.streams.sinks import make_store

    settings = get_settings()
    reg_path = registry or settings.registry
    if reg_path is None:
        err.print("[red]error:[/red] no registry: pass --registry or set MW_REGISTRY")
        raise typer.Exit(2)
    try:
        per = parse_period(period) if period else last_month(datetime.now(tz=SHANGHAI))
        cfg = report_config(config)
        if errata:
            cfg.compliance.errata_dicts = (*cfg.compliance.errata_dicts,
                                           *(str(p) for p in errata))
        ErrataChecker.load(cfg.compliance.errata_dicts)  # report a bad dictionary now
        reg = Registry.load(reg_path)  # with vertical / verified_at (reg.extras)
    except (PeriodError, RegistryError, ValueError, OSError, yaml.YAMLError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    at_ts = parse_when(at, per.end).timestamp() if at else None
    if store is not None:
        settings = settings.model_copy(update={"sqlite_path": store, "es_url": None})
    st = make_store(settings)
    try:
        reps = build(reg, st, per, cfg, at=at_ts, veto=veto)
    finally:
        close = getattr(st, "close_sync", None)
        if close is not None:
            close()
    return reps, cfg, st


def _save_rows(st: Store, reps: Reports) -> None:
    from matrixwatch.reports.storage import save, save_sqlite
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    if isinstance(st, SQLiteStore):
        save_sqlite(st.path, reps.index, reps.compliance)
    else:
        asyncio.run(save(st, reps.index, reps.compliance))


_PERIOD_HELP = "YYYY-MM, YYYY, YYYY-Qn or YYYY-MM-DD..YYYY-MM-DD; default: last month."


@app.command("index")
def index_report(
    period: str = typer.Option(None, "--period", help=_PERIOD_HELP),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv, json or md."),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (default MW_REGISTRY)."),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: the configured)."),
    config: Path = typer.Option(None, "--config", help="Weights/thresholds YAML "
                                "(default MW_INDEX_CONFIG, else built-in defaults)."),
    level: str = typer.Option(None, "--level", help="Only this level's 排行榜."),
    vertical: str = typer.Option(None, "--vertical", help="Only this vertical (公安, 发布…)."),
    veto: bool = typer.Option(True, help="Rank stale (单项否决) accounts last."),
    save: bool = typer.Option(True, help="Keep index and compliance rows in the store."),
) -> None:
    """政务新媒体指数: six indices per account, normalised and ranked per level and vertical."""
    from matrixwatch.reports import index_render as r

    reps, cfg, st = _reports_for(period, None, registry, store, config, None, veto)
    if save:
        _save_rows(st, reps)
    rows = [x for x in reps.index if (level is None or x.level == level)
            and (vertical is None or x.vertical == vertical)]
    label, weights = reps.period.label, cfg.index.weights
    if fmt is Format.table:
        r.print_index(label, rows, Console())
    elif fmt is Format.csv:
        sys.stdout.write(r.index_csv(rows))
    elif fmt is Format.json:
        sys.stdout.write(r.index_json(label, rows, weights) + "\n")
    else:
        sys.stdout.write(r.index_markdown(label, rows, weights))


@app.command("compliance")
def compliance_report(
    period: str = typer.Option(None, "--period", help=_PERIOD_HELP),
    at: str = typer.Option(None, "--at", help="Check time (监测时间点) for the stale veto; "
                           "default: the period end."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv, json or md."),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (default MW_REGISTRY)."),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: the configured)."),
    config: Path = typer.Option(None, "--config", help="Thresholds YAML (MW_INDEX_CONFIG)."),
    errata: list[Path] = typer.Option(None, "--errata", help="Extra 错敏字 dictionary "
                                      "(repeatable; also MW_ERRATA_DICTS)."),
    only_problems: bool = typer.Option(False, "--problems", help="Only veto/fail accounts."),
    save: bool = typer.Option(True, help="Keep index and compliance rows in the store."),
) -> None:
    """Checks with rule and evidence: stale (veto), gaps, monthly count, replies, 错敏字,
    duplicate accounts."""
    from matrixwatch.reports import index_render as r

    reps, _cfg, st = _reports_for(period, at, registry, store, config, errata)
    if save:
        _save_rows(st, reps)
    rows = [x for x in reps.compliance if not only_problems or x.status != "pass"]
    label = reps.period.label
    if fmt is Format.table:
        r.print_compliance(label, rows, Console())
    elif fmt is Format.csv:
        sys.stdout.write(r.compliance_csv(rows))
    elif fmt is Format.json:
        sys.stdout.write(r.compliance_json(label, rows) + "\n")
    else:
        sys.stdout.write(r.compliance_markdown(label, rows))


@app.command("monthly")
def monthly_report(
    period: str = typer.Option(None, "--period", help=_PERIOD_HELP),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (default MW_REGISTRY)."),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: the configured)."),
    out: Path = typer.Option(None, "--out", help="Directory (default data_dir/reports)."),
    config: Path = typer.Option(None, "--config", help="Weights/thresholds YAML."),
) -> None:
    """What the monthly job does, now: index + compliance → Markdown/CSV/JSON and store."""
    from matrixwatch.registry import RegistryError
    from matrixwatch.reports.monthly import run_monthly
    from matrixwatch.reports.period import PeriodError, parse_period

    try:
        reps, paths = run_monthly(registry=registry, store_path=store, out_dir=out,
                                  config=config,
                                  period=parse_period(period) if period else None)
    except (PeriodError, RegistryError, ValueError, OSError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    vetoed = sum(1 for x in reps.compliance if x.status == "veto")
    err.print(f"{reps.period.label}: {len(reps.index)} accounts, {vetoed} vetoed, "
              f"{reps.events_read:,} events read")
    for p in paths:
        sys.stdout.write(f"{p}\n")


@app.command("content-eval")
def content_eval(
    sample: Path = typer.Option(None, "--sample", help="Labelled JSONL (default: the "
                                "packaged content_sample.jsonl)."),
    lexicon: Path = typer.Option(None, "--lexicon", help="Lexicon YAML (default: packaged)."),
    split: list[str] = typer.Option(None, "--split", help="Only these splits (repeatable): "
                                    "dev, holdout1, holdout2."),
    model: bool = typer.Option(True, help="Use the trained fallback (--no-model: rules only)."),
    errors: bool = typer.Option(False, "--errors", help="List misclassified posts."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of tables."),
) -> None:
    """Precision and recall per class (政务/民生/B类/其他) of the content classifier."""
    import json as _json

    from rich.table import Table

    from matrixwatch.reports.content import ContentClassifier, evaluate, load_sample

    rows = load_sample(sample)
    clf = ContentClassifier.load(lexicon, model=model)
    splits = split or sorted({str(r.get("split")) for r in rows})
    results = {}
    for name in [*splits, "all"]:
        sel = rows if name == "all" else [r for r in rows if r.get("split") == name]
        if sel:
            results[name] = evaluate(clf, sel)
    if as_json:
        sys.stdout.write(_json.dumps({k: v.as_dict() for k, v in results.items()},
                                     ensure_ascii=False, indent=1, sort_keys=True) + "\n")
        return
    con = Console()
    trained = "rules + fallback trained on dev, holdout1" if model else "rules only"
    con.print(f"content classifier ({trained}); holdout2 was never used for tuning or training")
    for name, ev in results.items():
        t = Table(title=f"{name}: n={ev.n}, accuracy {ev.accuracy:.3f}")
        for h in ("class", "support", "predicted", "precision", "recall", "F1"):
            t.add_column(h)
        for c in ev.per_class:
            t.add_row(c.label, str(c.support), str(c.predicted),
                      *("-" if x is None else f"{x:.3f}" for x in (c.precision, c.recall, c.f1)))
        con.print(t)
        if errors:
            for e in ev.errors:
                con.print(f"  {e['id']}: {e['gold']} → {e['pred']}  {e['text'][:60]}")
