"""End to end through the embedded Tansu broker and a real Faust worker process.

`matrixwatch replay` is run exactly as outside tools run it (a subprocess), on native
open-API statuses and comments plus malformed lines, and what lands in the store and
in the three output files is checked field by field.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.factories import REGISTRY_YAML, T0, comment, repost, status

pytestmark = pytest.mark.broker

PROV, A, B, C, D, A1, A2 = (
    "9100000001", "9100000011", "9100000012", "9100000013", "9100000014",
    "9100000111", "9100000112",
)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def scenario() -> tuple[list[bytes], dict[str, object]]:
    """A province post, a city post, reposts in and out of time, chains, comments, junk."""
    p1 = status(5000000001, PROV, T0, "关于做好今冬明春<a href='/n/x'>#防汛#</a>工作的通知")
    r_a = repost(5000000101, A, T0 + 30 * M, p1, "转发微博")
    r_b = repost(5000000102, B, T0 + 2 * H, p1, "转发//@甲市发布:转发微博", pid=5000000101)
    r_c_late = repost(5000000103, C, T0 + 25 * H, p1)
    r_d_inactive = repost(5000000104, D, T0 + H, p1)
    r_a1_not_direct = repost(5000000105, A1, T0 + H, p1, "//@甲市发布:转发微博")
    c1 = status(5000000002, A, T0 + 3 * H, "甲市今日发布暴雨黄色预警，请市民注意出行安全")
    r_a1 = repost(5000000201, A1, T0 + 3 * H + 10 * M, c1)
    r_a1_again = repost(5000000202, A1, T0 + 4 * H, c1)
    comments = [
        comment(7000000001 + i, f"98000000{i:02d}", T0 + (10 + i) * M, p1, text)
        for i, text in enumerate(["支持！", "请问什么时候开始？", "太差劲了，积水到现在都没排完"])
    ]
    # A county account with two quiet days, then 30 complaints in ten minutes.
    quiet = status(5000000301, A2, T0 - 48 * H, "西区今日天气晴")
    calm = [comment(7000000101 + i, f"97000000{i:02d}", T0 - (47 - 6 * i) * H, quiet, "好的")
            for i in range(6)]
    burst = [comment(7000000201 + i, f"96000000{i:02d}", T0 + 5 * H + 20 * i * timedelta(
        seconds=1), quiet, "停水三天了没人管，太气人了") for i in range(30)]
    good = [quiet, *calm, p1, r_b, r_a, c1, r_a1, r_a1_again, r_c_late, r_d_inactive,
            r_a1_not_direct, *comments, *burst]
    lines = [json.dumps(o, ensure_ascii=False).encode() for o in good]
    bad = [
        b'{"id": 1, "text": "broken',
        json.dumps({"id": 5000000999, "created_at": "Mon Nov 02 09:00:00 +0800 2026",
                    "text": "无用户"}).encode(),
        json.dumps({"id": {"x": 1}, "created_at": "Mon Nov 02 09:00:00 +0800 2026",
                    "text": "t", "user": {"id": 1}}).encode(),
        json.dumps(status(5000000998, A, T0, "长" * (1024 * 1024 // 3 + 10))).encode(),
        b'{"id": 5000000997, "text": "\xff\xfe bad utf8"}',
    ]
    # Interleave the bad lines between good ones so "the lines around them" are tested.
    mixed: list[bytes] = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i < len(bad):
            mixed.append(bad[i])
    expected = {
        "valid_ids": sorted(str(o["id"]) for o in good),
        "bad": len(bad),
        "linkage": {
            "5000000001": {"expected": [A, B, C], "linked": {A: 1800.0, B: 7200.0}},
            "5000000002": {"expected": [A1, A2], "linked": {A1: 600.0}},
        },
    }
    return mixed, expected


def run_replay(tmp: Path, lines: list[bytes], name: str) -> Path:
    reg = tmp / "matrix.yaml"
    reg.write_text(REGISTRY_YAML, encoding="utf-8")
    src = tmp / f"{name}.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp / f"out-{name}"
    env = {**os.environ, "MW_PARTITIONS": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "matrixwatch", "replay", "--registry", str(reg),
         "--out", str(out), "--as-of", "2026-11-05T00:00:00+08:00", str(src)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def read_jsonl(p: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("replay")
    lines, expected = scenario()
    return run_replay(tmp, lines, "once"), expected


def test_events_one_per_distinct_valid_object(replayed: tuple[Path, dict]) -> None:
    out, expected = replayed
    events = read_jsonl(out / "events.jsonl")
    assert sorted(e["id"] for e in events) == expected["valid_ids"]
    by_id = {e["id"]: e for e in events}
    assert by_id["5000000102"]["kind"] == "repost"
    assert by_id["5000000102"]["root_id"] == "5000000001"
    assert by_id["5000000102"]["parent_id"] == "5000000101"
    assert by_id["5000000102"]["owner_id"] == PROV
    assert by_id["7000000003"]["kind"] == "comment"
    assert by_id["7000000003"]["post_id"] == "5000000001"
    assert by_id["5000000001"]["text"].startswith("关于做好今冬明春#防汛#")
    assert by_id["5000000001"]["created_at"] == "2026-11-02T09:00:00+08:00"
    for e in events:
        assert e["sentiment_label"] in ("negative", "neutral", "positive")
        assert 0.0 <= e["sentiment"] <= 1.0


def test_linkage_tasks_exact(replayed: tuple[Path, dict]) -> None:
    out, expected = replayed
    tasks = {t["post_id"]: t for t in read_jsonl(out / "linkage.jsonl")}
    assert set(tasks) == set(expected["linkage"])
    for pid, want in expected["linkage"].items():
        got = tasks[pid]
        assert got["expected"] == want["expected"]
        assert got["linked"] == want["linked"]
        assert got["rate"] == pytest.approx(len(want["linked"]) / len(want["expected"]))
    assert tasks["5000000001"]["account_id"] == PROV
    assert tasks["5000000001"]["created_at"] == "2026-11-02T09:00:00+08:00"


def test_low_linkage_alert(replayed: tuple[Path, dict]) -> None:
    out, _ = replayed
    alerts = read_jsonl(out / "alerts.jsonl")
    low = [a for a in alerts if a["rule"] == "linkage_low"]
    assert [a["post_id"] for a in low] == ["5000000002"]
    a = low[0]
    assert a["account_id"] == A
    assert a["timestamp"] == "2026-11-03T12:00:00+08:00"
    assert a["severity"] in ("blue", "yellow", "orange", "red")
    assert "甲市西区发布" in a["message"]


def test_volume_spike_alert_on_the_burst(replayed: tuple[Path, dict]) -> None:
    out, _ = replayed
    spikes = [a for a in read_jsonl(out / "alerts.jsonl") if a["rule"] == "volume_spike"]
    assert spikes, "30 complaints in ten minutes on a quiet county account must alert"
    assert {a["account_id"] for a in spikes} == {A2}
    first = spikes[0]
    # Fired by an event inside the burst (within a minute of its start is the duty need).
    assert "2026-11-02T14:00:00+08:00" <= first["timestamp"] <= "2026-11-02T14:10:00+08:00"
    assert first["values"]["value"] >= 10


def test_malformed_lines_reach_dead_letters_with_reasons(replayed: tuple[Path, dict]) -> None:
    out, expected = replayed
    conn = sqlite3.connect(out / "store.sqlite")
    reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]
    conn.close()
    assert len(reasons) == expected["bad"]
    joined = " | ".join(reasons)
    assert "json" in joined.lower()
    assert "utf-8" in joined.lower()
    assert "too large" in joined.lower()
    assert all(r.strip() for r in reasons)


def test_duplicated_input_gives_identical_outputs(
    replayed: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = replayed
    lines, _ = scenario()
    doubled = [line for line in lines for _ in (0, 1)]
    out2 = run_replay(tmp_path, doubled, "twice")
    for name in ("events.jsonl", "alerts.jsonl", "linkage.jsonl"):
        assert (out / name).read_bytes() == (out2 / name).read_bytes(), name
