"""`matrixwatch registry import|validate`: CSV/YAML in, validated matrix.yaml out."""

from __future__ import annotations

from datetime import date
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


def test_import_keeps_every_field_the_loader_reads(tmp_path: Path) -> None:
    """closed_at, vertical, verified_at and synthetic were dropped by the writer."""
    src = tmp_path / "in.yaml"
    src.write_text(
        "accounts:\n"
        "  - {id: 1, platform: weibo, name: 甲, vertical: 公安, verified_at: 2024-02-01,"
        " synthetic: true}\n"
        "  - {id: '2', platform: weibo, name: 乙, parent: 1, active: 'false',"
        " closed_at: '2024-03-01T08:00:00+08:00', verified_at: '2023-05-06T07:08:09'}\n"
        "  - {id: '3', platform: weibo, name: 丙, parent: '1', active: false,"
        " closed_at: 2024-03-02T00:00:00Z, synthetic: 'false'}\n"
        "units:\n  - {name: 甲单位, parent_unit: 乙单位}\n", encoding="utf-8")
    out = tmp_path / "m.yaml"
    r = runner.invoke(app, ["registry", "import", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    want, got = Registry.load(src), Registry.load(out)
    assert list(got.all()) == list(want.all())
    assert got.closed_at == want.closed_at and len(got.closed_at) == 2
    assert got.extras == want.extras and got.units == want.units
    assert got.extras[("weibo", "1")] == {"vertical": "公安",
                                          "verified_at": date(2024, 2, 1)}
    first, second = yaml.safe_load(out.read_text(encoding="utf-8"))["accounts"][:2]
    assert first["synthetic"] is True and "closed_at" not in first
    assert second["closed_at"] == "2024-03-01T08:00:00+08:00" and second["active"] is False
    # and once more: the export of an export is the same file
    again = tmp_path / "again.yaml"
    assert runner.invoke(app, ["registry", "import", str(out), "--out", str(again)]).exit_code == 0
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


def _flat(output: str) -> str:
    """Rich folds long paths anywhere: compare without whitespace."""
    return "".join(output.split())


BAD_YAML = {
    "units": "accounts:\n  - {id: '1', platform: weibo, name: 甲}\nunits: 5\n",
    "date": "accounts:\n  - {id: '1', platform: weibo, name: 甲, verified_at: 2024-02-30}\n",
    "int_tag": "accounts:\n  - {id: !!int abc, platform: weibo, name: 甲}\n",
    "timestamp_tag": "accounts:\n  - {id: '1', platform: weibo, name: 甲,"
                     " closed_at: !!timestamp 2001-13-45}\n",
    "quoted_false": "accounts:\n  - {id: '1', platform: weibo, name: 甲, active: 'nope'}\n",
    "list_id": "accounts:\n  - {id: [1, 2], platform: weibo, name: 甲}\n",
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
@pytest.mark.parametrize("command", ["validate", "import"])
def test_bad_yaml_is_a_clean_error(tmp_path: Path, case: str, command: str) -> None:
    """No traceback: exit 2 and one line that names the file."""
    src = tmp_path / "bad.yaml"
    src.write_text(BAD_YAML[case], encoding="utf-8")
    r = runner.invoke(app, ["registry", command, str(src), "--out", str(tmp_path / "o.yaml")]
                      if command == "import" else ["registry", command, str(src)])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "error:" in r.output and "bad.yaml" in _flat(r.output)


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_invalid_utf8_is_a_clean_error(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / f"gbk{suffix}"
    src.write_bytes((HEAD + "1,weibo,甲市发布,,city,,true\n").encode("gbk") if suffix == ".csv"
                    else "accounts:\n  - {id: '1', platform: weibo, name: 甲}\n".encode("gbk"))
    r = runner.invoke(app, ["registry", "validate", str(src)])
    assert r.exit_code == 2, r.output
    assert "notUTF-8" in _flat(r.output)


def test_csv_field_over_the_csv_limit_is_a_clean_error(tmp_path: Path) -> None:
    """A cell over csv's 131072-character limit raised csv.Error out of the command."""
    src = tmp_path / "big.csv"
    src.write_text(HEAD + "1,weibo,甲,,city,,true\n2,weibo," + "乙" * 140_000 + ",,city,,\n",
                   encoding="utf-8")
    r = runner.invoke(app, ["registry", "validate", str(src)])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "big.csv:3:" in _flat(r.output) and "131072" in r.output


def test_import_csv_keeps_the_optional_columns(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(HEAD.rstrip("\n") + ",synthetic,closed_at,vertical,verified_at\n"
                   "1,weibo,甲,,city,,true,是,,公安,2024-02-01\n"
                   "2,weibo,乙,,county,1,停用,,2024-03-01T08:00:00+08:00,,\n",
                   encoding="utf-8")
    out = tmp_path / "m.yaml"
    r = runner.invoke(app, ["registry", "import", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    reg = Registry.load(out)
    one, two = reg.get("weibo", "1"), reg.get("weibo", "2")
    assert one is not None and one.synthetic and two is not None and not two.synthetic
    assert reg.extras == {("weibo", "1"): {"vertical": "公安", "verified_at": "2024-02-01"}}
    assert reg.closed_at_text == {("weibo", "2"): "2024-03-01T08:00:00+08:00"}
    bad = tmp_path / "bad.csv"
    bad.write_text(HEAD.rstrip("\n") + ",closed_at\n1,weibo,甲,,city,,false,yesterday\n",
                   encoding="utf-8")
    r = runner.invoke(app, ["registry", "validate", str(bad)])
    assert r.exit_code == 2 and "closed_at" in r.output


def test_active_but_closed_in_the_past_is_a_warning(tmp_path: Path) -> None:
    """active: true with a past closed_at loads (closed_at decides) but says so, one line
    per account, on validate and import; the exit code stays 0."""
    src = tmp_path / "m.yaml"
    src.write_text("""accounts:
  - {id: "1", platform: weibo, name: 甲, level: city, parent: null}
  - {id: "2", platform: weibo, name: 乙, level: county, parent: "1", active: false,
     closed_at: "2024-03-01T08:00:00+08:00"}
  - {id: "3", platform: weibo, name: 丙, level: county, parent: "1",
     closed_at: "2999-01-01T00:00:00+08:00"}
  - {id: "123", platform: weibo, name: 丁, level: county, parent: "1", active: true,
     closed_at: "2024-11-01T00:00:00+08:00"}
""", encoding="utf-8")
    want = ("warning: accounts[3] (account 123): active: true but closed_at "
            "2024-11-01T00:00:00+08:00 is past; it is treated as closed from then on")
    r = runner.invoke(app, ["registry", "validate", str(src)])
    assert r.exit_code == 0, r.output
    assert want in r.output.splitlines()
    assert r.output.count("warning:") == 1 and "valid" in r.output
    out = tmp_path / "out.yaml"
    r = runner.invoke(app, ["registry", "import", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert want in r.output.splitlines() and r.output.count("warning:") == 1
    assert Registry.load(out).closed_at_text[("weibo", "123")] == "2024-11-01T00:00:00+08:00"
    plain = runner.invoke(app, ["registry", "validate", str(FIX / "registry.csv")])
    assert plain.exit_code == 0 and "warning" not in plain.output
