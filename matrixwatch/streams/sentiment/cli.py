"""``matrixwatch score`` and ``matrixwatch sentiment train|eval|bench``.

:func:`score_command` is a plain function (the lead mounts it as ``matrixwatch score``);
``app`` is the typer sub-app for the rest. Run standalone with
``python -m matrixwatch.streams.sentiment.cli --help``.
"""

from __future__ import annotations

import io
import json
import os
import select
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from rich.table import Table

from matrixwatch.streams.sentiment import data as D
from matrixwatch.streams.sentiment.base import DEFAULT_MODEL, available, get_model

SCORE_BATCH = 512

app = typer.Typer(
    help="Sentiment models: train the domain model, evaluate and benchmark against SnowNLP.",
    no_args_is_help=True,
)


# --------------------------------------------------------------------------- score


def _clean(line: str) -> str:
    return line.rstrip("\r\n")


def _fd_batches(fd: int, size: int) -> Iterator[list[str]]:
    """Batches of lines from a raw fd: full batches when input streams in fast, and the
    lines so far as soon as the writer pauses, so an interactive writer that waits for each
    answer is never deadlocked by our batching."""
    buf = b""
    pending: list[str] = []
    while True:
        if pending and not select.select([fd], [], [], 0)[0]:
            yield pending
            pending = []
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        pending.extend(_clean(x.decode("utf-8", errors="replace")) for x in lines)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if buf:
        pending.append(_clean(buf.decode("utf-8", errors="replace")))
    if pending:
        yield pending


def _stream_batches(stdin: TextIO, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in stdin:
        batch.append(_clean(line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _batches(stdin: TextIO, size: int) -> Iterator[list[str]]:
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return _stream_batches(stdin, size)
    # Only safe on an fd nothing has read from yet: sys.stdin at program start.
    return _fd_batches(fd, size)


def score_command(model: str, stdin: TextIO, stdout: TextIO) -> int:
    """One text per input line → one ``{"score", "label"}`` JSON line per text, in order."""
    try:
        scorer = get_model(model)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    for batch in _batches(stdin, SCORE_BATCH):
        out = scorer.score_batch(batch)
        stdout.write("".join(json.dumps(s.as_dict(), ensure_ascii=False) + "\n" for s in out))
        stdout.flush()
    return 0


@app.command("score")
def score_cli(
    model: str = typer.Option("default", "--model", help="Model name: " + ", ".join(available())),
) -> None:
    """Score stdin, one text per line (same as ``matrixwatch score``)."""
    raise typer.Exit(score_command(model, sys.stdin, sys.stdout))


# --------------------------------------------------------------------------- train


def _console() -> Console:
    """Wide enough for the tables when output goes to a file or a pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _data_dir(data: Path | None) -> Path:
    path = data if data is not None else D.default_data_dir()
    if not (path / "sentiment").is_dir():
        raise typer.BadParameter(f"{path} has no sentiment/ folder (set --data or MW_SHARED_DATA)")
    return path


@app.command("train")
def train_cli(
    data: Path | None = typer.Option(
        None, "--data", help="Shared data dir (default $MW_SHARED_DATA or ../shared/data)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Model file (default: the shipped one)."),
    model: str = typer.Option(
        DEFAULT_MODEL,
        "--model",
        help="Kind to build: ngram, ngram-moe, ngram-mix, ngram-words, ngram-lex or ngram-osm "
        "(default: the default model).",
    ),
    moe: bool = typer.Option(False, "--moe", help="Same as --model ngram-moe."),
) -> None:
    """Rebuild a shipped ``ngram``-family model from the training splits.

    Needs scikit-learn and scipy; the models themselves need numpy alone.
    """
    try:
        from matrixwatch.streams.sentiment.train import PRESETS, train_and_save
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise typer.BadParameter(f"training needs scikit-learn and scipy: {exc}") from exc
    kind = "ngram-moe" if moe else model
    if kind not in PRESETS:
        raise typer.BadParameter(f"unknown kind {kind!r}; choose from {', '.join(PRESETS)}")
    cfg = PRESETS[kind]
    train_and_save(_data_dir(data), out, log=lambda m: typer.echo(m, err=True), cfg=cfg)


def _override(cfg: object, settings: list[str]) -> object:
    """``key=value`` settings on top of a preset (values parsed as the field's type)."""
    import dataclasses
    import json as _json

    changes: dict[str, object] = {}
    fields = {f.name: f for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise typer.BadParameter(
                f"--set {item!r}: expected FIELD=VALUE with a TrainConfig field"
            )
        current = getattr(cfg, key)
        if isinstance(current, bool):
            changes[key] = raw.lower() in ("1", "true", "yes")
        elif isinstance(current, (int, float)):
            changes[key] = type(current)(raw)
        elif isinstance(current, tuple):
            value = _json.loads(raw)
            changes[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            changes[key] = raw
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


@app.command("cv")
def cv_cli(
    data: Path | None = typer.Option(None, "--data", help="Shared data dir."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Preset to cross-validate."),
    setting: list[str] = typer.Option(
        [], "--set", help="Override a TrainConfig field, e.g. --set gate_offset=1.5 (repeatable)."
    ),
) -> None:
    """5-fold CV of a whole model on the training rows (weibo dev, osm train, virus_train).

    The accuracies are out-of-fold; no evaluation file is read. Takes as long as five
    trainings without the threshold search (about 15 minutes for ngram-lex on one core).
    """
    try:
        from matrixwatch.streams.sentiment.train import PRESETS, cross_validate
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise typer.BadParameter(f"training needs scikit-learn and scipy: {exc}") from exc
    if model not in PRESETS:
        raise typer.BadParameter(f"unknown kind {model!r}; choose from {', '.join(PRESETS)}")
    cfg = _override(PRESETS[model], setting)
    result = cross_validate(_data_dir(data), cfg, log=lambda m: typer.echo(m, err=True))  # type: ignore[arg-type]
    label = model + "".join(f" {s}" for s in setting)
    for name, r in result.items():
        folds = " / ".join(f"{a:.3f}" for a in r["folds"])
        typer.echo(
            f"{label}\t{name}\tCV accuracy {r['accuracy']:.4f} ({r['right']}/{r['n']}; {folds})"
        )


# --------------------------------------------------------------------------- eval


@app.command("eval")
def eval_cli(
    data: Path | None = typer.Option(None, "--data", help="Shared data dir."),
    models: str = typer.Option(
        "", "--models", help="Comma-separated models (default: every registered model)."
    ),
    limit: int = typer.Option(
        2000, "--limit", help="Sample size per set for slow models (snownlp); 0 = all."
    ),
) -> None:
    """Accuracy and macro-F1 per data set × model, the default model next to SnowNLP."""
    from matrixwatch.streams.sentiment.evaluate import EvalRow, evaluate

    names = [m.strip() for m in models.split(",") if m.strip()] or available()
    limits: dict[str, int | None] = {"snownlp": limit or None}
    console = _console()
    console.print(f"[dim]default model = {DEFAULT_MODEL}; binary sets: positive iff score > 0.5[/]")

    def progress(r: EvalRow) -> None:
        console.print(f"[dim]{r.model:8} {r.dataset:36} n={r.n:<6} acc={r.accuracy:.3f}[/]")

    rows = evaluate(_data_dir(data), names, limits, on_row=progress)
    table = Table(title="Sentiment evaluation (no set below was used for training)")
    table.add_column("data set")
    for name in names:
        table.add_column(f"{name} n", justify="right")
        table.add_column(f"{name} acc", justify="right")
        table.add_column(f"{name} macro-F1", justify="right")
    by = {(r.dataset, r.model): r for r in rows}
    for ds in dict.fromkeys(r.dataset for r in rows):
        cells = [ds]
        for name in names:
            r = by[(ds, name)]
            cells += [str(r.n), f"{r.accuracy:.3f}", f"{r.macro_f1:.3f}"]
        table.add_row(*cells)
    console.print(table)


# --------------------------------------------------------------------------- bench


@app.command("bench")
def bench_cli(
    data: Path | None = typer.Option(None, "--data", help="Shared data dir (texts to time)."),
    n: int = typer.Option(20000, "--n", help="Texts for the default model."),
    n_snownlp: int = typer.Option(1000, "--n-snownlp", help="Texts for SnowNLP (slow)."),
    batch: int = typer.Option(256, "--batch", help="score_batch size."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model to time against SnowNLP."),
) -> None:
    """Texts/s of the default (or another) model and SnowNLP on one core, same run, same texts."""
    from matrixwatch.streams.sentiment.bench import run_bench

    path = data if data is not None else D.default_data_dir()
    results, source, cpu = run_bench(path if path.is_dir() else None, n, n_snownlp, batch, model)
    table = Table(title=f"Throughput on one core (cpu {cpu}); texts: {source}")
    for col in ("model", "batch", "texts", "mean chars", "seconds", "texts/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        table.add_row(
            r.model,
            str(r.batch),
            str(r.texts),
            f"{r.mean_chars:.1f}",
            f"{r.seconds:.3f}",
            f"{r.per_second:,.0f}",
        )
    console = _console()
    console.print(table)
    fast = results[0]
    slow = next(r for r in results if r.model == "snownlp")
    console.print(
        f"{fast.model} / snownlp = {fast.per_second / slow.per_second:.1f}x "
        f"({fast.per_second:,.0f} vs {slow.per_second:,.0f} texts/s)"
    )


if __name__ == "__main__":
    app()
