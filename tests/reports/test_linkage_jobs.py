"""Scheduled linkage reports: periods, files, store and the APScheduler jobs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from matrixwatch.reports.linkage_jobs import SHANGHAI, add_jobs, period_bounds, run_report
from matrixwatch.settings import Settings
from matrixwatch.streams.records import LinkageResult
from matrixwatch.streams.sinks.sqlite import SQLiteStore
from tests.factories import REGISTRY_YAML


def test_period_bounds_are_whole_days_and_weeks_in_shanghai() -> None:
    now = datetime(2026, 11, 4, 8, 0, tzinfo=SHANGHAI)  # a Wednesday
    since, until = period_bounds("daily", now)
    assert (since.isoformat(), until.isoformat()) == (
        "2026-11-03T00:00:00+08:00", "2026-11-04T00:00:00+08:00")
    since, until = period_bounds("weekly", now)
    assert (since.isoformat(), until.isoformat()) == (
        "2026-10-26T00:00:00+08:00", "2026-11-02T00:00:00+08:00")


def test_run_report_writes_files_store_and_is_idempotent(tmp_path: Path) -> None:
    reg = tmp_path / "matrix.yaml"
    reg.write_text(REGISTRY_YAML, encoding="utf-8")
    settings = Settings(registry=reg, data_dir=tmp_path, sqlite_path=tmp_path / "s.sqlite")
    store = SQLiteStore(settings.store_path)
    task = LinkageResult(post_id="1", account_id="9100000001", platform="weibo",
                         created_at="2026-11-03T09:00:00+08:00",
                         deadline="2026-11-04T09:00:00+08:00",
                         expected=["9100000011", "9100000012", "9100000013"],
                         linked={"9100000011": 600.0}, rate=0.333333,
                         closed_at="2026-11-04T09:00:00+08:00")
    asyncio.run(store.write_linkage([task]))
    store.close_sync()
    now = datetime(2026, 11, 4, 8, 0, tzinfo=SHANGHAI)
    for _ in range(2):
        run = run_report(settings, "daily", now)
    md = run.markdown.read_text(encoding="utf-8")
    assert "乙市发布" in md and "丙市发布" in md  # laggards by name
    assert run.csv.read_text(encoding="utf-8").startswith("account_id,")
    counts = SQLiteStore(settings.store_path).counts()
    assert counts["alerts"] == 1  # the report, once
    assert run.delivered == []  # no channel enabled in tests


def test_jobs_registered_with_cron_in_shanghai(tmp_path: Path) -> None:
    sched = BackgroundScheduler(timezone=SHANGHAI)
    ids = add_jobs(sched, Settings(data_dir=tmp_path, linkage_weekly_cron=""))
    assert ids[0] == "linkage-report-daily" and len(ids) == 2  # + the monthly index
    trigger = sched.get_job("linkage-report-daily").trigger
    assert "hour='8'" in str(trigger)
