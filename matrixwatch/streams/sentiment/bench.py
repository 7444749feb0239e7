"""Throughput of the default model against SnowNLP, same run, same texts, one core.

The process pins itself to one CPU first (where the OS allows it), so the figure is a
per-core figure even on a multi-core box, and both models see identical conditions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matrixwatch.streams.sentiment import data as D
from matrixwatch.streams.sentiment import seeds
from matrixwatch.streams.sentiment.base import DEFAULT_MODEL, get_model


@dataclass(frozen=True)
class BenchResult:
    model: str
    texts: int
    mean_chars: float
    seconds: float
    batch: int

    @property
    def per_second(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else float("inf")


def pin_one_core() -> int | None:
    """Restrict this process to a single CPU; return it, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def bench_texts(data_dir: Path | None, n: int) -> tuple[list[str], str]:
    """Real Weibo texts (weibo_senti_100k test, 20–200 chars) if present, else synthetic."""
    if data_dir is not None:
        try:
            texts, _ = D.load_weibo_senti(data_dir, "test", emoticons=True)
            texts = [t for t in texts if 20 <= len(t) <= 200]
            if texts:
                reps = -(-n // len(texts))
                return (texts * reps)[:n], "weibo_senti_100k test (20-200 chars)"
        except OSError:
            pass
    pool = seeds.neutral_notices() + list(seeds.NEGATIVE_CONTRAST) + list(seeds.POSITIVE_CONTRAST)
    out = [(pool[i % len(pool)] + "，" + pool[(i * 7 + 3) % len(pool)])[:140] for i in range(n)]
    return out, "synthetic notice/complaint texts"


def time_model(name: str, texts: Sequence[str], batch: int, repeats: int = 1) -> BenchResult:
    """Best of ``repeats`` wall-clock runs of ``score_batch`` over ``texts`` in batches."""
    model = get_model(name)
    model.score_batch(list(texts[:batch]))  # warm-up: model load, caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            model.score_batch(texts[i : i + batch])
        best = min(best, time.perf_counter() - t0)
    mean_chars = sum(len(t) for t in texts) / max(len(texts), 1)
    return BenchResult(name, len(texts), mean_chars, best, batch)


def run_bench(
    data_dir: Path | None,
    n: int = 20000,
    n_snownlp: int = 1000,
    batch: int = 256,
    model: str = DEFAULT_MODEL,
) -> tuple[list[BenchResult], str, int | None]:
    """Time ``model`` on n texts and SnowNLP on the first ``n_snownlp`` of the same texts."""
    cpu = pin_one_core()
    texts, source = bench_texts(data_dir, n)
    results = [
        time_model(model, texts, batch, repeats=3),
        time_model(model, texts, 1, repeats=1) if n <= 50000 else None,
        time_model("snownlp", texts[:n_snownlp], batch),
    ]
    return [r for r in results if r is not None], source, cpu
