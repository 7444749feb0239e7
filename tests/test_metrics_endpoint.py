"""A running worker serves Prometheus metrics on its Faust web port: the project's own
and Faust's sensors, with samples once events flowed (what Prometheus scrapes in the
compose stack, and what `curl localhost:<port>/metrics` shows)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from matrixwatch.broker import EmbeddedBroker
from matrixwatch.pipeline import Feeder, WorkerProcess, prepare_topics
from matrixwatch.settings import Settings
from tests.factories import REGISTRY_YAML, T0, comment, status

pytestmark = pytest.mark.broker

PROJECT = {  # family name (counters without _total) → type
    "matrixwatch_events_in": "counter",
    "matrixwatch_events_out": "counter",
    "matrixwatch_dead_letters": "counter",
    "matrixwatch_sink_errors": "counter",
    "matrixwatch_alerts_fired": "counter",
    "matrixwatch_collector_errors": "counter",
    "matrixwatch_consumer_lag": "gauge",
    "matrixwatch_linkage_open_tasks": "gauge",
    "matrixwatch_end_to_end_seconds": "histogram",
}
FAUST = {  # Faust's PrometheusMonitor sensors, prefixed "faust"
    "faust_messages_received": "counter",
    "faust_topic_partition_end_offset": "gauge",
    "faust_topic_partition_offset_commited": "gauge",
    "faust_consumer_commit_latency": "histogram",
}


def web_port(w: WorkerProcess) -> int:
    """The port WorkerProcess.start chose (from the attribute if it has one, else from the
    child's environment: start() sets MW_WEB_PORT itself)."""
    port = getattr(w, "web_port", None)
    if port:
        return int(port)
    env = Path(f"/proc/{w.proc.pid}/environ").read_bytes().split(b"\0")
    (value,) = [e.split(b"=", 1)[1] for e in env if e.startswith(b"MW_WEB_PORT=")]
    return int(value)


def scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, object], family: str, name: str, **labels: str) -> float:
    fam = fams.get(family)
    total = 0.0
    for s in getattr(fam, "samples", []):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerProcess, int]]:
    tmp = tmp_path_factory.mktemp("metrics")
    reg = tmp / "matrix.yaml"
    reg.write_text(REGISTRY_YAML, encoding="utf-8")
    (tmp / "work").mkdir()
    settings = Settings(_env_file=None, data_dir=tmp / "work", registry=reg,  # type: ignore[call-arg]
                        sqlite_path=tmp / "store.sqlite", partitions=2)
    with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
        prepare_topics(settings, broker.url)
        w = WorkerProcess.start(settings, broker.url, tmp / "worker.log",
                                MW_PARTITIONS="2", MW_ES_URL="")
        try:
            feeder = Feeder(settings, broker.url)
            post = status(5000000001, "9100000001", T0, "关于做好防汛工作的通知")
            for obj in [post, comment(7000000001, "9800000001", T0, post, "太差劲了"),
                        comment(7000000002, "9800000002", T0, post, "支持")]:
                feeder.send_raw(json.dumps(obj, ensure_ascii=False).encode())
            feeder.send_raw(b'{"broken')
            feeder.flush()
            feeder.close()
            yield w, web_port(w)
        finally:
            w.stop()


def test_metrics_page_has_the_project_and_faust_metrics(
        worker: tuple[WorkerProcess, int]) -> None:
    w, port = worker
    deadline, fams, ctype, last = time.monotonic() + 90, {}, "", ""
    while time.monotonic() < deadline:
        assert w.alive(), w.tail()
        try:
            ctype, last = scrape(port)
            fams = families(last)
            if (sample(fams, "matrixwatch_events_out", "matrixwatch_events_out_total") >= 3
                    and sample(fams, "matrixwatch_dead_letters",
                               "matrixwatch_dead_letters_total") >= 1):
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        pytest.fail(f"no events counted in time; last scrape:\n{last[:2000]}\n{w.tail()}")
    assert ctype.startswith("text/plain")
    for name, kind in {**PROJECT, **FAUST}.items():
        assert name in fams, f"{name} missing from /metrics"
        assert fams[name].type == kind, name  # type: ignore[attr-defined]
    assert sample(fams, "matrixwatch_events_in", "matrixwatch_events_in_total",
                  source="raw") >= 4
    assert sample(fams, "matrixwatch_events_out", "matrixwatch_events_out_total",
                  kind="comment", platform="weibo") == 2
    assert sample(fams, "matrixwatch_end_to_end_seconds", "matrixwatch_end_to_end_seconds_count",
                  stage="store") >= 3
    assert sample(fams, "faust_messages_received", "faust_messages_received_total") >= 4


def test_consumer_lag_is_reported_per_partition(worker: tuple[WorkerProcess, int]) -> None:
    _, port = worker
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fams = families(scrape(port)[1])
        lag = [s for s in getattr(fams.get("matrixwatch_consumer_lag"), "samples", [])]
        if lag:
            assert {s.labels["topic"] for s in lag} >= {"mw-raw", "mw-events"}
            assert all(s.value >= 0 for s in lag)
            return
        time.sleep(1)
    pytest.fail("matrixwatch_consumer_lag has no samples: the worker does not update it")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_shows_the_metrics(worker: tuple[WorkerProcess, int]) -> None:
    _, port = worker
    out = subprocess.run(["curl", "-fsS", f"http://localhost:{port}/metrics"],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "no_proxy": "*"})
    assert out.returncode == 0, out.stderr
    assert "# TYPE matrixwatch_events_out_total counter" in out.stdout
