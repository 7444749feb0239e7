"""Already-normalized events as input (RSS, WeChat via an RSS bridge, partner pushes).

Sources that are not Weibo have no native object shape the pipeline knows, so they
enter as normalized events (DESIGN.md, "Normalized event"). :func:`event_from_dict`
is the gate: it accepts exactly the :class:`~matrixwatch.streams.records.Event` fields,
checks types, ids, kinds and timestamps (ISO-8601 *with* offset), and raises
:class:`~matrixwatch.streams.normalize.InvalidInput` with a short reason otherwise.
``normalize.py`` calls it for any object that already has the normalized fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from matrixwatch.streams.normalize import InvalidInput
from matrixwatch.streams.records import KINDS, Event, parse_iso

__all__ = ["event_from_dict", "is_normalized"]

_REQUIRED_STR = ("platform", "id", "kind", "account_id", "owner_id", "created_at")
_OPTIONAL_STR = (
    "root_id", "parent_id", "post_id", "account_name", "root_account_id", "root_created_at",
    "root_text", "url", "reply_to_id", "owner_name", "owner_unit", "owner_level",
    "owner_parent", "sentiment_label",
)
_OPTIONAL_INT = ("reposts_count", "comments_count", "attitudes_count", "followers_count")
_PLATFORM = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_ID = 256


def is_normalized(obj: object) -> bool:
    """A normalized event, as opposed to a native Weibo object (which never has these)."""
    return isinstance(obj, Mapping) and "account_id" in obj and "kind" in obj \
        and "owner_id" in obj and "platform" in obj


def _str(o: Mapping[str, Any], k: str, *, required: bool, limit: int) -> str | None:
    v = o.get(k)
    if v is None or (v == "" and not required):
        if required:
            raise InvalidInput(f"missing field: {k}")
        return None
    if type(v) is int and k.endswith("id") and v >= 0:
        v = str(v)
    if type(v) is not str:
        raise InvalidInput(f"wrong type: {k}")
    if required and not v.strip():
        raise InvalidInput(f"missing field: {k}")
    if len(v) > limit:
        raise InvalidInput(f"field too long: {k}")
    return v


def _time(v: str, k: str) -> str:
    try:
        parse_iso(v)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"bad time: {k}: {e}") from None
    return v


def event_from_dict(
    obj: object, *, collected_at: datetime | None = None, max_text_bytes: int = 65536
) -> Event:
    """A normalized-event dict → :class:`Event`, or :class:`InvalidInput`."""
    if not isinstance(obj, Mapping):
        raise InvalidInput("not an object")
    o = obj
    f: dict[str, Any] = {}
    for k in _REQUIRED_STR:
        f[k] = _str(o, k, required=True, limit=_MAX_ID)
    if not _PLATFORM.match(f["platform"]):
        raise InvalidInput("bad platform")
    if f["kind"] not in KINDS:
        raise InvalidInput(f"bad kind: {f['kind'][:20]}")
    f["created_at"] = _time(f["created_at"], "created_at")
    text = o.get("text", "")
    if text is None:
        text = ""
    if type(text) is not str:
        raise InvalidInput("wrong type: text")
    if len(text) * 4 > max_text_bytes and len(text.encode("utf-8", "surrogatepass")) > \
            max_text_bytes:
        raise InvalidInput(f"text too large: > {max_text_bytes} bytes")
    f["text"] = text
    for k in _OPTIONAL_STR:
        v = _str(o, k, required=False, limit=max_text_bytes if k == "root_text" else 2048)
        if v is not None:
            f[k] = v
    if "root_created_at" in f:
        _time(f["root_created_at"], "root_created_at")
    for k in _OPTIONAL_INT:
        v = o.get(k)
        if v is None:
            continue
        if type(v) is not int or v < 0:
            raise InvalidInput(f"wrong type: {k}")
        f[k] = v
    chain = o.get("chain")
    if chain is not None:
        if not isinstance(chain, list) or not all(type(c) is str for c in chain):
            raise InvalidInput("wrong type: chain")
        f["chain"] = list(chain)[:64]
    collected = o.get("collected_at")
    if collected is not None and collected != "":
        if type(collected) is not str:
            raise InvalidInput("wrong type: collected_at")
        f["collected_at"] = _time(collected, "collected_at")
    elif collected_at is not None:
        f["collected_at"] = collected_at.isoformat()
    else:
        f["collected_at"] = f["created_at"]
    if f["kind"] == "comment" and not f.get("post_id"):
        raise InvalidInput("missing field: post_id")
    if f["kind"] == "repost" and not f.get("root_id"):
        raise InvalidInput("missing field: root_id")
    return Event(**f)
