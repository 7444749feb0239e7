"""`report index|compliance|monthly|content-eval`, the stored rows and the monthly job."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from matrixwatch.reports.cli import app
from matrixwatch.reports.schedule import JOB_ID, monthly_job, schedule_reports
from matrixwatch.reports.storage import iter_saved
from matrixwatch.settings import Settings
from matrixwatch.streams.records import Event
from matrixwatch.streams.sinks.sqlite import SQLiteStore
from matrixwatch.streams.weibo_time import SHANGHAI
from tests.reports.index_data import EVENTS, REGISTRY, A, B

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    reg = tmp_path / "matrix.yaml"
    reg.write_text(yaml.safe_dump(REGISTRY, allow_unicode=True), encoding="utf-8")
    db = tmp_path / "store.sqlite"
    store = SQLiteStore(db)

    async def fill() -> None:
        await store.open()
        await store.write_events([Event(**e) for e in EVENTS])
        await store.close()

    asyncio.run(fill())
    return reg, db


def run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def test_index_json_from_the_store(files: tuple[Path, Path]) -> None:
    reg, db = files
    out = json.loads(run("index", "--period", "2026-10", "--format", "json",
                         "--registry", str(reg), "--store", str(db)))
    rows = {r["account_id"]: r for r in out["rows"]}
    assert out["period"] == "2026-10" and out["weights"]["content"] == 0.2
    assert rows[A]["composite"] == 66.666667 and rows[B]["composite"] == 25.833333
    assert (rows[B]["rank"], rows[A]["rank"], rows[A]["veto"]) == (1, 2, True)  # A is stale
    assert rows[A]["verified_days"] == 304.0  # verified_at read from the raw YAML
    no_veto = json.loads(run("index", "--period", "2026-10", "--format", "json", "--no-veto",
                             "--no-save", "--registry", str(reg), "--store", str(db)))
    assert {r["account_id"]: r["rank"] for r in no_veto["rows"]}[A] == 1


def test_index_csv_md_table_and_filters(files: tuple[Path, Path]) -> None:
    reg, db = files
    common = ["--period", "2026-10", "--registry", str(reg), "--store", str(db), "--no-save"]
    csv_text = run("index", "--format", "csv", "--level", "city", *common)
    assert len(csv_text.splitlines()) == 3
    assert csv_text.splitlines()[0].startswith("account_id,platform,name,unit,level,vertical")
    md = run("index", "--format", "md", "--vertical", "公安", *common)
    assert "## 部门 · 公安（2 个账号）" in md and "甲市发布" not in md
    assert "乙市发布" in run("index", "--format", "table", *common)


def test_compliance_outputs_and_check_time(files: tuple[Path, Path]) -> None:
    reg, db = files
    common = ["--period", "2026-10", "--registry", str(reg), "--store", str(db)]
    md = run("compliance", "--format", "md", "--problems", *common)
    assert "「再接再励」→「再接再厉」" in md and "否决 3 个" in md
    early = json.loads(run("compliance", "--format", "json", "--at", "2026-10-13", *common))
    a = next(r for r in early["rows"] if r["account_id"] == A)
    assert (a["stale_status"], a["days_since_last_post"]) == ("pass", 0.583333)
    assert "甲市警方" in run("compliance", "--format", "csv", *common)


def test_rows_are_stored_idempotently(files: tuple[Path, Path]) -> None:
    reg, db = files
    for _ in range(2):
        run("compliance", "--period", "2026-10", "--format", "json", "--registry", str(reg),
            "--store", str(db))
    idx = list(iter_saved(db, "index_scores", "2026-10"))
    comp = list(iter_saved(db, "compliance", "2026-10"))
    assert len(idx) == 6 and len(comp) == 6
    assert {r["account_id"]: r["rank"] for r in idx}[B] == 1
    assert {r["account_id"]: r["status"] for r in comp}[A] == "veto"


def test_bad_input_exits_2(files: tuple[Path, Path]) -> None:
    reg, db = files
    res = runner.invoke(app, ["index", "--period", "2026-13", "--registry", str(reg),
                              "--store", str(db)])
    assert res.exit_code == 2 and "not a period" not in res.stdout
    res = runner.invoke(app, ["compliance", "--registry", str(db.parent / "nope.yaml"),
                              "--store", str(db)])
    assert res.exit_code == 2


def test_monthly_command_writes_six_files(files: tuple[Path, Path], tmp_path: Path) -> None:
    reg, db = files
    out = run("monthly", "--period", "2026-10", "--registry", str(reg), "--store", str(db),
              "--out", str(tmp_path / "rep"))
    names = sorted(Path(p).name for p in out.split())
    assert names == ["compliance-2026-10.csv", "compliance-2026-10.json",
                     "compliance-2026-10.md", "index-2026-10.csv", "index-2026-10.json",
                     "index-2026-10.md"]


def test_content_eval_prints_precision_and_recall() -> None:
    out = json.loads(run("content-eval", "--json", "--split", "holdout2"))
    h2 = {c["label"]: c for c in out["holdout2"]["per_class"]}
    assert out["holdout2"]["n"] == 120 and out["holdout2"]["accuracy"] == 0.9
    assert (h2["政务"]["precision"], h2["政务"]["recall"]) == (0.9189, 0.9714)
    assert (h2["民生"]["precision"], h2["民生"]["recall"]) == (0.9459, 1.0)
    assert (h2["B类"]["precision"], h2["B类"]["recall"]) == (0.8696, 0.8)
    assert (h2["其他"]["precision"], h2["其他"]["recall"]) == (0.8261, 0.76)
    assert "precision" in run("content-eval", "--split", "holdout2", "--no-model")


def test_monthly_job_is_scheduled_and_runs(files: tuple[Path, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    reg, db = files
    settings = Settings(registry=reg, sqlite_path=db, data_dir=tmp_path / "var", es_url=None)
    sched = BackgroundScheduler(timezone=SHANGHAI)
    sched.start(paused=True)  # a started scheduler replaces jobs by id
    try:
        job = schedule_reports(sched, settings)
        assert job.id == JOB_ID and job.kwargs["store"] == str(db)
        nxt = job.trigger.get_next_fire_time(None, datetime(2026, 11, 15, tzinfo=SHANGHAI))
        assert nxt.isoformat() == "2026-12-01T09:00:00+08:00"
        monkeypatch.setenv("MW_INDEX_REPORT_CRON", "30 7 2 * *")
        job = schedule_reports(sched, settings)  # replaces the job
        nxt = job.trigger.get_next_fire_time(None, datetime(2026, 11, 15, tzinfo=SHANGHAI))
        assert nxt.isoformat() == "2026-12-02T07:30:00+08:00"
        assert len(sched.get_jobs()) == 1
    finally:
        sched.shutdown(wait=False)
    # Trigger the job function directly, as the scheduler would on 1 November.
    paths = monthly_job(**job.kwargs, now="2026-11-01T09:00:00+08:00")
    assert sorted(Path(p).name for p in paths)[0] == "compliance-2026-10.csv"
    assert all(Path(p).parent == tmp_path / "var" / "reports" for p in paths)
    assert len(list(iter_saved(db, "index_scores", "2026-10"))) == 6


def test_bad_dictionary_or_config_exits_2(files: tuple[Path, Path], tmp_path: Path) -> None:
    reg, db = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n  - {suggest: x}\n", encoding="utf-8")
    common = ["--period", "2026-10", "--registry", str(reg), "--store", str(db)]
    res = runner.invoke(app, ["compliance", "--errata", str(bad), *common])
    assert res.exit_code == 2 and "missing 'wrong'" in res.output
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("index: {normalise: zscore}\n", encoding="utf-8")
    res = runner.invoke(app, ["index", "--config", str(cfg), *common])
    assert res.exit_code == 2 and "minmax or rank" in res.output
