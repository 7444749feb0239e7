"""`matrixwatch registry import|validate`: CSV/YAML in, validated matrix.yaml out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from matrixwatch.cli import app
from matrixwatch.registry import Registry

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collectors"
HEAD = "id,platform,name,unit,level,parent,active\n"
runner = CliRunner()


def test_import_csv_writes_a_loadable_matrix_yaml(tmp_path: Path) -> None:
    out = tmp_path / "matrix.yaml"
    r = runner.invoke(app, ["registry", "import", str(FIX / "registry.csv"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    reg = Registry.load(out)
    assert len(reg) == 5
    acc = reg.get("weibo", "9000000002")
    assert acc is not None and acc.parent == "9000000001" and acc.active  # "是"
    closed = reg.get("weibo", "9000000003")
    assert closed is not None and not closed.active
    web = reg.get("web", "example-gov")
    assert web is not None and web.active and web.parent is None  # empty cell → default
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert doc["accounts"][0] == {"id": "9000000000", "platform": "weibo", "name": "某某省发布",
                                  "unit": "某某省人民政府新闻办公室", "level": "province",
                                  "parent": None, "active": True}
    again = runner.invoke(app, ["registry", "import", str(FIX / "registry.csv"),
                                "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    assert runner.invoke(app, ["registry", "import", str(FIX / "registry.csv"), "--out",
                               str(out), "--force"]).exit_code == 0
    assert runner.invoke(app, ["registry", "validate", str(out)]).exit_code == 0


@pytest.mark.parametrize(("rows", "message"), [
    ("1,weibo,甲,,city,99,true\n", "unknown parent 99"),
    ("1,weibo,甲,,city,2,true\n2,weibo,乙,,county,1,true\n", "parent cycle"),
    ("1,weibo,甲,,city,,true\n1,weibo,甲2,,city,,true\n", "duplicate id 1"),
    ("1,weibo,甲,,galaxy,,true\n", "level 'galaxy'"),
    ("1,weibo,,,city,,true\n", "missing field 'name'"),
    ("1,weibo,甲,,city,,maybe\n", "active must be true/false"),
])
def test_import_rejects_bad_registries(tmp_path: Path, rows: str, message: str) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(HEAD + rows, encoding="utf-8-sig")
    out = tmp_path / "matrix.yaml"
    r = runner.invoke(app, ["registry", "import", str(src), "--out", str(out)])
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())
    assert not out.exists()


def test_import_yaml_and_missing_columns(tmp_path: Path) -> None:
    src = tmp_path / "in.yaml"
    src.write_text("accounts:\n  - {id: 1, platform: weibo, name: 甲}\n"
                   "units:\n  - {name: 甲单位, parent_unit: null}\n", encoding="utf-8")
    out = tmp_path / "m.yaml"
    assert runner.invoke(app, ["registry", "import", str(src), "--out", str(out)]).exit_code == 0
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["units"][0]["name"] == "甲单位"
    bad = tmp_path / "cols.csv"
    bad.write_text("uid,name\n1,甲\n", encoding="utf-8")
    r = runner.invoke(app, ["registry", "validate", str(bad)])
    assert r.exit_code == 2 and "missing column" in r.output
