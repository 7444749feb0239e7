"""`matrixwatch registry import|validate`: load a matrix registry from CSV or YAML.

Matrix managers keep their account lists in spreadsheets. ``import`` reads a CSV
(columns ``id,platform,name,unit,level,parent,active``; UTF-8 with or without BOM) or
a YAML, validates it with :meth:`matrixwatch.registry.Registry.from_dict` (unknown
parent, parent cycles, duplicate ids, bad levels) and writes a matrix.yaml.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from matrixwatch.registry import Registry, RegistryError

app = typer.Typer(help="Import and validate matrix registries.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True)

CSV_COLUMNS = ("id", "platform", "name", "unit", "level", "parent", "active")
_TRUE = {"true", "1", "yes", "y", "t", "是", "有效", "active", ""}
_FALSE = {"false", "0", "no", "n", "f", "否", "停用", "关闭", "inactive", "closed"}
FIELDS = ("id", "platform", "name", "unit", "level", "parent", "active")


def _bool(v: str, where: str) -> bool:
    s = v.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise RegistryError(f"{where}: active must be true/false, not {v!r}")


def read_csv(path: Path) -> dict[str, Any]:
    """CSV rows → the matrix.yaml mapping (empty cells are null; active defaults true)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("id", "platform", "name") if c not in cols]
        if missing:
            raise RegistryError(f"{path}: missing column(s) {', '.join(missing)}; "
                                f"expected {','.join(CSV_COLUMNS)}")
        accounts = []
        for n, raw in enumerate(reader, 2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()
                   if isinstance(v, str)}
            if not any(row.values()):
                continue
            where = f"{path}:{n}"
            accounts.append({
                "id": row.get("id") or None,
                "platform": row.get("platform") or None,
                "name": row.get("name") or None,
                "unit": row.get("unit") or None,
                "level": row.get("level") or None,
                "parent": row.get("parent") or None,
                "active": _bool(row.get("active", ""), where),
            })
    return {"accounts": accounts}


def read_any(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as e:
        raise RegistryError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping with an 'accounts' list")
    return data


def to_yaml(reg: Registry) -> str:
    """A matrix.yaml: ids as strings, Chinese kept readable, registry order kept."""
    doc: dict[str, Any] = {"accounts": [
        {"id": a.id, "platform": a.platform, "name": a.name, "unit": a.unit,
         "level": a.level, "parent": a.parent, "active": a.active}
        for a in reg.all()
    ]}
    if reg.units:
        doc["units"] = [{"name": u.name, "parent_unit": u.parent_unit} for u in reg.units]
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=200)


def load(path: Path) -> Registry:
    if not path.is_file():
        raise RegistryError(f"no such file: {path}")
    return Registry.from_dict(read_any(path), source=str(path))


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="Registry as CSV (id,platform,name,unit,level,"
                                "parent,active) or YAML."),
    out: Path = typer.Option(Path("matrix.yaml"), "--out", help="Where to write matrix.yaml."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Validate a registry and write it as matrix.yaml."""
    try:
        reg = load(file)
    except RegistryError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    if out.exists() and not force and out.resolve() != file.resolve():
        err.print(f"[red]error:[/red] {out} exists (use --force to overwrite)")
        raise typer.Exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_yaml(reg), encoding="utf-8")
    active = sum(1 for a in reg.all() if a.active)
    roots = sum(1 for a in reg.all() if a.parent is None)
    err.print(f"{len(reg)} accounts ({active} active, {roots} top-level) → {out}")


@app.command()
def validate(file: Path = typer.Argument(..., help="CSV or YAML registry.")) -> None:
    """Check a registry without writing anything (exit 2 on the first problem)."""
    try:
        reg = load(file)
    except RegistryError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    err.print(f"{file}: {len(reg)} accounts, valid")
