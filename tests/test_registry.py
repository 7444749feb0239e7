"""Registry loading: the contract fields, and clear errors that name row and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from matrixwatch.registry import Registry, RegistryError
from tests.factories import REGISTRY_YAML


def test_loads_contract_fields(tmp_path: Path) -> None:
    p = tmp_path / "matrix.yaml"
    p.write_text(REGISTRY_YAML, encoding="utf-8")
    reg = Registry.load(p)
    assert len(reg) == 7
    acc = reg.get("weibo", "9100000011")
    assert acc is not None and acc.name == "甲市发布" and acc.level == "city"
    assert acc.parent == "9100000001" and acc.active
    assert reg.subordinates("weibo", "9100000001") == ["9100000011", "9100000012", "9100000013"]
    assert reg.subordinates("weibo", "9100000001", depth=2) == [
        "9100000011", "9100000012", "9100000013", "9100000111", "9100000112"]
    assert [u.name for u in reg.units] == ["甲市东区人民政府", "甲市南区人民政府"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["accounts"][1].update(parent="404"), "unknown parent 404"),
        (lambda d: d["accounts"][0].update(parent="9100000111"), "parent cycle"),
        (lambda d: d["accounts"].append(dict(d["accounts"][0])), "duplicate id"),
        (lambda d: d["accounts"][2].pop("name"), "accounts[2]: missing field 'name'"),
        (lambda d: d["accounts"][2].update(level="galaxy"), "level 'galaxy'"),
    ],
)
def test_bad_registries_say_what_is_wrong(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(REGISTRY_YAML)
    mutate(data)
    with pytest.raises(RegistryError, match=re.escape(message)):
        Registry.from_dict(data)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        Registry.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("accounts: [", encoding="utf-8")
    with pytest.raises(RegistryError, match="invalid YAML"):
        Registry.load(bad)


def test_libyaml_parser_reads_what_the_python_parser_reads(tmp_path: Path) -> None:
    """The registry is parsed with libyaml's safe loader when PyYAML has it; a generated
    matrix (Chinese names, dates, nulls, nesting) must read the same as with safe_load."""
    from matrixwatch.collectors.simulator import build_matrix, write_registry
    from matrixwatch.registry import _safe_load

    p = tmp_path / "matrix.yaml"
    write_registry(p, build_matrix(seed=3))
    text = p.read_text(encoding="utf-8") + "extra:\n  since: 2026-01-02\n  none: ~\n"
    assert _safe_load(text) == yaml.safe_load(text)
    assert len(Registry.load(p)) == len(Registry.from_dict(yaml.safe_load(p.read_text())))


def test_registry_yaml_refuses_python_tags(tmp_path: Path) -> None:
    p = tmp_path / "matrix.yaml"
    p.write_text("accounts: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="invalid YAML"):
        Registry.load(p)


def _one(**fields: object) -> dict[str, object]:
    """A one-account registry with ``fields`` over a valid row."""
    return {"accounts": [{"id": "1", "platform": "weibo", "name": "甲", **fields}]}


@pytest.mark.parametrize(("value", "active"), [
    (True, True), (False, False), ("false", False), ("False", False), (" 否 ", False),
    ("停用", False), ("closed", False), ("true", True), ("是", True), ("1", True), ("0", False),
    (0, False), (1, True), (None, True), ("", True),
])
def test_active_parses_like_the_csv_import(value: object, active: bool) -> None:
    """``bool("false")`` is True: a quoted "false" used to keep a closed account active."""
    acc = Registry.from_dict(_one(active=value)).get("weibo", "1")
    assert acc is not None and acc.active is active


def test_synthetic_parses_like_active() -> None:
    for value, synthetic in (("false", False), ("true", True), (None, False), ("", False)):
        acc = Registry.from_dict(_one(synthetic=value)).get("weibo", "1")
        assert acc is not None and acc.synthetic is synthetic


@pytest.mark.parametrize(("fields", "message"), [
    ({"active": "maybe"}, "accounts[0]: active must be true/false, not 'maybe'"),
    ({"active": 2}, "accounts[0]: active must be true/false, not 2"),
    ({"active": [False]}, "accounts[0]: active must be true/false"),
    ({"synthetic": "perhaps"}, "accounts[0]: synthetic must be true/false"),
    ({"id": [1, 2]}, "accounts[0]: id must be a string or an integer, not [1, 2]"),
    ({"id": 1.0e3}, "accounts[0]: id must be a string or an integer, not 1000.0"),
    ({"id": True}, "accounts[0]: id must be a string or an integer, not True"),
    ({"name": {"a": 1}}, "accounts[0]: name must be a string, not {'a': 1}"),
    ({"name": 12}, "accounts[0]: name must be a string, not 12"),
    ({"platform": ["weibo"]}, "accounts[0]: platform must be a string"),
    ({"unit": {"x": 1}}, "accounts[0]: unit must be a string"),
    ({"parent": [1]}, "accounts[0]: parent must be a string or an integer"),
    ({"parent": 1.5}, "accounts[0]: parent must be a string or an integer"),
    ({"level": ["city"]}, "accounts[0]: level ['city'] not one of"),
    ({"vertical": {"a": 1}}, "accounts[0]: vertical must be a string"),
    ({"verified_at": 20240101}, "accounts[0]: verified_at must be an ISO date"),
    ({"closed_at": [1]}, "accounts[0]: closed_at must be an ISO time with offset"),
    ({"closed_at": "2024-01-01"}, "accounts[0]: closed_at: timestamp without offset"),
])
def test_wrong_types_are_rejected(fields: dict[str, object], message: str) -> None:
    """``str()`` turned ``[1, 2]`` into the id "[1, 2]" and ``1.0e3`` into "1000.0"."""
    with pytest.raises(RegistryError, match=re.escape(f"matrix.yaml: {message}")) as e:
        Registry.from_dict(_one(**fields))
    if "id" not in fields:  # past the id, the message names the account too
        assert str(e.value).endswith(" (account 1)")


def test_integer_ids_and_parents_become_strings() -> None:
    reg = Registry.from_dict({"accounts": [
        {"id": 1, "platform": "weibo", "name": "甲"},
        {"id": "2", "platform": "weibo", "name": "乙", "parent": 1}]})
    acc = reg.get("weibo", "2")
    assert acc is not None and acc.parent == "1" and reg.get("weibo", "1") is not None


@pytest.mark.parametrize(("units", "message"), [
    (5, "matrix.yaml: units must be a list, not 5"),
    ({"name": "x"}, "matrix.yaml: units must be a list"),
    ([5], "matrix.yaml: units[0]: expected a mapping"),
    ([{"name": ["x"]}], "matrix.yaml: units[0]: name must be a string"),
    ([{"name": "x", "parent_unit": {"a": 1}}], "matrix.yaml: units[0]: parent_unit must be"),
])
def test_bad_units_are_registry_errors(units: object, message: str) -> None:
    """``units: 5`` was a TypeError traceback, not a registry error."""
    with pytest.raises(RegistryError, match=re.escape(message)):
        Registry.from_dict({**_one(), "units": units})


ROW = '  - {id: "1", platform: weibo, name: 甲, %s}\n'


@pytest.mark.parametrize(("row", "wants"), [
    ("verified_at: 2024-02-30",
     ("cannot read '2024-02-30': day is out of range for month", "line 2, column 54")),
    ("closed_at: !!timestamp 2001-13-45", ("month must be in 1..12", "line 2, column 52")),
    ("active: !!int abc", ("cannot read 'abc': invalid literal for int()",)),
    ('active: "false", verified_at: !!float x', ("could not convert string to float",)),
])
def test_bad_yaml_values_name_file_and_line(
        tmp_path: Path, row: str, wants: tuple[str, ...]) -> None:
    """PyYAML raises a bare ValueError for these, which no caller expected."""
    p = tmp_path / "matrix.yaml"
    p.write_text("accounts:\n" + ROW % row, encoding="utf-8")
    with pytest.raises(RegistryError) as e:
        Registry.load(p)
    assert str(e.value).startswith(f"{p}: invalid YAML: ")
    for want in wants:
        assert want in str(e.value)


def test_bad_id_tag_is_a_registry_error(tmp_path: Path) -> None:
    p = tmp_path / "matrix.yaml"
    p.write_text("accounts:\n  - {id: !!int abc, platform: weibo, name: 甲}\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=re.escape(f"{p}: invalid YAML")):
        Registry.load(p)


def test_invalid_utf8_is_a_registry_error(tmp_path: Path) -> None:
    p = tmp_path / "matrix.yaml"
    p.write_bytes("accounts:\n  - {id: '1', platform: weibo, name: 甲}\n".encode("gbk"))
    with pytest.raises(RegistryError, match=re.escape(f"{p}: not UTF-8")):
        Registry.load(p)


def test_from_text_turns_every_bad_input_into_a_registry_error() -> None:
    """The console validates uploaded text: it needs the same errors as a file."""
    assert len(Registry.from_text(REGISTRY_YAML, source="upload")) == 7
    for text in ("accounts: [", "units: 5\naccounts: []", "accounts:\n  - {id: !!int x}",
                 "accounts:\n  - {id: '1', platform: weibo, name: 甲, verified_at: 2024-02-30}"):
        with pytest.raises(RegistryError, match=r"^upload: "):
            Registry.from_text(text, source="upload")


def _chain(n: int) -> list[dict[str, object]]:
    return [{"id": str(i), "platform": "weibo", "name": f"号{i}",
             "parent": str(i - 1) if i else None} for i in range(n)]


def test_long_parent_chain_validates() -> None:
    """The cycle check walked every account's whole chain: 20,000 levels took minutes."""
    n = 20_000
    reg = Registry.from_dict({"accounts": _chain(n)[::-1]})  # leaves first: worst order
    assert len(reg) == n
    assert reg.subordinates("weibo", str(n - 2)) == [str(n - 1)]


def test_parent_cycle_names_the_first_account_that_reaches_it() -> None:
    rows = _chain(20_000)
    rows[0]["parent"] = "19999"  # the whole chain is one cycle
    with pytest.raises(RegistryError, match=re.escape("matrix.yaml: account 0: parent cycle")):
        Registry.from_dict({"accounts": rows})
    rows = [{"id": "a", "platform": "weibo", "name": "甲", "parent": "b"},
            {"id": "b", "platform": "weibo", "name": "乙", "parent": "c"},
            {"id": "c", "platform": "weibo", "name": "丙", "parent": "b"}]
    with pytest.raises(RegistryError, match=re.escape("matrix.yaml: account a: parent cycle")):
        Registry.from_dict({"accounts": rows})


@pytest.mark.parametrize("active", [True, False])
def test_closed_at_decides_from_then_on_whatever_active_says(active: bool) -> None:
    """戊市 in the audit: ``active: true`` with a past closed_at stayed in every expected
    set. Either way closed_at decides at a known time: expected before it, not at or after
    it. Without a time (a "now" listing) the flag decides, as before."""
    data = yaml.safe_load(REGISTRY_YAML)
    data["accounts"][3].update(active=active, closed_at="2026-11-01T00:00:00+08:00")
    reg = Registry.from_dict(data)
    acc = reg.get("weibo", "9100000013")
    assert acc is not None and acc.active is active
    closed = reg.closed_at[acc.key_tuple]
    assert reg.active_at(acc, closed - 1)
    assert not reg.active_at(acc, closed)
    assert not reg.active_at(acc, closed + 86400)
    assert reg.active_at(acc, None) is active
    subs = ["9100000011", "9100000012"]
    assert reg.subordinates("weibo", "9100000001", at=closed - 1) == [*subs, "9100000013"]
    assert reg.subordinates("weibo", "9100000001", at=closed) == subs


def test_active_flag_alone_is_unchanged_without_closed_at() -> None:
    reg = Registry.from_dict(yaml.safe_load(REGISTRY_YAML))
    on, off = reg.get("weibo", "9100000011"), reg.get("weibo", "9100000014")
    assert on is not None and off is not None
    assert all(reg.active_at(on, t) for t in (None, 0.0, 4e9))
    assert not any(reg.active_at(off, t) for t in (None, 0.0, 4e9))
