"""File replay: JSONL of native objects, dataabc/weibo-crawler CSV/JSON, the simulator.

Users arrive with archives made by other tools. The most common one for Weibo is
dataabc/weibo-crawler, which writes one ``<user_id>.csv`` per account (in a folder
named after the screen name) and optionally ``<user_id>.json``. Its rows are turned
into native-like status objects so the rest of the pipeline needs no special case.

weibo-crawler CSV columns (``get_result_headers`` in its weibo.py; older versions lack
``bid``/``头条文章url``/``工具``)::

    id, bid, 正文, 头条文章url, 原始图片url, 视频url, 位置, 日期, 工具,
    点赞数, 评论数, 转发数, 话题, @用户
    [+ 是否原创, 源用户id, 源用户昵称, 源微博id, 源微博bid, 源微博正文, … 源微博@用户
       when it crawled reposts too (filter = 0)]

Mapping to a status (aliases accepted, first match wins):

=================  ==========================================================
status field       columns
=================  ==========================================================
id / idstr / mid   id, 微博id
bid                bid, 微博bid
user.id            user_id, 用户id — else ``--user-id``, else the file name
                   (``<digits>.csv``)
user.screen_name   screen_name, 用户昵称 — else the parent folder's name
text + raw_text    正文, 微博正文, 微博内容, text (plain text: kept verbatim)
created_at         完整日期, 发布时间, 日期, created_at ("YYYY-MM-DD[ HH:MM[:SS]]",
                   read as Asia/Shanghai; a bare date is taken at 00:00)
source             工具, 发布工具, source
attitudes_count    点赞数, attitudes_count
comments_count     评论数, comments_count
reposts_count      转发数, reposts_count
region_name        位置, location (as "发布于 …")
retweeted_status   是否原创 false/False/0/否 → built from 源用户id, 源用户昵称 and the
                   源微博* columns (same aliases with the 源微博 prefix), or from a
                   原始微博 / retweet column holding a JSON object; a root without a
                   user id becomes a deleted root
=================  ==========================================================

The JSON output (``{"user": {...}, "weibo": [{user_id, screen_name, id, bid, text,
created_at, source, attitudes_count, comments_count, reposts_count, retweet: {…}}]}``)
uses the English keys of the same table. A plain JSON array of native objects is
also accepted.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from matrixwatch.collectors.base import Item
from matrixwatch.streams.weibo_time import CST, SHANGHAI

ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "微博id"),
    "bid": ("bid", "微博bid"),
    "user_id": ("user_id", "用户id"),
    "screen_name": ("screen_name", "用户昵称"),
    "text": ("正文", "微博正文", "微博内容", "text"),
    "created_at": ("完整日期", "发布时间", "日期", "created_at"),
    "source": ("工具", "发布工具", "source"),
    "attitudes_count": ("点赞数", "attitudes_count"),
    "comments_count": ("评论数", "comments_count"),
    "reposts_count": ("转发数", "reposts_count"),
    "location": ("位置", "location"),
}
_ROOT_PREFIX = "源微博"
_FALSE = {"false", "0", "否", "no", "f"}
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S",
                 "%Y/%m/%d %H:%M", "%Y/%m/%d")
_WD = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ReplayError(ValueError):
    """A file that cannot be converted, with the row at fault."""


def rfc_time(value: str) -> str:
    """weibo-crawler dates → Weibo's own "Sat Nov 21 10:00:00 +0800 2026" form."""
    s = value.strip()
    if s[:3] in _WD and s[3:4] == " ":  # already Weibo's RFC form
        return s
    for fmt in _DATE_FORMATS:
        try:
            dt = datetime.strptime(s, fmt).replace(tzinfo=SHANGHAI).astimezone(CST)
        except ValueError:
            continue
        return (f"{_WD[dt.weekday()]} {_MON[dt.month - 1]} {dt.day:02d} "
                f"{dt:%H:%M:%S} +0800 {dt.year}")
    raise ReplayError(f"unrecognised date {value!r}")


def _pick(row: Mapping[str, Any], field: str, prefix: str = "") -> Any:
    for name in ALIASES[field]:
        v = row.get(prefix + name)
        if v not in (None, ""):
            return v
    return None


def _count(v: Any) -> Any:
    if isinstance(v, str):
        v = v.strip()
        return int(v) if v.isdigit() else (v or None)
    return v


def _is_repost(row: Mapping[str, Any]) -> bool:
    flag = row.get("是否原创", row.get("is_original"))
    if flag is None or flag == "":
        return False
    return str(flag).strip().lower() in _FALSE


def _embedded_root(row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for key in ("原始微博", "retweet"):
        v = row.get(key)
        if isinstance(v, Mapping):
            return v
        if isinstance(v, str) and v.strip().startswith("{"):
            try:
                return json.loads(v)
            except json.JSONDecodeError:
                try:
                    parsed = ast.literal_eval(v)  # Python dict repr written by pandas
                except (ValueError, SyntaxError):
                    return None
                return parsed if isinstance(parsed, Mapping) else None
    return None


def _status(row: Mapping[str, Any], prefix: str, user_id: Any, screen_name: Any,
            where: str) -> dict[str, Any]:
    sid = _pick(row, "id", prefix)
    if sid is None:
        raise ReplayError(f"{where}: missing column {prefix}id")
    sid = str(sid).strip()
    if not sid.isdigit():
        raise ReplayError(f"{where}: {prefix}id is not numeric: {sid[:30]!r}")
    out: dict[str, Any] = {"id": sid, "idstr": sid, "mid": sid}
    bid = _pick(row, "bid", prefix)
    if bid:
        out["bid"] = str(bid)
    text = _pick(row, "text", prefix)
    text = "" if text is None else str(text)
    out["text"] = text
    out["raw_text"] = text
    created = _pick(row, "created_at", prefix)
    if created is None:
        raise ReplayError(f"{where}: missing column {prefix}日期")
    try:
        out["created_at"] = rfc_time(str(created))
    except ReplayError as e:
        raise ReplayError(f"{where}: {e}") from None
    src = _pick(row, "source", prefix)
    if src:
        out["source"] = str(src)
    for f in ("attitudes_count", "comments_count", "reposts_count"):
        v = _pick(row, f, prefix)
        if v is not None:
            out[f] = _count(v)
    loc = _pick(row, "location", prefix)
    if loc:
        out["region_name"] = f"发布于 {loc}"
    if user_id not in (None, ""):
        user: dict[str, Any] = {"id": str(user_id).strip()}
        if screen_name:
            user["screen_name"] = str(screen_name)
        out["user"] = user
    return out


def crawler_row_to_status(row: Mapping[str, Any], *, user_id: str | None = None,
                          screen_name: str | None = None, where: str = "row") -> dict[str, Any]:
    """One weibo-crawler CSV row or JSON ``weibo`` item → a native-like status object."""
    uid = _pick(row, "user_id") or user_id
    if uid in (None, ""):
        raise ReplayError(f"{where}: no user id (no user_id column; pass --user-id or name "
                          "the file <user_id>.csv)")
    name = _pick(row, "screen_name") or screen_name
    st = _status(row, "", uid, name, where)
    embedded = _embedded_root(row)
    if embedded is not None:
        root = _status(embedded, "", _pick(embedded, "user_id"), _pick(embedded, "screen_name"),
                       where + ": retweet")
        st["retweeted_status"] = root if "user" in root else {**root, "deleted": "1"}
    elif _is_repost(row):
        root_uid = row.get("源用户id") or row.get("retweet_user_id")
        root_name = row.get("源用户昵称") or row.get("retweet_screen_name")
        root = _status(row, _ROOT_PREFIX, root_uid, root_name, where + ": 源微博")
        st["retweeted_status"] = root if "user" in root else {**root, "deleted": "1"}
    return st


def _file_user(path: Path) -> tuple[str | None, str | None]:
    """weibo-crawler layout: weibo/<screen_name>/<user_id>.csv."""
    uid = path.stem if path.stem.isdigit() else None
    name = path.parent.name if uid and path.parent.name not in ("", ".", "weibo") else None
    return uid, name


def iter_crawler_csv(path: Path, user_id: str | None = None) -> Iterator[dict[str, Any]]:
    fuid, fname = _file_user(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not any(
                a in reader.fieldnames for a in ALIASES["id"]):
            raise ReplayError(f"{path}: no 'id' column; not a weibo-crawler CSV")
        for n, row in enumerate(reader, 2):
            yield crawler_row_to_status(row, user_id=user_id or fuid, screen_name=fname,
                                        where=f"{path}:{n}")


def iter_json(path: Path, user_id: str | None = None) -> Iterator[dict[str, Any]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    if isinstance(doc, list):  # an array of native objects
        for o in doc:
            if isinstance(o, dict):
                yield o
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("weibo"), list):
        raise ReplayError(f"{path}: expected weibo-crawler JSON ({{user, weibo: [...]}}) "
                          "or an array of native objects")
    user = doc.get("user") if isinstance(doc.get("user"), dict) else {}
    fuid, _ = _file_user(Path(path))
    uid = user_id or (str(user["id"]) if user.get("id") is not None else fuid)
    for n, w in enumerate(doc["weibo"]):
        if not isinstance(w, dict):
            raise ReplayError(f"{path}: weibo[{n}] is not an object")
        yield crawler_row_to_status(w, user_id=uid, screen_name=user.get("screen_name"),
                                    where=f"{path}: weibo[{n}]")


_JSONL = re.compile(r"\.(jsonl|ndjson)$", re.IGNORECASE)


def file_items(path: Path, *, as_of: str | None = None, user_id: str | None = None,
               replay: bool = True) -> Iterator[Item]:
    """Items of one archive, by extension: .jsonl/.ndjson lines pass through unparsed
    (bad lines reach the dead-letter topic), .csv and .json are converted."""
    p = Path(path)
    if _JSONL.search(p.name):
        with open(p, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield Item.raw(line, as_of=as_of, replay=replay)
        return
    suffix = p.suffix.lower()
    if suffix == ".csv":
        objs: Iterator[dict[str, Any]] = iter_crawler_csv(p, user_id)
    elif suffix == ".json":
        objs = iter_json(p, user_id)
    else:
        raise ReplayError(f"{p}: unknown file type (expected .jsonl, .ndjson, .csv or .json)")
    for o in objs:
        yield Item.of(o, as_of=as_of, replay=replay, kind="status")


def simulator_items(events: int, seed: int = 7) -> Iterator[Item]:
    """The simulated matrix's feed as live items (for demos and load tests)."""
    from matrixwatch.collectors.simulator import Simulator, build_matrix

    sim = Simulator(build_matrix(seed=seed), seed=seed)
    for obj in sim.events(events):
        yield Item.of(obj, kind="simulated")
