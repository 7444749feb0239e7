"""``matrixwatch score`` contract: one JSON line per input line, in order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from matrixwatch.streams.sentiment.cli import score_command

LINES = [
    "这届领导太不作为了，出了事故就知道删帖，气死了",
    "",
    "关于做好防汛工作的通知：各单位要加强值班值守，防范安全事故",
    "今天去政务大厅办事特别顺利，工作人员很耐心，点赞",
]


def _run(text: str, model: str = "default") -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    rc = score_command(model, io.StringIO(text), out)
    return rc, [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_json_line_per_text_in_order() -> None:
    rc, rows = _run("\n".join(LINES) + "\n")
    assert rc == 0
    assert len(rows) == len(LINES)
    for row in rows:
        assert set(row) == {"score", "label"}
        assert isinstance(row["score"], float)
        assert 0.0 <= row["score"] <= 1.0
    assert [r["label"] for r in rows] == ["negative", "neutral", "neutral", "positive"]


def test_last_line_without_newline_and_crlf() -> None:
    rc, rows = _run("气死了，太差劲了\r\n很好很开心")
    assert rc == 0
    assert [r["label"] for r in rows] == ["negative", "positive"]


def test_empty_input_gives_no_output() -> None:
    assert _run("") == (0, [])


def test_many_lines_cross_batches() -> None:
    texts = [LINES[i % len(LINES)] for i in range(1300)]
    _, rows = _run("\n".join(texts) + "\n")
    _, small = _run("\n".join(LINES) + "\n")
    assert len(rows) == 1300
    assert rows[: len(LINES)] == small
    assert rows[1296:1300] == small


def test_snownlp_baseline_is_selectable() -> None:
    rc, rows = _run("很好\n", model="snownlp")
    assert rc == 0
    assert len(rows) == 1


def test_unknown_model_fails() -> None:
    rc, rows = _run("x\n", model="no-such-model")
    assert rc == 2
    assert rows == []


def test_real_stdin_pipe_is_not_deadlocked_by_batching() -> None:
    """A writer that waits for each answer before sending the next line must be served."""
    code = (
        "import sys; from matrixwatch.streams.sentiment.cli import score_command; "
        "sys.exit(score_command('default', sys.stdin, sys.stdout))"
    )
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        bufsize=1,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for text in ("气死了，太差劲了", "很好很开心"):
            proc.stdin.write(text + "\n")
            proc.stdin.flush()
            row = json.loads(proc.stdout.readline())
            assert row["label"] in {"negative", "positive"}
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
