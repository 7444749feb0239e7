"""``matrixwatch score`` and ``matrixwatch sentiment train|eval|bench``.

:func:`score_command` is a plain function (the lead mounts it as ``matrixwatch score``);
``app`` is the typer sub-app for the rest. Run standalone with
``python -m matrixwatch.streams.sentiment.cli --help``.
"""

from __future__ import annotations

import codecs
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


HEAD_BYTES = 48 * 1024
"""Bytes kept from the start of an over-long line: at least 12k characters, more than
any model reads from the start (ngram models 512, SnowNLP 2000)."""
TAIL_BYTES = 16 * 1024
"""Bytes kept from the end of an over-long line: at least 4k characters, more than the
128 the ngram models read from the end."""
ELLIPSIS = "\u2026"
"""Stands for the dropped middle of an over-long line when it held more than whitespace."""
_BOM = "\ufeff"


def _clean(line: str) -> str:
    return line.rstrip("\r\n")


def _is_continuation(byte: int) -> bool:
    return 0x80 <= byte <= 0xBF


class _LineSplitter:
    """Bytes → lines, linear in the input and with bounded memory per line.

    Each chunk is searched for newlines once (the old ``buf += chunk; buf.split()``
    re-split the whole pending line on every 64 KiB read: quadratic, 29 s for one 60 MB
    line). A line longer than ``HEAD_BYTES + TAIL_BYTES`` keeps its first ``HEAD_BYTES``
    and last ``TAIL_BYTES`` (cut on character boundaries) with :data:`ELLIPSIS` in place
    of the middle — nothing in place of a middle that is only whitespace, so an
    all-blank line stays blank. Every model reads only the head and the tail of a text,
    so the score is the one the whole line would get, and the line still gets its
    output line. A UTF-8 BOM before the first line is dropped (Windows editors write
    one; the model would read it as a character).
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self._tail = bytearray()  # only used once the line is long
        self._long = False
        self._mid_text = False  # the dropped middle held more than whitespace
        self._mid = codecs.getincrementaldecoder("utf-8")("replace")
        self._open = False  # a line has started (bytes seen since the last newline)
        self._first = True

    def feed(self, chunk: bytes) -> list[str]:
        """The lines completed by ``chunk``."""
        out: list[str] = []
        view = memoryview(chunk)
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            if not self._open and nl - start <= HEAD_BYTES + TAIL_BYTES:  # the usual line
                out.append(self._emit(chunk[start:nl].decode("utf-8", errors="replace")))
            else:
                self._add(view[start:nl])
                out.append(self._finish())
            start = nl + 1
        if start < len(chunk):
            self._add(view[start:])
        return out

    def close(self) -> list[str]:
        """The last line, if the input did not end with a newline."""
        return [self._finish()] if self._open else []

    def _add(self, data: memoryview) -> None:
        self._open = True
        if not self._long:
            self._head += data
            if len(self._head) > HEAD_BYTES + TAIL_BYTES:
                cut = HEAD_BYTES
                while cut > HEAD_BYTES - 3 and _is_continuation(self._head[cut]):
                    cut -= 1
                self._tail = self._head[cut:]
                del self._head[cut:]
                self._long = True
        else:
            self._tail += data
        if self._long and len(self._tail) > 2 * TAIL_BYTES:
            cut = len(self._tail) - TAIL_BYTES
            for k in range(cut, cut + 4):
                if not _is_continuation(self._tail[k]):
                    cut = k
                    break
            if not self._mid_text:
                text = self._mid.decode(bytes(self._tail[:cut]))
                self._mid_text = bool(text) and not text.isspace()
            del self._tail[:cut]

    def _finish(self) -> str:
        line = self._head.decode("utf-8", errors="replace")
        if self._long:
            if not self._mid_text:
                rest = self._mid.decode(b"", final=True)
                self._mid_text = bool(rest) and not rest.isspace()
            mark = ELLIPSIS if self._mid_text else ""
            line += mark + self._tail.decode("utf-8", errors="replace")
            self._mid.reset()
        self._head = bytearray()
        self._tail = bytearray()
        self._long = self._mid_text = self._open = False
        return self._emit(line)

    def _emit(self, line: str) -> str:
        if self._first:
            line = line.removeprefix(_BOM)
            self._first = False
        return _clean(line)


def _fd_batches(fd: int, size: int) -> Iterator[list[str]]:
    """Batches of lines from a raw fd: full batches when input streams in fast, and the
    lines so far as soon as the writer pauses, so an interactive writer that waits for each
    answer is never deadlocked by our batching."""
    lines = _LineSplitter()
    pending: list[str] = []
    while True:
        if pending and not select.select([fd], [], [], 0)[0]:
            yield pending
            pending = []
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending.extend(lines.feed(chunk))
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    pending.extend(lines.close())
    if pending:
        yield pending


def _stream_batches(stdin: TextIO, size: int) -> Iterator[list[str]]:
    """Batches of lines from a text stream (no fd: tests, embedding); BOM as above."""
    batch: list[str] = []
    for n, line in enumerate(stdin):
        batch.append(_clean(line.removeprefix(_BOM) if n == 0 else line))
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
    """One text per input line → one ``{"score", "label"}`` JSON line per text, in order.

    A leading UTF-8 BOM is not part of the first text. A line over 64 KiB is scored on
    its first 48 KiB and last 16 KiB (see :class:`_LineSplitter`): the same score as the
    whole line, in linear time and bounded memory.
    """
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
    """Score stdin, one text per line (same as ``matrixwatch score``).

    One JSON line {score, label} per input line, in order. A UTF-8 BOM before the first
    line is ignored. A line over 64 KiB is read as its first 48 KiB and last 16 KiB (the
    models only look at a text's start and end, so the score is unchanged).
    """
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
