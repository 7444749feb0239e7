"""Index and compliance rows in Elasticsearch: mappings, the commands and the monthly job.

The commands run against the loopback ``FakeES`` of the sink tests (the stream's events
are written into it first, then the report reads them back, computes, and writes its
rows), or against a real cluster when ``ES_URL`` is set, under a throwaway prefix. The
HTTP contract of ``write_docs`` itself is pinned by the sink tests' recording
``tests/data/es/bulk_index_reports.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from matrixwatch.reports.cli import app
from matrixwatch.reports.compliance import CHECKS, run_checks
from matrixwatch.reports.config import INDICES, MEASURES
from matrixwatch.reports.index import compute_index
from matrixwatch.reports.period import parse_period
from matrixwatch.reports.schedule import monthly_job
from matrixwatch.reports.storage import es_docs, save
from matrixwatch.settings import get_settings
from matrixwatch.streams.records import Event
from matrixwatch.streams.sinks.elasticsearch import (
    COMPLIANCE_CHECKS,
    MAPPINGS,
    ElasticsearchStore,
)
from tests.reports.index_data import EVENTS, REGISTRY, A, B, registry
from tests.streams.sinks.test_elasticsearch import FakeES, _cleanup_real, make_store, real_es

runner = CliRunner()
PERIOD = "2026-10"
DOUBLE_OK = (int, float)


def _rows() -> tuple[list[Any], list[Any]]:
    per = parse_period(PERIOD)
    return compute_index(registry(), EVENTS, per), run_checks(registry(), EVENTS, per)


# --- mappings (pure) ----------------------------------------------------------------------
def _compatible(value: Any, es_type: str) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return all(_compatible(v, es_type) for v in value)
    if es_type == "boolean":
        return isinstance(value, bool)
    if es_type in ("double", "integer"):
        return isinstance(value, DOUBLE_OK) and not isinstance(value, bool) and (
            es_type == "double" or float(value).is_integer())
    if es_type == "date":
        return isinstance(value, str) and bool(date.fromisoformat(value[:10]))
    return isinstance(value, str)  # keyword, text


def test_every_report_field_is_mapped_with_a_fitting_type() -> None:
    """dynamic: false would silently hide an unmapped field from Kibana."""
    idx, comp = _rows()
    docs = es_docs(idx, comp)
    for name, rows in docs.items():
        props = MAPPINGS[name]["properties"]
        seen: set[str] = set()
        for _, doc in rows:
            seen |= set(doc)
            for field, value in doc.items():
                assert field in props, f"{name}: {field} not mapped"
                assert _compatible(value, props[field]["type"]), (name, field, value)
        assert seen == set(props), f"{name}: mapped but never written: {set(props) - seen}"
    scores = MAPPINGS["index_scores"]["properties"]
    assert {m for m, _, _ in MEASURES} <= set(scores)
    assert {f"{i}_index" for i, _ in INDICES} <= set(scores)
    assert COMPLIANCE_CHECKS == CHECKS


def test_es_ids_are_account_and_period() -> None:
    idx, comp = _rows()
    docs = es_docs(idx, comp)
    ids = [i for i, _ in docs["index_scores"]]
    assert f"weibo:{A}|{PERIOD}" in ids and len(set(ids)) == len(ids) == 6
    cids = [i for i, _ in docs["compliance"]]
    assert f"weibo:{A}|{PERIOD}|2026-11-01T00:00:00+08:00" in cids and len(set(cids)) == 6
    doc = dict(docs["compliance"])[f"weibo:{A}|{PERIOD}|2026-11-01T00:00:00+08:00"]
    assert "findings" not in doc
    checks = [f["check"] for f in json.loads(doc["findings_json"])["findings"]]
    assert checks == list(CHECKS)


# --- against ES (fake or real) ------------------------------------------------------------
@pytest.fixture
def es_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
           ) -> Iterator[tuple[ElasticsearchStore, FakeES | None, Path]]:
    """MW_ES_* pointing at a fake (or ES_URL's real) cluster holding the month's events;
    yields (a store on it, the fake or None, the registry file)."""
    prefix = f"mwrep-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    real = real_es()
    fake = None if real else FakeES()
    url = real or (fake.url if fake is not None else "")
    monkeypatch.setenv("MW_ES_URL", url)
    monkeypatch.setenv("MW_ES_INDEX_PREFIX", prefix)
    for var in ("USERNAME", "PASSWORD", "VERIFY_CERTS"):
        if os.environ.get(f"ES_{var}"):
            monkeypatch.setenv(f"MW_ES_{var}", os.environ[f"ES_{var}"])
    monkeypatch.setenv("MW_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    reg = tmp_path / "matrix.yaml"
    reg.write_text(yaml.safe_dump(REGISTRY, allow_unicode=True), encoding="utf-8")
    store = make_store(url, prefix)

    async def fill() -> None:
        await store.open()
        await store.write_events([Event(**e) for e in EVENTS])
        await store.close()

    asyncio.run(fill())
    try:
        yield store, fake, reg
    finally:
        get_settings.cache_clear()
        if fake is not None:
            fake.close()
        else:
            _cleanup_real(url, prefix)


def _invoke(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def test_report_commands_write_rows_to_es_idempotently(
        es_env: tuple[ElasticsearchStore, FakeES | None, Path]) -> None:
    store, fake, reg = es_env
    out = json.loads(_invoke("index", "--period", PERIOD, "--format", "json",
                             "--registry", str(reg)))
    printed = {r["account_id"]: r for r in out["rows"]}
    assert printed[A]["composite"] == 66.666667 and printed[B]["rank"] == 1
    for _ in range(2):  # a rerun replaces the month's rows
        _invoke("compliance", "--period", PERIOD, "--format", "csv", "--registry", str(reg))
    scores = list(store.iter_docs("index_scores"))
    comp = list(store.iter_docs("compliance"))
    assert len(scores) == 6 and len(comp) == 6
    assert {d["account_id"]: d for d in scores}[A] == printed[A]  # the rows as printed
    by_acc = {d["account_id"]: d for d in comp}
    assert (by_acc[A]["status"], by_acc[A]["stale_status"]) == ("veto", "veto")
    assert json.loads(by_acc[A]["findings_json"])["findings"][0]["check"] == "stale"
    if fake is not None:
        assert max(fake.created.values()) == 1  # three runs: each row created once
        ids = set(fake.docs(store.index("index_scores")))
        assert f"weibo:{A}|{PERIOD}" in ids


def test_no_save_leaves_es_alone(es_env: tuple[ElasticsearchStore, FakeES | None, Path]
                                 ) -> None:
    store, _, reg = es_env
    _invoke("index", "--period", PERIOD, "--format", "csv", "--no-save", "--registry", str(reg))
    assert list(store.iter_docs("index_scores")) == []


def test_monthly_job_with_es_configured_writes_to_es(
        es_env: tuple[ElasticsearchStore, FakeES | None, Path], tmp_path: Path) -> None:
    """As the scheduler runs it when MW_ES_URL is set: store=None → the configured ES."""
    store, _, reg = es_env
    paths = monthly_job(registry=str(reg), store=None, out_dir=str(tmp_path / "rep"),
                        now="2026-11-01T09:00:00+08:00")
    assert len(paths) == 6
    scores = list(store.iter_docs("index_scores"))
    assert {d["period"] for d in scores} == {PERIOD} and len(scores) == 6
    assert sorted(d["rank"] for d in scores if d["peer_group"] == "city/发布") == [1, 2]
    assert len(list(store.iter_docs("compliance"))) == 6


def test_save_refuses_an_unknown_store() -> None:
    idx, comp = _rows()
    with pytest.raises(TypeError, match="cannot store"):
        asyncio.run(save(object(), idx, comp))
