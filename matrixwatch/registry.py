"""The account registry (matrix.yaml): who is whose superior, and who is active.

Loaded once per process and treated as immutable; the stream looks accounts up by
(platform, id). Validation errors name the row and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from matrixwatch.streams.records import LEVELS, Account, parse_iso


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` on libyaml's parser where PyYAML has it (CSafeLoader: the same
    safe constructor, C scanner and parser). Every worker and most commands load the
    registry at start: a 10k-account one took 6.1 s with the Python parser, 2.2 s here,
    and after a crash alerting is dark until it is loaded."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class RegistryError(ValueError):
    """A matrix.yaml that cannot be used, with the row and field at fault."""


def _extras(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``vertical`` (text) and ``verified_at`` (an ISO date or time; YAML may give a date)."""
    out: dict[str, Any] = {}
    if row.get("vertical") not in (None, ""):
        out["vertical"] = str(row["vertical"])
    value = row.get("verified_at")
    if value not in (None, ""):
        if not isinstance(value, date):  # datetime is a date too
            try:
                datetime.fromisoformat(str(value))
            except ValueError as e:
                raise RegistryError(f"{where}: verified_at: {e}") from e
        out["verified_at"] = value
    return out


@dataclass(frozen=True)
class Unit:
    name: str
    parent_unit: str | None = None


@dataclass
class Registry:
    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)
    units: list[Unit] = field(default_factory=list)
    closed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Optional row fields the Account record does not carry, by (platform, id):
    #: ``vertical`` (垂直领域, the index's peer group) and ``verified_at`` (认证日期).
    extras: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _children: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "matrix.yaml") -> Registry:
        if not isinstance(data, Mapping) or not isinstance(data.get("accounts"), list):
            raise RegistryError(f"{source}: expected a mapping with an 'accounts' list")
        reg = cls()
        for i, row in enumerate(data["accounts"]):
            where = f"{source}: accounts[{i}]"
            if not isinstance(row, Mapping):
                raise RegistryError(f"{where}: expected a mapping")
            for req in ("id", "platform", "name"):
                if row.get(req) in (None, ""):
                    raise RegistryError(f"{where}: missing field '{req}'")
            level = row.get("level")
            if level is not None and level not in LEVELS:
                raise RegistryError(f"{where}: level {level!r} not one of {', '.join(LEVELS)}")
            acc = Account(
                id=str(row["id"]),
                platform=str(row["platform"]),
                name=str(row["name"]),
                unit=None if row.get("unit") is None else str(row["unit"]),
                level=level,
                parent=None if row.get("parent") in (None, "") else str(row["parent"]),
                active=bool(row.get("active", True)),
                synthetic=bool(row.get("synthetic", False)),
            )
            if acc.key_tuple in reg.accounts:
                raise RegistryError(f"{where}: duplicate id {acc.id} on {acc.platform}")
            reg.accounts[acc.key_tuple] = acc
            extra = _extras(row, where)
            if extra:
                reg.extras[acc.key_tuple] = extra
            if row.get("closed_at"):
                try:
                    reg.closed_at[acc.key_tuple] = parse_iso(str(row["closed_at"])).timestamp()
                except ValueError as e:
                    raise RegistryError(f"{where}: closed_at: {e}") from e
        for i, row in enumerate(data.get("units") or []):
            if not isinstance(row, Mapping) or not row.get("name"):
                raise RegistryError(f"{source}: units[{i}]: missing field 'name'")
            reg.units.append(Unit(str(row["name"]), row.get("parent_unit")))
        reg._validate(source)
        reg._index()
        return reg

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        p = Path(path)
        try:
            data = _safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise RegistryError(f"{p}: cannot read: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise RegistryError(f"{p}: invalid YAML: {e}") from e
        return cls.from_dict(data, source=str(p))

    def _validate(self, source: str) -> None:
        for (platform, aid), acc in self.accounts.items():
            if acc.parent is not None and (platform, acc.parent) not in self.accounts:
                raise RegistryError(f"{source}: account {aid}: unknown parent {acc.parent}")
        for key in self.accounts:
            seen = {key}
            cur = self.accounts[key]
            while cur.parent is not None:
                nxt = (cur.platform, cur.parent)
                if nxt in seen:
                    raise RegistryError(f"{source}: account {key[1]}: parent cycle")
                seen.add(nxt)
                cur = self.accounts[nxt]

    def _index(self) -> None:
        self._children = {}
        for acc in self.accounts.values():
            if acc.parent is not None:
                self._children.setdefault((acc.platform, acc.parent), []).append(acc.id)
        for v in self._children.values():
            v.sort()

    # --- queries --------------------------------------------------------------------
    def get(self, platform: str, account_id: str | None) -> Account | None:
        if account_id is None:
            return None
        return self.accounts.get((platform, account_id))

    def active_at(self, acc: Account, ts: float | None = None) -> bool:
        """Active when ``ts`` happened: closed accounts count until their closed_at."""
        if acc.active:
            return True
        closed = self.closed_at.get(acc.key_tuple)
        return closed is not None and ts is not None and ts < closed

    def subordinates(
        self, platform: str, account_id: str, *, at: float | None = None, depth: int = 1
    ) -> list[str]:
        """Active subordinates (direct when depth=1), sorted, as of event time ``at``."""
        out: list[str] = []
        frontier = [account_id]
        for _ in range(depth):
            nxt: list[str] = []
            for parent in frontier:
                for cid in self._children.get((platform, parent), ()):
                    nxt.append(cid)
                    if self.active_at(self.accounts[(platform, cid)], at):
                        out.append(cid)
            frontier = nxt
        return sorted(out)

    def has_subordinates(self, platform: str, account_id: str | None) -> bool:
        return account_id is not None and (platform, account_id) in self._children

    def __len__(self) -> int:
        return len(self.accounts)

    def all(self) -> Iterable[Account]:
        return self.accounts.values()

