"""`matrixwatch registry import|validate`: load a matrix registry from CSV or YAML.

Matrix managers keep their account lists in spreadsheets. ``import`` reads a CSV
(columns ``id,platform,name,unit,level,parent,active``, optionally also ``synthetic``,
``closed_at``, ``vertical``, ``verified_at``; UTF-8 with or without BOM) or a YAML,
validates it with :meth:`matrixwatch.registry.Registry.from_dict` (unknown parent, parent
cycles, duplicate ids, bad levels, wrong types) and writes a matrix.yaml with every field
the loader reads.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from matrixwatch.registry import Registry, RegistryError, parse_flag, parse_yaml

app = typer.Typer(help="Import and validate matrix registries.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True)

CSV_COLUMNS = ("id", "platform", "name", "unit", "level", "parent", "active")
#: Optional columns, passed on as text for the loader to check (it reads them from YAML).
CSV_OPTIONAL = ("synthetic", "closed_at", "vertical", "verified_at")
FIELDS = ("id", "platform", "name", "unit", "level", "parent", "active")


def _bool(v: str, where: str) -> bool:
    return parse_flag(v, True, where, "active")


def read_csv(path: Path) -> dict[str, Any]:
    """CSV rows → the matrix.yaml mapping (empty cells are null; active defaults true)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            return _read_rows(path, reader)
        except csv.Error as e:  # e.g. a cell over csv.field_size_limit(), 131072 by default
            raise RegistryError(f"{path}:{reader.reader.line_num}: unreadable CSV: {e}") from e
        except UnicodeDecodeError as e:
            raise RegistryError(_not_utf8(path, e)) from e


def _not_utf8(path: Path, e: UnicodeDecodeError) -> str:
    return f"{path}: not UTF-8 (byte {e.start}): save it as UTF-8"


def _read_rows(path: Path, reader: csv.DictReader[str]) -> dict[str, Any]:
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
            **{c: row[c] for c in CSV_OPTIONAL if row.get(c)},
        })
    return {"accounts": accounts}


def read_any(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise RegistryError(_not_utf8(path, e)) from e
    except OSError as e:
        raise RegistryError(f"{path}: cannot read: {e.strerror}") from e
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping with an 'accounts' list")
    return data


def to_yaml(reg: Registry) -> str:
    """A matrix.yaml: ids as strings, Chinese kept readable, registry order kept. The
    optional fields are written only where set, so every field the loader reads survives
    an import and a plain registry keeps the contract's seven."""
    accounts: list[dict[str, Any]] = []
    for a in reg.all():
        row: dict[str, Any] = {"id": a.id, "platform": a.platform, "name": a.name,
                               "unit": a.unit, "level": a.level, "parent": a.parent,
                               "active": a.active}
        if a.synthetic:
            row["synthetic"] = True
        if a.key_tuple in reg.closed_at_text:
            row["closed_at"] = reg.closed_at_text[a.key_tuple]
        row.update(reg.extras.get(a.key_tuple, {}))
        accounts.append(row)
    doc: dict[str, Any] = {"accounts": accounts}
    if reg.units:
        doc["units"] = [{"name": u.name, "parent_unit": u.parent_unit} for u in reg.units]
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=200)


def closed_but_active(reg: Registry, now: float | None = None) -> list[str]:
    """One warning per account left at ``active: true`` with a closed_at already past:
    the registry treats it as closed from then on (closed_at decides), which its
    ``active`` flag hides from whoever reads the file."""
    at = time.time() if now is None else now
    out = []
    for i, a in enumerate(reg.all()):  # registry order is file order: i is the row
        closed = reg.closed_at.get(a.key_tuple)
        if a.active and closed is not None and closed <= at:
            out.append(f"accounts[{i}] (account {a.id}): active: true but closed_at "
                       f"{reg.closed_at_text[a.key_tuple]} is past; it is treated as "
                       f"closed from then on")
    return out


def _warn(reg: Registry) -> None:
    for line in closed_but_active(reg):
        err.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True)


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
    _warn(reg)
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
    _warn(reg)
    err.print(f"{file}: {len(reg)} accounts, valid")
