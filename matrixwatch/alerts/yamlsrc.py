"""YAML with line numbers, for error messages that point at the file, line and field.

``yaml.safe_load`` throws the marks away, so a bad value in a 40-line rule file would
be reported without a line. Here the document is composed with the safe loader (no
arbitrary tags) and walked by hand: scalars are constructed by the same safe loader,
and every mapping value and list item records its line and its raw scalar text (the
raw text matters for ``23:00``, which YAML 1.1 reads as the base-60 integer 1380).
Duplicate keys, which PyYAML accepts silently (last wins), are errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


class SourceError(ValueError):
    """A YAML file that cannot be used: ``file:line: field: message``."""


@dataclass
class Doc:
    """A parsed YAML document plus where each value came from."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    raw: dict[Path_, str] = field(default_factory=dict)

    def line(self, path: Path_) -> int:
        """Line of ``path`` or of its closest recorded ancestor (1-based)."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def where(self, path: Path_) -> str:
        return f"{self.file}:{self.line(path)}"

    def error(self, path: Path_, message: str) -> SourceError:
        return SourceError(f"{self.where(path)}: {dotted(path) or '(document)'}: {message}")


def dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse(text: str, file: str) -> Doc:
    """Parse one YAML document. Raises SourceError with the line on any problem."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc = Doc(file=file, data=None)
        if node is None:
            return doc
        doc.lines[()] = node.start_mark.line + 1
        doc.data = _walk(loader, node, (), doc)
        return doc
    except SourceError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceError(f"{file}:{line}: (document): invalid YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise SourceError(f"{file}:1: (document): invalid YAML: {e}") from None
    finally:
        loader.dispose()


def load(path: Path) -> Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{path}:1: (document): cannot read: {e}") from None
    return parse(text, str(path))


_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: Doc) -> Any:
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
        # Scalars go through the safe constructor, which refuses unknown tags itself.
        raise SourceError(f"{doc.file}:{node.start_mark.line + 1}: {dotted(path)}: "
                          f"invalid YAML: unsupported tag {node.tag}")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise SourceError(f"{doc.file}:{knode.start_mark.line + 1}: {dotted(path)}: "
                                  f"keys must be plain scalars")
            if key in out:
                raise SourceError(f"{doc.file}:{knode.start_mark.line + 1}: "
                                  f"{dotted((*path, str(key)))}: duplicate key")
            sub = (*path, str(key))
            doc.lines[sub] = knode.start_mark.line + 1
            out[key] = _walk(loader, vnode, sub, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            sub = (*path, i)
            doc.lines[sub] = item.start_mark.line + 1
            items.append(_walk(loader, item, sub, doc))
        return items
    if isinstance(node, yaml.ScalarNode):
        doc.raw[path] = node.value
    return loader.construct_object(node, deep=True)
