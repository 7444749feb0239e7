"""``matrixwatch score`` contract: one JSON line per input line, in order."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from matrixwatch.streams.sentiment.cli import HEAD_BYTES, TAIL_BYTES, score_command
from matrixwatch.streams.sentiment.features import HEAD_CHARS, TAIL_CHARS

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


# --------------------------------------------------------------------------- audit fixes


def _run_fd(data: bytes, tmp_path: Path, model: str = "default") -> list[dict[str, object]]:
    """Through the raw-fd reader, as real stdin is read (a file object has a fileno)."""
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    out = io.StringIO()
    with path.open(encoding="utf-8") as f:
        assert score_command(model, f, out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _run_whole(data: bytes, model: str = "default") -> list[dict[str, object]]:
    """Through the text-stream reader, which scores each whole line uncut: the reference."""
    out = io.StringIO()
    text = io.StringIO(data.decode("utf-8", errors="replace"), newline="\n")
    assert score_command(model, text, out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_bom_before_the_first_line_does_not_change_the_score(tmp_path: Path) -> None:
    """A BOM used to be scored as a character: 0.4397 negative became 0.6361 positive."""
    plain = "政府回应很及时\n很好很开心\n".encode()
    with_bom = b"\xef\xbb\xbf" + plain
    expected = _run_fd(plain, tmp_path)
    assert _run_fd(with_bom, tmp_path) == expected
    assert _run(with_bom.decode("utf-8"))[1] == expected
    # Only the first line: elsewhere U+FEFF is content, as any other character.
    assert len(_run_fd(plain + b"\xef\xbb\xbf\n", tmp_path)) == 3


def test_a_long_line_is_read_with_bounded_buffers(tmp_path: Path) -> None:
    """One 40 MB line took ~13 s: the pending line grew without bound and was re-split
    on every 64 KiB read. The splitter now holds at most the head and tail it keeps, so
    each byte is looked at a bounded number of times (speed itself: not a unit test)."""
    from matrixwatch.streams.sentiment.cli import _LineSplitter

    data = "好".encode() * (40 * 1024 * 1024 // 3) + b"\n"
    splitter, held, lines = _LineSplitter(), 0, []
    for i in range(0, len(data), 65536):
        lines += splitter.feed(data[i:i + 65536])
        held = max(held, len(splitter._head) + len(splitter._tail))
    assert len(lines) == 1
    assert held <= HEAD_BYTES + TAIL_BYTES + 65536
    assert _run_fd(data, tmp_path) == _run_whole(data)


def test_long_lines_score_as_the_whole_line(tmp_path: Path) -> None:
    """Over-long lines are cut to head and tail; the models read no more than that, so
    every score equals the uncut line's, blank middles and broken UTF-8 included."""
    big = HEAD_BYTES + TAIL_BYTES
    sp, fw, good = b" ", "\u3000".encode(), "好".encode()
    rnd = random.Random(7)
    pieces = ["好", "差", " ", "\u3000", "a", "😀", "\r", "\x00", "气死了", "点赞",
              "http://t.cn/x ", "@某人 "]
    lines = [
        sp * (3 * big),  # blank: neutral, however long
        sp * (2 * big) + good + sp * (2 * big),  # text only in the dropped middle
        fw * big + b"x" + fw * big,
        sp * big + b"\xff" + sp * big,  # a broken byte is content too
        good * big + b"\r",
        "😀".encode() * big,
        good * (big // 3) + "气死了，太差劲了".encode(),  # just under the cap
    ]
    for n in (big - 1, big, big + 1, big + 3, 3 * big):
        line = b"".join(rnd.choice(pieces).encode() for _ in range(n // 2))[:n]
        lines.append(line)
    data = b"\n".join(lines) + b"\n"
    rows = _run_fd(data, tmp_path)
    assert len(rows) == len(lines)
    assert rows == _run_whole(data)
    assert rows[0] == {"score": 0.5, "label": "neutral"}
    assert rows[1] != rows[0]


def test_cut_margins_cover_what_the_models_read() -> None:
    """HEAD_BYTES/TAIL_BYTES hold (at 4 bytes a character) more than the models read."""
    assert 4 * max(HEAD_CHARS, 2000) + 4 <= HEAD_BYTES  # SnowNLP reads t[:2000]
    assert TAIL_BYTES >= 4 * TAIL_CHARS + 4
