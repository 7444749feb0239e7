"""Reading the store, computing both reports, writing them: what the commands and the
monthly job share.

Only the event time ranges the reports need are read: the period plus a look-back (gaps
and the last post before the period), a reply allowance after it, and the year-ago
period (成长指数). On SQLite that is an indexed range scan; other stores are filtered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from matrixwatch.registry import Registry
from matrixwatch.reports import compliance as compliance_mod
from matrixwatch.reports import index as index_mod
from matrixwatch.reports import index_render as render
from matrixwatch.reports.collect import Key, collect
from matrixwatch.reports.config import ReportConfig
from matrixwatch.reports.content import ContentClassifier
from matrixwatch.reports.errata import ErrataChecker
from matrixwatch.reports.period import Period, last_month
from matrixwatch.streams.records import epoch

CONFIG_ENV = "MW_INDEX_CONFIG"
ERRATA_ENV = "MW_ERRATA_DICTS"


@dataclass
class Reports:
    period: Period
    index: list[index_mod.IndexRow]
    compliance: list[compliance_mod.ComplianceRow]
    events_read: int = 0


def ranges_for(period: Period, cfg: ReportConfig, at: float | None = None
               ) -> list[tuple[float, float]]:
    """Merged [lo, hi) event-time ranges to read for ``period``."""
    end = max(period.hi, at or period.hi) + cfg.compliance.reply_hours * 3600.0
    prev = period.year_ago()
    spans = sorted([(period.lo - cfg.lookback_days * 86400.0, end), (prev.lo, prev.hi)])
    out: list[tuple[float, float]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def load_events(store: Any, ranges: Sequence[tuple[float, float]]) -> Iterator[dict[str, Any]]:
    """Stored event dicts whose event time falls in one of ``ranges`` (sorted, disjoint)."""
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        conn = store.connect()
        for lo, hi in ranges:
            cur = conn.execute("SELECT doc FROM events WHERE ts >= ? AND ts < ? "
                               "ORDER BY ts, platform, id", (lo, hi))
            while batch := cur.fetchmany(5000):
                for (doc,) in batch:
                    yield orjson.loads(doc)
        return
    for e in store.iter_events():
        t = epoch(e["created_at"])
        if any(lo <= t < hi for lo, hi in ranges):
            yield e


def report_config(path: str | Path | None = None) -> ReportConfig:
    """``path``, else ``MW_INDEX_CONFIG``, else the defaults; plus ``MW_ERRATA_DICTS``."""
    cfg = ReportConfig.load(path or os.environ.get(CONFIG_ENV) or None)
    extra = [p for p in os.environ.get(ERRATA_ENV, "").split(",") if p.strip()]
    if extra:
        cfg.compliance.errata_dicts = (*cfg.compliance.errata_dicts, *extra)
    return cfg


def build(registry: Registry, store: Any, period: Period, cfg: ReportConfig, *,
          at: float | None = None, extras: Mapping[Key, Mapping[str, Any]] | None = None,
          veto: bool = True) -> Reports:
    """One read of the store, one collect pass, then compliance and the index."""
    counter = [0]

    def counted() -> Iterator[dict[str, Any]]:
        for e in load_events(store, ranges_for(period, cfg, at)):
            counter[0] += 1
            yield e

    c = collect(registry, counted(), period, classifier=ContentClassifier.load(),
                errata=ErrataChecker.load(cfg.compliance.errata_dicts),
                reply_hours=cfg.compliance.reply_hours)
    comp = compliance_mod.check_from(registry, c, cfg, at=at, extras=extras)
    vetoes = compliance_mod.vetoes(comp) if veto else None
    idx = index_mod.compute_from(registry, c, cfg, extras, vetoes)
    return Reports(period, idx, comp, counter[0])


def write_files(reps: Reports, out_dir: Path, weights: dict[str, float]) -> list[Path]:
    """index-<period>.{md,csv,json} and compliance-<period>.{md,csv,json} under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    label = reps.period.label.replace("..", "_")
    files = {
        f"index-{label}.md": render.index_markdown(reps.period.label, reps.index, weights),
        f"index-{label}.csv": render.index_csv(reps.index),
        f"index-{label}.json": render.index_json(reps.period.label, reps.index, weights) + "\n",
        f"compliance-{label}.md": render.compliance_markdown(reps.period.label,
                                                             reps.compliance),
        f"compliance-{label}.csv": render.compliance_csv(reps.compliance),
        f"compliance-{label}.json": render.compliance_json(reps.period.label,
                                                           reps.compliance) + "\n",
    }
    paths = []
    for name, text in files.items():
        p = out_dir / name
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


def run_monthly(
    *, registry: str | Path | None = None, store_path: str | Path | None = None,
    out_dir: str | Path | None = None, config: str | Path | None = None,
    period: Period | None = None, now: datetime | None = None, save: bool = True,
) -> tuple[Reports, list[Path]]:
    """Last month's (or ``period``'s) index and compliance → files and the store."""
    import asyncio

    from matrixwatch.reports.storage import save as save_rows
    from matrixwatch.reports.storage import save_sqlite
    from matrixwatch.settings import get_settings
    from matrixwatch.streams.sinks import make_store
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    settings = get_settings()
    reg_path = registry or settings.registry
    if reg_path is None:
        raise ValueError("no registry: set MW_REGISTRY or pass one")
    if store_path is not None:
        settings = settings.model_copy(update={"sqlite_path": Path(store_path), "es_url": None})
    period = period or last_month(now or datetime.now().astimezone())
    cfg = report_config(config)
    reg = Registry.load(reg_path)
    store = make_store(settings)
    try:
        reps = build(reg, store, period, cfg)  # extras: the registry's own
    finally:
        close = getattr(store, "close_sync", None)
        if close is not None:
            close()
    paths = write_files(reps, Path(out_dir) if out_dir else settings.data_dir / "reports",
                        cfg.index.weights)
    if save:
        if isinstance(store, SQLiteStore):
            save_sqlite(store.path, reps.index, reps.compliance)
        else:
            asyncio.run(save_rows(store, reps.index, reps.compliance))
    return reps, paths
