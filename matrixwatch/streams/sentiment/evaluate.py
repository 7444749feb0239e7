"""Accuracy and macro-F1 of every model on every evaluation set (none used in training).

Binary sets are scored by the side of 0.5 of ``score`` (positive iff score > 0.5), the
same rule as the SnowNLP figures in ../shared/data/README.md. Three-class sets use the
model's ``label``. SnowNLP is slow, so it is scored on a fixed random sample of each set
(``limit``); the sample size is part of the result.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matrixwatch.streams.sentiment import data as D
from matrixwatch.streams.sentiment.base import LABELS, SentimentModel, get_model
from matrixwatch.streams.sentiment.metrics import accuracy, macro_f1

SAMPLE_SEED = 7
BATCH = 512


@dataclass(frozen=True)
class EvalRow:
    dataset: str
    model: str
    n: int
    accuracy: float
    macro_f1: float
    seconds: float


def predict(model: SentimentModel, texts: Sequence[str], three_class: bool) -> list[str]:
    out: list[str] = []
    for i in range(0, len(texts), BATCH):
        for s in model.score_batch(texts[i : i + BATCH]):
            if three_class:
                out.append(s.label)
            else:
                out.append("positive" if s.score > 0.5 else "negative")
    return out


def sample(ds: D.Dataset, limit: int | None) -> D.Dataset:
    texts, labels = ds
    if limit is None or limit <= 0 or len(texts) <= limit:
        return ds
    idx = sorted(random.Random(SAMPLE_SEED).sample(range(len(texts)), limit))
    return [texts[i] for i in idx], [labels[i] for i in idx]


def evaluate(
    data_dir: Path,
    models: Sequence[str],
    limits: dict[str, int | None],
    on_row: Callable[[EvalRow], None] | None = None,
) -> list[EvalRow]:
    """Score ``models`` on :func:`.data.evaluation_sets`; ``limits[model]`` caps each set."""
    rows: list[EvalRow] = []
    sets = D.evaluation_sets(data_dir)
    for name in models:
        model = get_model(name)
        for ds_name, (ds, three) in sets.items():
            texts, gold = sample(ds, limits.get(name))
            t0 = time.perf_counter()
            pred = predict(model, texts, three)
            dt = time.perf_counter() - t0
            classes: tuple[str, ...] = LABELS if three else ("negative", "positive")
            row = EvalRow(
                ds_name, name, len(texts), accuracy(gold, pred), macro_f1(gold, pred, classes), dt
            )
            rows.append(row)
            if on_row:
                on_row(row)
    return rows
