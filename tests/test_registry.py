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
