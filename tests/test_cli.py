"""The top-level command line: mistakes are one clear line and exit 2, and a stopped
`replay` leaves no broker or worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from matrixwatch import pipeline
from matrixwatch.cli import app
from matrixwatch.collectors.simulator import build_matrix, write_jsonl, write_registry
from matrixwatch.settings import Settings

runner = CliRunner()


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("feed")
    matrix = build_matrix(seed=3)
    write_registry(d / "matrix.yaml", matrix)
    write_jsonl(d / "feed.jsonl", matrix, 200, seed=3)
    return d / "matrix.yaml", d / "feed.jsonl"


def _replay(feed: tuple[Path, Path], out: Path, *extra: str) -> Any:
    registry, lines = feed
    return runner.invoke(app, ["replay", "--registry", str(registry), "--out", str(out),
                               *extra, str(lines)])


@pytest.mark.parametrize(("as_of", "reason"), [
    ("yesterday", "not an ISO time"),
    ("2026-11-05T00:00:00", "needs an offset"),
    ("0001-01-01T00:00:00+14:00", "out of range"),
])
def test_replay_refuses_a_bad_as_of_before_starting(
        feed: tuple[Path, Path], tmp_path: Path, as_of: str, reason: str) -> None:
    # Before: the run went ahead and dead-lettered every record, then exited 0.
    r = _replay(feed, tmp_path / "out", "--as-of", as_of)
    assert r.exit_code == 2
    assert "--as-of" in r.output and reason in r.output
    assert not (tmp_path / "out" / "work").exists()  # no broker or worker was started


def test_replay_out_must_be_a_directory(feed: tuple[Path, Path], tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    r = _replay(feed, a_file)
    assert r.exit_code == 2 and "not a directory" in r.output
    r = _replay(feed, Path("/proc/no-such-dir/out"))
    assert r.exit_code == 2 and "cannot create" in r.output


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "inf"])
def test_replay_timeout_must_be_positive_and_finite(
        feed: tuple[Path, Path], tmp_path: Path, timeout: str) -> None:
    r = _replay(feed, tmp_path / "out", "--timeout", timeout)
    assert r.exit_code == 2 and "--timeout" in r.output


def test_unknown_sentiment_model_fails_before_the_broker_starts(
        feed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matrixwatch import cli

    monkeypatch.setattr(cli, "get_settings", lambda: Settings(sentiment_model="nope"))
    r = _replay(feed, tmp_path / "out")
    assert r.exit_code == 2
    assert "MW_SENTIMENT_MODEL" in r.output and "ngram-osm" in r.output
    assert not (tmp_path / "out" / "work").exists()


def test_a_json_array_file_gets_a_hint(tmp_path: Path) -> None:
    from matrixwatch.cli import _looks_like_json_array

    array = tmp_path / "a.json"
    array.write_bytes(b"\xef\xbb\xbf\n  [\n {\"id\": 1}\n]\n")
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"id": 1}\n')
    assert _looks_like_json_array(array)
    assert not _looks_like_json_array(lines)


def _mw(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matrixwatch", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize(("env", "expected"), [
    ({"MW_COMPRESSION": "brotli"}, "MW_COMPRESSION"),
    ({"MW_PARTITIONS": "100000"}, "MW_PARTITIONS"),
    ({"MW_SWEEP_INTERVAL": "nan"}, "MW_SWEEP_INTERVAL"),
    ({"MW_LINKAGE_LEVEL_DEADLINES": "{bad"}, "linkage_level_deadlines"),
    ({"MW_ALERT_KEY_RETENTION": "10"}, "allowed_lateness"),
])
def test_a_bad_setting_is_one_line_not_a_traceback(
        feed: tuple[Path, Path], tmp_path: Path, env: dict[str, str], expected: str) -> None:
    registry, lines = feed
    r = _mw("replay", "--registry", str(registry), "--out", str(tmp_path / "o"), str(lines),
            env=env)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: invalid setting") and expected in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_bad_secret_setting_is_not_echoed() -> None:
    from pydantic import ValidationError

    from matrixwatch.cli import settings_problem

    with pytest.raises(ValidationError) as info:
        Settings(es_password=["hunter2-secret"])  # type: ignore[arg-type]
    problem = settings_problem(info.value)
    assert problem is not None and "MW_ES_PASSWORD" in problem
    assert "hunter2" not in problem


def test_stop_on_signals_raises_once_then_ignores() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(pipeline.Interrupted) as info, pipeline.stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failed_start_stops_what_was_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`with` calls __exit__ only after __enter__ returns: an interrupt during start-up
    used to leave the broker and the worker running."""
    import contextlib

    stopped: list[str] = []

    @contextlib.contextmanager
    def fake_broker(url: Any, log: Any) -> Any:
        try:
            yield "kafka://127.0.0.1:1"
        finally:
            stopped.append("broker")

    class FakeWorker:
        def stop(self) -> int:
            stopped.append("worker")
            return 0

    def failing_feeder(*_: Any) -> None:
        raise pipeline.Interrupted(signal.SIGTERM)

    monkeypatch.setattr("matrixwatch.broker.broker_for", fake_broker)
    monkeypatch.setattr(pipeline, "prepare_topics", lambda *_: None)
    monkeypatch.setattr(pipeline.WorkerProcess, "start", lambda *_: FakeWorker())
    monkeypatch.setattr(pipeline, "Feeder", failing_feeder)
    session = pipeline.ReplaySession(tmp_path / "m.yaml", tmp_path / "out", Settings())
    with pytest.raises(pipeline.Interrupted), session:
        pass
    assert stopped == ["worker", "broker"]


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_sigterm_stops_replays_broker_and_worker(feed: tuple[Path, Path], tmp_path: Path) -> None:
    registry, lines = feed
    proc = subprocess.Popen(
        [sys.executable, "-m", "matrixwatch", "replay", "--registry", str(registry),
         "--out", str(tmp_path / "out"), str(lines)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    deadline = time.monotonic() + 60
    while len(children) < 2 and time.monotonic() < deadline and proc.poll() is None:
        children |= _children(proc.pid)
        time.sleep(0.1)
    assert len(children) >= 2, "broker and worker never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    deadline = time.monotonic() + 10
    while not all(_gone(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [c for c in children if not _gone(c)]
    for c in left:  # do not leak them into the rest of the suite
        os.kill(c, signal.SIGKILL)
    assert not left, f"left running: {left}"
