"""The `matrixwatch` command line.

`replay`, `score` and `spikes` are contracts (DESIGN.md) that outside tools call
exactly; the rest is ours. Errors in input print one clear line and exit 2.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from matrixwatch import eventloop
from matrixwatch.settings import get_settings

if TYPE_CHECKING:
    from matrixwatch.settings import Settings

app = typer.Typer(
    help="matrixwatch: streaming monitor for government new-media account matrices.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)  # a path or URL must not be cut


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(code)


@app.command()
def worker(
    loglevel: str = typer.Option("INFO", help="Log level of the Faust worker."),
) -> None:
    """Run one Faust worker (production: run several; partitions set parallelism)."""
    import faust

    from matrixwatch.registry import RegistryError
    from matrixwatch.streams.app import create_app, tune_gc

    settings = _settings()
    if not settings.kafka_url:
        _fail("MW_KAFKA_URL is not set (use `matrixwatch run` for the embedded broker)")
    eventloop.install(settings.event_loop)
    try:
        pipe = create_app(settings)
    except RegistryError as e:
        _fail(str(e))
    tune_gc()
    faust.Worker(pipe.app, loglevel=loglevel, quiet=True).execute_from_commandline()


@app.command()
def replay(
    files: list[Path] = typer.Argument(..., metavar="FILE...",
                                       help="JSONL files of native Weibo objects."),
    registry: Path = typer.Option(..., "--registry", help="matrix.yaml"),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    timeout: float = typer.Option(3600.0, help="Give up if not drained after this many s."),
    as_of: str = typer.Option(
        None, "--as-of", help="ISO time that relative Weibo times are resolved against "
        "(default: each file's modification time)."),
) -> None:
    """Run the full streaming pipeline over FILES and write DIR/{events,alerts,linkage}.jsonl."""
    from matrixwatch.pipeline import Interrupted, stop_on_signals
    from matrixwatch.pipeline import replay as do_replay
    from matrixwatch.registry import Registry, RegistryError
    from matrixwatch.streams.normalize import reference_time

    for f in files:
        if not f.is_file():
            _fail(f"no such file: {f}")
    if not (math.isfinite(timeout) and timeout > 0):
        _fail(f"--timeout must be a positive number of seconds, not {timeout:g}")
    if as_of is not None:
        try:
            as_of = reference_time(as_of).isoformat()
        except ValueError as e:
            _fail(f"--as-of: {e}")
    if out.exists() and not out.is_dir():
        _fail(f"--out: not a directory: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"--out: cannot create {out}: {e.strerror or e}")
    settings = _settings()
    try:
        Registry.load(registry)
    except RegistryError as e:
        _fail(str(e))
    for f in files:
        if _looks_like_json_array(f):
            err.print(f"[yellow]warning:[/yellow] {f} looks like a JSON array; replay reads "
                      "JSON Lines (one object per line), so its lines will be dead-lettered. "
                      f"Convert it first, e.g. jq -c '.[]' {f}", highlight=False)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("starting broker and worker…")

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage == "produce":
                bar.update(task, description=f"produced {done:,} lines")
            else:
                bar.update(task, description=f"waiting for the pipeline: {done:,} to consume")

        try:
            with stop_on_signals():
                res = do_replay(files, registry, out, settings, timeout=timeout,
                                as_of=as_of, progress=progress)
        except Interrupted as e:
            _fail(f"stopped by {e}; the broker and worker it started are stopped",
                  code=128 + e.signum)
        except RuntimeError as e:
            _fail(str(e), code=1)
    c = res.counts
    err.print(
        f"replayed {res.lines:,} lines in {res.seconds:.1f}s: {c['events']:,} events, "
        f"{c['alerts']:,} alerts, {c['linkage']:,} linkage tasks, "
        f"{c['dead_letters']:,} dead letters → {out}"
    )
    if res.lines and not c["events"]:
        err.print(f"[yellow]warning:[/yellow] no line was a valid object; the reasons are in "
                  f"{out / 'store.sqlite'} (table dead_letters)", highlight=False)


def _looks_like_json_array(path: Path) -> bool:
    """True if the file's first non-blank byte is ``[`` (JSON Lines of objects start
    with ``{``): the common mistake of passing an API response or an export."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


def _settings() -> Settings:
    """The settings, with the sentiment model name checked up front: a worker would
    otherwise fail on it only after the broker has started."""
    from matrixwatch.streams.sentiment.base import available

    settings = get_settings()
    name = settings.sentiment_model
    if name != "default" and name not in available():
        _fail(f"MW_SENTIMENT_MODEL: unknown sentiment model {name!r}; "
              f"available: default, {', '.join(available())}")
    return settings


@app.command()
def score(
    model: str = typer.Option("default", "--model", help="Sentiment model name."),
) -> None:
    """Read one text per line on stdin; write one JSON line {score, label} per text.

    A UTF-8 BOM before the first line is dropped. A line over 64 KiB is scored on its
    first 48 KiB and last 16 KiB, which is all any model reads of it.
    """
    from matrixwatch.streams.sentiment.cli import score_command

    raise typer.Exit(score_command(model, sys.stdin, sys.stdout))


@app.command()
def spikes(
    series: Path = typer.Option(..., "--series", help="CSV with header timestamp,value."),
) -> None:
    """Run the stream's spike detector over a count series; one JSON line per alert."""
    from matrixwatch.streams.spikes import spikes_command

    raise typer.Exit(spikes_command(series, sys.stdout))


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="JSONL file of native Weibo objects."),
    registry_out: Path = typer.Option(..., "--registry-out", help="Where to write matrix.yaml."),
    events: int = typer.Option(10000, "--events", help="How many objects to generate."),
    seed: int = typer.Option(7, help="Random seed (same seed, same bytes)."),
) -> None:
    """Write a simulated matrix (matrix.yaml) and a feed of native objects."""
    from matrixwatch.collectors.simulator import build_matrix, write_jsonl, write_registry

    matrix = build_matrix(seed=seed)
    write_registry(registry_out, matrix)
    n = write_jsonl(out, matrix, events, seed=seed)
    err.print(f"{len(matrix.accounts)} accounts → {registry_out}; {n:,} objects → {out}")


@app.command()
def run(
    rate: float = typer.Option(50.0, help="Simulated objects per second (wall clock)."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0 = until Ctrl-C)."),
    console_port: int = typer.Option(8080, "--console-port",
                                     help="Duty console port on 127.0.0.1 (0: no console)."),
) -> None:
    """The main job: broker (embedded unless MW_KAFKA_URL), worker, simulated feed, live view,
    and the duty console."""
    from matrixwatch.runner import run_main

    raise typer.Exit(run_main(_settings(), rate=rate, duration=duration,
                              console_port=console_port))


SUBAPPS = (
    # (module with a typer `app`, command name, help)
    ("matrixwatch.streams.sentiment.cli", "sentiment", "Train, evaluate, benchmark models."),
    ("matrixwatch.alerts.cli", "rules", "Validate and test alert rules on past data."),
    ("matrixwatch.dashboards.cli", "dashboards", "Kibana dashboards and Elasticsearch setup."),
    ("matrixwatch.collectors.cli", "collect",
     "Collectors: one-off runs per source, scheduled polling (run) and the push endpoint."),
    ("matrixwatch.collectors.registry_cli", "registry", "Import and validate registries."),
    ("matrixwatch.reports.cli", "report", "Linkage and matrix reports."),
    ("matrixwatch.reports.scheduler_cli", "scheduler", "Scheduled reports (APScheduler)."),
    ("matrixwatch.dashboards.console.cli", "console", "The duty console (web page)."),
)


def _mount_subapps() -> None:
    import importlib

    for module, name, help_text in SUBAPPS:
        try:
            sub = importlib.import_module(module).app
        except ModuleNotFoundError as e:
            if not e.name or not module.startswith(e.name):  # a missing dependency is a bug
                raise
            continue
        app.add_typer(sub, name=name, help=help_text)


_mount_subapps()


def settings_problem(exc: Exception) -> str | None:
    """One line for an invalid setting, or None if ``exc`` is not about settings.
    pydantic's own report is a traceback of 50 lines, and it may quote a secret."""
    from pydantic import ValidationError
    from pydantic_settings import BaseSettings, SettingsError

    if isinstance(exc, SettingsError):  # e.g. a JSON setting that is not JSON
        return f"invalid setting: {exc}"
    if not isinstance(exc, ValidationError):
        return None
    classes: dict[str, type[BaseSettings]] = {}
    todo: list[type[BaseSettings]] = [BaseSettings]
    while todo:
        for sub in todo.pop().__subclasses__():
            classes[sub.__name__] = sub
            todo.append(sub)
    cls = classes.get(exc.title)
    if cls is None:
        return None
    prefix = str(cls.model_config.get("env_prefix") or "")
    parts = []
    for e in exc.errors():
        field = ".".join(str(x) for x in e["loc"])
        if not field:  # a check across fields: its message names them
            parts.append(str(e["msg"]).removeprefix("Value error, "))
        elif re.search(r"password|secret|token", field, re.IGNORECASE):
            parts.append(f"{prefix}{field}".upper() + f": {e['msg']}")
        else:
            parts.append(f"{prefix}{field}".upper() + f": {e['msg']} (got {e['input']!r:.80})")
    return "invalid setting: " + "; ".join(parts)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except Exception as e:
        problem = settings_problem(e)
        if problem is None:
            raise
        err.print(f"[red]error:[/red] {problem}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
