"""错敏字 check: wrong or sensitive expressions in an account's own posts.

A configurable dictionary (``dictionaries/errata.yaml`` plus local files) of wrong forms
with the suggested form, matched with one Aho-Corasick automaton, as the keyword alert
rule does: the scan is linear in the text whatever the dictionary size, so a list of
thousands of leaders' names and outdated terms costs the same as a dozen. Each hit
reports the character position, the wrong form, the suggestion, the category and a
little context, so an editor can fix the post without searching for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import ahocorasick
import yaml

DEFAULT_DICT = Path(__file__).resolve().parent / "dictionaries" / "errata.yaml"
CATEGORIES: tuple[str, ...] = ("wrong_char", "formulation", "outdated", "sensitive", "leader")
CONTEXT = 10


class ErrataError(ValueError):
    """A dictionary entry that cannot be used, with the file and entry index."""


@dataclass(frozen=True)
class Entry:
    wrong: str
    suggest: str
    category: str
    note: str = ""
    not_before: tuple[str, ...] = ()
    not_after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    position: int  # character offset in the text, 0-based
    found: str
    suggest: str
    category: str
    note: str
    context: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entries_from(data: Mapping[str, Any], source: str) -> list[Entry]:
    out: list[Entry] = []
    for i, row in enumerate(data.get("entries") or []):
        where = f"{source}: entries[{i}]"
        if not isinstance(row, Mapping) or not row.get("wrong"):
            raise ErrataError(f"{where}: missing 'wrong'")
        cat = str(row.get("category") or "wrong_char")
        if cat not in CATEGORIES:
            raise ErrataError(f"{where}: category {cat!r} not one of {', '.join(CATEGORIES)}")
        out.append(Entry(str(row["wrong"]), str(row.get("suggest") or ""), cat,
                         str(row.get("note") or ""),
                         tuple(str(x) for x in row.get("not_before") or ()),
                         tuple(str(x) for x in row.get("not_after") or ())))
    for i, ldr in enumerate(data.get("leaders") or []):
        if not isinstance(ldr, Mapping) or not ldr.get("name"):
            raise ErrataError(f"{source}: leaders[{i}]: missing 'name'")
        right = f"{ldr['name']}{ldr.get('title') or ''}"
        out += [Entry(str(w), right, "leader", str(ldr.get("note") or "领导姓名职务"))
                for w in ldr.get("wrong") or ()]
    return out


class ErrataChecker:
    """Aho-Corasick over the dictionary's wrong forms; longest match wins at overlaps."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        by_wrong: dict[str, Entry] = {}
        for e in entries:  # later entries (local files) override earlier ones
            by_wrong[e.wrong.lower()] = e
        self.entries = by_wrong
        self._ac = ahocorasick.Automaton()
        for key, e in by_wrong.items():
            if e.suggest.lower() == key:
                continue
            self._ac.add_word(key, e)
        self._empty = len(self._ac) == 0
        if not self._empty:
            self._ac.make_automaton()
        self.scan = lru_cache(maxsize=100_000)(self._scan)

    @classmethod
    def load(cls, paths: Sequence[str | Path] = ()) -> ErrataChecker:
        """The shipped dictionary followed by ``paths`` (which override it)."""
        entries: list[Entry] = []
        for p in (DEFAULT_DICT, *paths):
            data = yaml.safe_load(Path(p).read_text(encoding="utf-8")) or {}
            entries += _entries_from(data, str(p))
        return cls(entries)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrataChecker:
        return cls(_entries_from(data, "<dict>"))

    def _scan(self, text: str) -> tuple[Hit, ...]:
        if self._empty or not text:
            return ()
        low = text.lower()
        raw: list[tuple[int, int, Entry]] = []
        for end, e in self._ac.iter(low):
            start = end - len(e.wrong) + 1
            after = low[end + 1:]
            before = low[:start]
            if any(after.startswith(x.lower()) for x in e.not_before):
                continue
            if any(before.endswith(x.lower()) for x in e.not_after):
                continue
            raw.append((start, end + 1, e))
        # Keep the longest of overlapping hits (国家卫计委 over 卫计委), leftmost first.
        raw.sort(key=lambda h: (h[0], -(h[1] - h[0])))
        hits: list[Hit] = []
        last_end = -1
        for start, end, e in raw:
            if start < last_end:
                continue
            last_end = end
            ctx = text[max(0, start - CONTEXT):end + CONTEXT]
            hits.append(Hit(start, text[start:end], e.suggest, e.category, e.note, ctx))
        return tuple(hits)
