"""YAML with line numbers, for error messages that point at the file, line and field.

``yaml.safe_load`` throws the marks away, so a bad value in a 40-line rule file would
be reported without a line. Here the document is composed with the safe loader (no
arbitrary tags) and walked by hand: scalars are constructed by the same safe loader,
and every mapping value and list item records its line and its raw scalar text (the
raw text matters for ``23:00``, which YAML 1.1 reads as the base-60 integer 1380).
Duplicate keys, which PyYAML accepts silently (last wins), are errors here.

Hostile or broken files fail as :class:`SourceError`, never as a PyYAML or Python
exception: a control character, a tagged scalar that does not convert (``!!int abc``),
a recursive alias (``&f {a: *f}``) and an alias bomb (nested anchors whose expansion
exceeds :data:`MAX_NODES` values, checked on the composed graph before it is walked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_NODES = 20_000
"""Values a document may expand to, aliases counted at every use. Hand-written rule and
channel files hold a few hundred; the cap makes a billion-laughs file fail in ms."""


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
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader checks characters here already
        node = loader.get_single_node()
        doc = Doc(file=file, data=None)
        if node is None:
            return doc
        _check_size(node, file)
        doc.lines[()] = node.start_mark.line + 1
        doc.data = _walk(loader, node, (), doc)
        return doc
    except SourceError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceError(f"{file}:{line}: (document): invalid YAML: {e.problem or e}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, max(e.position, 0)) + 1
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise SourceError(f"{file}:{line}: (document): invalid YAML: {e.reason} ({char})"
                          ) from None
    except yaml.YAMLError as e:
        raise SourceError(f"{file}:1: (document): invalid YAML: {e}") from None
    except RecursionError:
        raise SourceError(f"{file}:1: (document): invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_size(root: yaml.Node, file: str) -> None:
    """SourceError on a recursive alias or an expansion beyond MAX_NODES.

    PyYAML composes an alias as a second reference to the anchored node, so the document
    is a graph; walking it as a tree costs its expanded size (exponential in the number
    of nested anchors) or never ends (a cycle). Sizes are memoized per node, so this
    check itself is linear in the file.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, path: Path_) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise SourceError(f"{file}:{node.start_mark.line + 1}: {dotted(path) or '(document)'}"
                              f": invalid YAML: recursive alias (a value contains itself)")
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            for knode, vnode in node.value:
                key = knode.value if isinstance(knode, yaml.ScalarNode) else "?"
                total += size(knode, path) + size(vnode, (*path, key))
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += size(item, (*path, i))
                if total > MAX_NODES:
                    break
        if total > MAX_NODES:
            raise SourceError(f"{file}:{node.start_mark.line + 1}: "
                              f"{dotted(path) or '(document)'}: invalid YAML: more than "
                              f"{MAX_NODES} values once aliases are expanded")
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, ())


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
            key = _construct(loader, knode, path, doc)
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
    return _construct(loader, node, path, doc)


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: Doc) -> Any:
    """The safe constructor's value for a scalar, or SourceError at its line.

    A tagged scalar that does not convert (``!!int abc``, ``!!timestamp 2001-13-45``,
    an empty ``!!int``) raises plain ValueError/KeyError/IndexError/... inside PyYAML,
    not a YAMLError (those, such as an unknown tag, carry their own mark and are
    reported by :func:`parse`).
    """
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
        raise SourceError(f"{doc.file}:{node.start_mark.line + 1}: "
                          f"{dotted(path) or '(document)'}: invalid YAML: not a valid "
                          f"!!{node.tag.rsplit(':', 1)[-1]}: {str(node.value)[:60]!r}"
                          ) from None
