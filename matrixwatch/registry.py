"""The account registry (matrix.yaml): who is whose superior, and who is active.

Loaded once per process and treated as immutable; the stream looks accounts up by
(platform, id). Validation errors name the row and the field.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from matrixwatch.streams.records import LEVELS, Account, parse_iso

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """The safe loader, but a scalar its constructor cannot build (``!!int abc``, an
    unquoted ``2024-02-30``) is a YAML error with its line: PyYAML raises a bare
    ValueError there, which no caller of the registry expects."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as e:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_show(node.value)}: {e}", node.start_mark) from e


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` on libyaml's parser where PyYAML has it (CSafeLoader: the same
    safe constructor, C scanner and parser). Every worker and most commands load the
    registry at start: a 10k-account one took 6.1 s with the Python parser, 2.2 s here,
    and after a crash alerting is dark until it is loaded."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class RegistryError(ValueError):
    """A matrix.yaml that cannot be used, with the row and field at fault."""


def _show(value: Any) -> str:
    """A short repr: a bad value may be a whole pasted column."""
    return reprlib.repr(value)


def parse_yaml(text: str, source: str) -> Any:
    """Registry YAML text → data; every way it can fail is a RegistryError naming ``source``
    (the Python parser, without CSafeLoader, can also run out of stack on deep nesting)."""
    try:
        return _safe_load(text)
    except yaml.YAMLError as e:
        raise RegistryError(f"{source}: invalid YAML: {e}") from e
    except RecursionError as e:
        raise RegistryError(f"{source}: invalid YAML: nested too deeply") from e


#: The words a spreadsheet uses for active/synthetic (lower case); YAML booleans and an
#: empty or missing value (the field's default) are accepted besides.
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t", "是", "有效", "active"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f", "否", "停用", "关闭", "inactive", "closed"})


def parse_flag(value: Any, default: bool, where: str, name: str) -> bool:
    """One rule for YAML and CSV: ``bool("false")`` is True, so a quoted "false" must be
    read as a word, and anything unknown is an error rather than a guess. The integers 0
    and 1 read like the cells "0" and "1"."""
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        s = value.strip().lower()
        if not s:
            return default
        if s in TRUE_WORDS:
            return True
        if s in FALSE_WORDS:
            return False
    raise RegistryError(f"{where}: {name} must be true/false, not {_show(value)}")


def _ident(value: Any, where: str, name: str) -> str:
    """Ids are strings; an unquoted numeric id is an int. ``str()`` of anything else
    (a list, 1.0e3 → "1000.0", True) would be an id no platform ever sends."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RegistryError(f"{where}: {name} must be a string or an integer, "
                            f"not {_show(value)}")
    return str(value)


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise RegistryError(f"{where}: {name} must be a string, not {_show(value)}")
    return value


def _extras(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``vertical`` (text) and ``verified_at`` (an ISO date or time; YAML may give a date)."""
    out: dict[str, Any] = {}
    if row.get("vertical") not in (None, ""):
        out["vertical"] = _text(row["vertical"], where, "vertical")
    value = row.get("verified_at")
    if value not in (None, ""):
        if not isinstance(value, str | date):  # datetime is a date too
            raise RegistryError(f"{where}: verified_at must be an ISO date or time, "
                                f"not {_show(value)}")
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError as e:
                raise RegistryError(f"{where}: verified_at: {e}") from e
        out["verified_at"] = value
    return out


def _fields(
    row: Mapping[str, Any], aid: str, where: str
) -> tuple[Account, dict[str, Any], datetime | None]:
    """A row's fields after its id: the Account, its extras and its closed_at."""
    level = row.get("level")
    if level is not None and level not in LEVELS:
        raise RegistryError(f"{where}: level {_show(level)} not one of {', '.join(LEVELS)}")
    unit, parent = row.get("unit"), row.get("parent")
    acc = Account(
        id=aid,
        platform=_text(row["platform"], where, "platform"),
        name=_text(row["name"], where, "name"),
        unit=None if unit is None else _text(unit, where, "unit"),
        level=level,
        parent=None if parent in (None, "") else _ident(parent, where, "parent"),
        active=parse_flag(row.get("active"), True, where, "active"),
        synthetic=parse_flag(row.get("synthetic"), False, where, "synthetic"),
    )
    extra = _extras(row, where)
    closed = row.get("closed_at")
    if closed in (None, ""):
        return acc, extra, None
    if not isinstance(closed, str | date):  # unquoted, YAML gives a datetime
        raise RegistryError(f"{where}: closed_at must be an ISO time with offset, "
                            f"not {_show(closed)}")
    try:
        when = parse_iso(str(closed))
    except ValueError as e:
        raise RegistryError(f"{where}: closed_at: {e}") from e
    return acc, extra, when


@dataclass(frozen=True)
class Unit:
    name: str
    parent_unit: str | None = None


@dataclass
class Registry:
    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)
    units: list[Unit] = field(default_factory=list)
    closed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    #: ``closed_at`` as written (ISO, its own offset), so that an export keeps it.
    closed_at_text: dict[tuple[str, str], str] = field(default_factory=dict)
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
            reg._add(row, f"{source}: accounts[{i}]")
        units = data.get("units")
        if units is not None and not isinstance(units, list):
            raise RegistryError(f"{source}: units must be a list, not {_show(units)}")
        for i, row in enumerate(units or []):
            where = f"{source}: units[{i}]"
            if not isinstance(row, Mapping):
                raise RegistryError(f"{where}: expected a mapping")
            if row.get("name") in (None, ""):
                raise RegistryError(f"{where}: missing field 'name'")
            parent_unit = row.get("parent_unit")
            reg.units.append(Unit(_text(row["name"], where, "name"), None if parent_unit is None
                                  else _text(parent_unit, where, "parent_unit")))
        reg._validate(source)
        reg._index()
        return reg

    def _add(self, row: Any, at: str) -> None:
        """One account row, every field checked for its type: YAML hands over whatever
        was typed, and ``str()`` or ``bool()`` of the wrong thing loads without a word."""
        if not isinstance(row, Mapping):
            raise RegistryError(f"{at}: expected a mapping")
        for req in ("id", "platform", "name"):
            if row.get(req) in (None, ""):
                raise RegistryError(f"{at}: missing field '{req}'")
        aid = _ident(row["id"], at, "id")
        try:
            acc, extra, closed = _fields(row, aid, at)
        except RegistryError as e:  # the row index finds it in the file, the id in the app
            raise RegistryError(f"{e} (account {aid})") from e
        key = acc.key_tuple
        if key in self.accounts:
            raise RegistryError(f"{at}: duplicate id {acc.id} on {acc.platform}")
        self.accounts[key] = acc
        if extra:
            self.extras[key] = extra
        if closed is not None:
            self.closed_at[key] = closed.timestamp()
            self.closed_at_text[key] = closed.isoformat()

    @classmethod
    def from_text(cls, text: str, source: str = "matrix.yaml") -> Registry:
        """YAML text → Registry, every failure a RegistryError (for uploads)."""
        return cls.from_dict(parse_yaml(text, source), source=source)

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise RegistryError(f"{p}: cannot read: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise RegistryError(f"{p}: not UTF-8 (byte {e.start}): save it as UTF-8") from e
        return cls.from_text(text, source=str(p))

    def _validate(self, source: str) -> None:
        for (platform, aid), acc in self.accounts.items():
            if acc.parent is not None and (platform, acc.parent) not in self.accounts:
                raise RegistryError(f"{source}: account {aid}: unknown parent {acc.parent}")
        # One walk up from each account, stopping at any account already walked: linear,
        # where walking every chain to its root took minutes on a 20,000-deep one.
        # False: on the walk in progress; True: known to reach a root.
        reaches_root: dict[tuple[str, str], bool] = {}
        for key in self.accounts:
            path: list[tuple[str, str]] = []
            cur = key
            while cur not in reaches_root:
                reaches_root[cur] = False
                path.append(cur)
                parent = self.accounts[cur].parent
                if parent is None:
                    break
                cur = (cur[0], parent)
            else:
                if not reaches_root[cur]:
                    raise RegistryError(f"{source}: account {key[1]}: parent cycle")
            for k in path:
                reaches_root[k] = True

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
        """Active when ``ts`` happened: an account with a closed_at counts until then and
        not from then on, whatever its ``active`` says.

        closed_at is the more specific fact: a row left at ``active: true`` after its
        account was closed must not stay in every later expected set (and pull rates
        down). Without a time, or without a closed_at, ``active`` decides.
        """
        closed = self.closed_at.get(acc.key_tuple)
        if closed is None or ts is None:
            return acc.active
        return ts < closed

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

