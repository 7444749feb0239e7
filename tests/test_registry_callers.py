"""Commands that load a registry report a bad one as one clean line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from matrixwatch.cli import app
from tests.collectors.test_registry_cli import BAD_YAML

runner = CliRunner()
BAD = {k: BAD_YAML[k] for k in ("units", "date", "int_tag")}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["replay", "rules"])
def test_bad_registry_is_a_clean_error(tmp_path: Path, case: str, command: str) -> None:
    reg = tmp_path / "matrix.yaml"
    reg.write_text(BAD[case], encoding="utf-8")
    feed = tmp_path / "feed.jsonl"
    feed.write_text("", encoding="utf-8")
    args = (["replay", "--registry", str(reg), "--out", str(tmp_path / "out"), str(feed)]
            if command == "replay" else
            ["rules", "test", "volume_spike", "--input", str(feed), "--registry", str(reg)])
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "matrix.yaml" in "".join(r.output.split())
