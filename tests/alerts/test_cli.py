"""`matrixwatch rules validate|channels|test` on native Weibo objects."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from matrixwatch.alerts.cli import app
from tests.factories import REGISTRY_YAML, T0, comment, repost, status

H = timedelta(hours=1)
M = timedelta(minutes=1)
PROV, A, B, C, A1, A2 = ("9100000001", "9100000011", "9100000012", "9100000013",
                         "9100000111", "9100000112")
runner = CliRunner()


def write_input(tmp: Path) -> tuple[Path, Path]:
    p1 = status(5000000001, PROV, T0, "关于做好今冬明春防汛工作的通知")
    c1 = status(5000000002, A, T0 + 3 * H, "甲市今日发布暴雨黄色预警")
    quiet = status(5000000301, A2, T0 - 48 * H, "西区今日天气晴")
    objs = [
        quiet,
        *[comment(7000000101 + i, f"97000000{i:02d}", T0 - (47 - 6 * i) * H, quiet, "好的")
          for i in range(6)],
        p1, repost(5000000101, A, T0 + 30 * M, p1), repost(5000000102, B, T0 + 2 * H, p1),
        c1, repost(5000000201, A1, T0 + 3 * H + 10 * M, c1),
        comment(7000000002, "9800000002", T0 + 11 * M, p1, "请问什么时候开始？"),
        *[comment(7000000201 + i, f"96000000{i:02d}", T0 + 5 * H + i * 20 * timedelta(seconds=1),
                  quiet, "停水三天了没人管，太气人了") for i in range(30)],
    ]
    src = tmp / "in.jsonl"
    src.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in objs) + "\nnot json\n",
                   encoding="utf-8")
    reg = tmp / "matrix.yaml"
    reg.write_text(REGISTRY_YAML, encoding="utf-8")
    return src, reg


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_validate_default_rules_and_bad_dir(tmp_path: Path) -> None:
    res = runner.invoke(app, ["validate"])
    assert res.exit_code == 0, res.output
    assert "volume_spike" in res.output and "9 rules OK" in res.output
    (tmp_path / "bad.yaml").write_text("type: spike\nparams:\n  bucket: often\n",
                                       encoding="utf-8")
    res = runner.invoke(app, ["validate", str(tmp_path)])
    assert res.exit_code == 2
    assert "bad.yaml:3: params.bucket: expected a duration" in res.output


def test_validate_refuses_a_directory_without_rules(tmp_path: Path) -> None:
    res = runner.invoke(app, ["validate", str(tmp_path)])  # was "0 rules OK", exit 0
    assert res.exit_code == 2
    assert "no rule files" in res.output


def test_channels_lists_without_secrets() -> None:
    res = runner.invoke(app, ["channels"], env={"MW_DINGTALK_TOKEN": "tok-secret-1"})
    assert res.exit_code == 0 and "duty_dingtalk" in res.output
    assert "budget 20/min" in res.output and "budget 100/min, 5/s" in res.output
    assert "budget unlimited" in res.output
    assert "tok-secret-1" not in res.output


def test_rule_test_volume_spike(tmp_path: Path) -> None:
    src, reg = write_input(tmp_path)
    res = runner.invoke(app, ["test", "volume_spike", "--input", str(src), "--registry",
                              str(reg), "--as-of", "2026-11-05T00:00:00+08:00"])
    assert res.exit_code == 0, res.output
    out = rows(res.stdout)
    assert out and {r["rule"] for r in out} == {"volume_spike"}
    assert out[0]["account_id"] == A2 and out[0]["values"]["value"] >= 10
    assert "2026-11-02T14:00:00+08:00" <= out[0]["timestamp"] <= "2026-11-02T14:10:00+08:00"
    assert out[0]["decision"]["store"] is True
    assert "1 invalid lines skipped" in res.stderr


def test_rule_test_linkage_and_unanswered(tmp_path: Path) -> None:
    src, reg = write_input(tmp_path)
    res = runner.invoke(app, ["test", "linkage_low", "--input", str(src), "--registry", str(reg),
                              "--as-of", "2026-11-05T00:00:00+08:00"])
    assert res.exit_code == 0, res.output
    out = rows(res.stdout)
    assert [(r["post_id"], r["type"]) for r in out] == [("5000000002", "linkage_low")]
    assert "甲市西区发布" in out[0]["message"]
    # The question has 24 h; the data ends 5 h after it, so nothing is due yet.
    res = runner.invoke(app, ["test", "unanswered", "--input", str(src), "--registry", str(reg),
                              "--as-of", "2026-11-05T00:00:00+08:00"])
    assert res.exit_code == 0 and rows(res.stdout) == []


def test_rule_test_from_a_yaml_path_without_registry(tmp_path: Path) -> None:
    src, _ = write_input(tmp_path)
    f = tmp_path / "water.yaml"
    f.write_text("type: keyword\nparams: {lists: [{name: 水, words: [停水]}]}\nrealert: 1h\n",
                 encoding="utf-8")
    res = runner.invoke(app, ["test", str(f), "--input", str(src),
                              "--as-of", "2026-11-05T00:00:00+08:00"])
    assert res.exit_code == 0, res.output
    out = rows(res.stdout)
    assert len(out) == 30  # every matching comment fires ...
    assert sum(r["decision"]["store"] for r in out) == 1  # ... realert stores one per post
    assert "no --registry" in res.stderr


def test_rule_test_errors(tmp_path: Path) -> None:
    res = runner.invoke(app, ["test", "volume_spik", "--input", str(tmp_path / "x")])
    assert res.exit_code == 2 and "did you mean 'volume_spike'" in res.output
    res = runner.invoke(app, ["test", "volume_spike", "--input", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_all_default_rules_on_the_pipeline_scenario(tmp_path: Path) -> None:
    """What the lead's replay test expects once the stream uses the rule engine."""
    from datetime import datetime

    from matrixwatch.alerts.channels import ChannelConfig
    from matrixwatch.alerts.cli import _read_events, run_rules
    from matrixwatch.alerts.rules import load_rules
    from matrixwatch.registry import Registry
    from matrixwatch.streams.sentiment import get_model

    src, reg = write_input(tmp_path)
    events, _ = _read_events(src, datetime.fromisoformat("2026-11-05T00:00:00+08:00"))
    model = get_model()
    scored = [e.derive(sentiment_label=s.label)
              for e, s in zip(events, model.score_batch([e.text for e in events]), strict=True)]
    out = run_rules(load_rules(), scored, Registry.load(reg), ChannelConfig.load(env={}))
    stored = [r for r in out if r["decision"]["store"]]
    low = [r for r in stored if r["rule"] == "linkage_low"]
    assert [(r["post_id"], r["account_id"], r["timestamp"]) for r in low] == [
        ("5000000002", A, "2026-11-03T12:00:00+08:00")]
    spikes = [r for r in stored if r["rule"] == "volume_spike"]
    assert {r["account_id"] for r in spikes} == {A2}
    assert "2026-11-02T14:00:00+08:00" <= spikes[0]["timestamp"] <= "2026-11-02T14:10:00+08:00"
    assert all(r["decision"]["channels"] == [] for r in out)  # no channel enabled by default
    assert len({r["id"] for r in stored}) == len(stored)
