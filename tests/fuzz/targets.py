"""Fuzz targets and input generators for the normalizer and the alert-rule loader.

Both gates take text from outside: the normalizer takes whatever Weibo, a partner or
an archive sends; the rule loader takes files an operator edits by hand. Each target
accepts or rejects one input and checks the contract of a reject:

* normalizer: only :class:`InvalidInput`, with a non-empty reason of at most 300
  characters; an accepted input is an :class:`Event` that serializes and has an id,
  a kind and an ISO time with offset, and that the rule engine and the linkage tracker
  then process without raising ("downstream");
* rule loader: only :class:`RuleError`, whose message is ``file:line: field: message``;
  an accepted rule can be given to the rule engine, which handles an event and a sweep.

Every reject reason is counted (:data:`STATS`) so a run can report their distribution.
Anchors and aliases are left out of the YAML generators: random text rarely builds a
cycle or a bomb, so those are tested directly in ``tests/test_security.py``. Event times
are bounded against ``COLLECTED`` as the wall clock, so a run does not depend on the date.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from matrixwatch.alerts.engine import RuleEngine
from matrixwatch.alerts.rules import (
    DEFAULT_RULES_DIR,
    PARAM_SPECS,
    RULE_TYPES,
    TOP_KEYS,
    Rule,
    RuleError,
    load_rules,
    rule_from_text,
)
from matrixwatch.registry import Registry
from matrixwatch.streams.linkage import LinkagePolicy, LinkageTracker
from matrixwatch.streams.normalize import InvalidInput, normalize, normalize_line
from matrixwatch.streams.records import KINDS, LEVELS, Event, parse_iso
from tests.factories import REGISTRY_YAML

ROOT = Path(__file__).resolve().parents[1]
COLLECTED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REGISTRY = Registry.from_dict(yaml.safe_load(REGISTRY_YAML))
_RULE_ERROR = re.compile(r"^fuzz\.yaml:\d+: .*?: .+", re.S)  # file:line: field: message


@dataclass
class Stats:
    """Counts per gate: inputs, accepted, and reject reasons grouped by their prefix."""

    inputs: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, Counter[str]] = field(default_factory=dict)

    def reject(self, gate: str, reason: str) -> None:
        self.reasons.setdefault(gate, Counter())[reason_class(reason)] += 1

    def as_dict(self) -> dict[str, Any]:
        return {g: {"inputs": self.inputs[g], "accepted": self.accepted[g],
                    "rejected": sum(self.reasons.get(g, Counter()).values()),
                    "reasons": dict(self.reasons.get(g, Counter()).most_common())}
                for g in sorted(self.inputs)}


STATS = Stats()


def reason_class(reason: str) -> str:
    """A reject reason without its details: "missing field: user.id" → "missing field".

    Rule errors ("f.yaml:3: params.bucket: must be longer than 0") are grouped by the
    field's last part and the message's first words.
    """
    m = re.match(r"^[^:]+\.ya?ml:\d+: ([^:]+): (.*)$", reason, re.S)
    if m and m.group(2).startswith("unknown key"):
        return "unknown key"
    if m:
        fld = re.sub(r"\[\d+\]", "[]", m.group(1)).split(".")[-1]
        words = " ".join(re.sub(r"['\"].*", "", m.group(2)).split()[:3])
        return f"{fld}: {words}"[:60]
    head = reason.split(":", 1)[0]
    return re.sub(r"\d+", "N", head)[:60]


# --------------------------------------------------------------------------- normalizer


def _check_event(e: Event) -> None:
    assert isinstance(e, Event)
    assert e.id and e.kind in KINDS and e.platform
    assert parse_iso(e.created_at).tzinfo is not None
    e.dumps()


ENGINE = RuleEngine(load_rules(), REGISTRY)
TRACKER = LinkageTracker(REGISTRY, LinkagePolicy())
DAY = 86400.0


def _downstream(e: Event) -> None:
    """What the worker does next with an accepted event: the packaged rules (per event,
    a 30-day sweep), linkage routing, checkpoints and closing. None of it may raise
    (dates such as 9999-12-31 or year 1 at +14:00 used to pass the normalizer and
    break datetime arithmetic here; the normalizer bounds event times now).
    """
    STATS.inputs["downstream"] += 1
    e = e.derive(sentiment=0.1, sentiment_label="negative")
    state, _ = ENGINE.on_event(None, e)
    ENGINE.sweep(f"{e.platform}:{e.owner_id}", state, e.ts + 30 * DAY)
    for key in TRACKER.route(e):
        box, _ = TRACKER.apply_changed(None, e, key)
        if box is None:
            continue
        for task in box["tasks"].values():
            ENGINE.on_linkage_progress(task, e.ts + 2 * DAY)
        for res in TRACKER.close_due(box, e.ts + 2 * DAY):
            ENGINE.on_linkage_closed(res)
    STATS.accepted["downstream"] += 1


def check_line(line: bytes, gate: str = "normalizer") -> bool:
    """One raw line through ``normalize_line``; True if accepted."""
    STATS.inputs[gate] += 1
    try:
        e = normalize_line(line, collected_at=COLLECTED, max_line_bytes=64 * 1024,
                           max_text_bytes=4096, wall_clock=COLLECTED)
    except InvalidInput as exc:
        assert exc.reason and len(exc.reason) <= 300, exc.reason
        STATS.reject(gate, exc.reason)
        return False
    _check_event(e)
    _downstream(e)
    STATS.accepted[gate] += 1
    return True


def check_object(obj: Any, gate: str = "normalizer") -> bool:
    """One decoded object through ``normalize``; True if accepted."""
    STATS.inputs[gate] += 1
    try:
        e = normalize(obj, collected_at=COLLECTED, max_text_bytes=4096, wall_clock=COLLECTED)
    except InvalidInput as exc:
        assert exc.reason and len(exc.reason) <= 300, exc.reason
        STATS.reject(gate, exc.reason)
        return False
    _check_event(e)
    _downstream(e)
    STATS.accepted[gate] += 1
    return True


def fixtures() -> list[Any]:
    """Real-shaped native objects: the normalizer's and the collectors' fixtures."""
    out: list[Any] = []
    for p in sorted((ROOT / "fixtures" / "weibo").glob("*.json")):
        out.append(json.loads(p.read_text(encoding="utf-8")))
    for name, key in (("openapi_user_timeline.json", "statuses"),
                      ("openapi_comments_show.json", "comments"),
                      ("openapi_repost_timeline.json", "reposts")):
        doc = json.loads((ROOT / "fixtures" / "collectors" / name).read_text(encoding="utf-8"))
        out += doc.get(key, [])[:3]
    out.append({"platform": "wechat", "id": "2650000001_1", "kind": "post",
                "account_id": "MzAwMDAwMDAwMQ==", "owner_id": "MzAwMDAwMDAwMQ==",
                "text": "今冬明春供暖保障", "created_at": "2026-11-21T11:00:00+08:00",
                "url": "https://mp.weixin.qq.com/s?__biz=x&mid=2650000001&idx=1"})
    return out


FIXTURES = fixtures()
FIXTURE_LINES = [json.dumps(o, ensure_ascii=False).encode() for o in FIXTURES]

_KEYS = ["id", "idstr", "mid", "user", "created_at", "text", "raw_text", "text_raw",
         "retweeted_status", "pid", "pidstr", "status", "reply_comment", "reply_id", "mblog",
         "card_type", "deleted", "longTextContent", "longText", "reposts_count", "bid",
         "mblogid", "screen_name", "followers_count", "like_count", "like_counts", "rootid",
         "floor_number", "platform", "kind", "account_id", "owner_id", "root_id", "post_id",
         "collected_at", "url", "statuses", "comments", "data", "cards"]
_ATOMS = ["刚刚", "3分钟前", "昨天 11:59", "今天 08:00", "11-20", "2025-11-20",
          "Sat Nov 21 10:00:00 +0800 2026", "Sat Nov 31 10:00:00 +0800 2026",
          "2026-11-21T11:00:00+08:00", "2026-11-21T11:00:00", "5000000000000001", "0", "-1",
          "1e309", "9" * 40, "1.2万", "10万+", "<img alt=[哈哈]>", "<a href='/status/1'>全文</a>",
          "//@甲市发布:转发", "\ud800", "\u200b", "\x00", "<script>x</script>", "&#0;",
          "post", "repost", "comment", "weibo", "WEIBO", "",
          "9100000001", "9100000011", "9100000112",  # registered: the rules' paths
          "0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00+00:00",
          "Fri Dec 31 10:00:00 +0800 9999", "Mon Jan 01 00:00:00 +0000 0001"]
_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
            | st.floats() | st.text(max_size=40) | st.sampled_from(_ATOMS))
weiboish = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), inner, max_size=8),
    max_leaves=30,
)


def _paths(o: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(o, dict):
        for k, v in o.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += _paths(v, (*prefix, i))
    return out


_REGISTERED = sorted({a.id for a in REGISTRY.accounts.values()})
_DATES = ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+00:00",
          "9999-12-31T23:00:00+00:00", "1970-01-01T00:00:00+00:00", "2026-02-29T00:00:00+08:00",
          "Fri Dec 31 10:00:00 +0800 9999", "Mon Jan 01 00:00:00 +0000 0001",
          "Mon Jan 01 09:00:00 +0800 0001", "Thu Jan 01 08:00:00 +0800 1970", "刚刚", "1秒前",
          "99999小时前", "昨天 25:61", "12-31", "2026-13-01"]


@st.composite
def mutated_objects(draw: st.DrawFn) -> Any:
    """A fixture with 1-4 values replaced, deleted or wrapped: near-valid objects reach
    the deep branches (reposts of deleted roots, comment replies, long texts)."""
    obj = json.loads(json.dumps(draw(st.sampled_from(FIXTURES))))
    holder = obj.get("mblog", obj) if isinstance(obj.get("mblog"), dict) else obj
    if draw(st.integers(0, 2)) == 0:  # registered authors reach the rules and linkage
        for o in (holder, holder.get("retweeted_status"), holder.get("status")):
            if isinstance(o, dict) and isinstance(o.get("user"), dict):
                uid = draw(st.sampled_from(_REGISTERED))
                o["user"] = {**o["user"], "id": int(uid), "idstr": uid}
    if draw(st.integers(0, 4)) == 0:  # dates at the edges of what datetime can hold
        holder["created_at"] = draw(st.sampled_from(_DATES))
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(obj)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        target = obj
        for p in path[:-1]:
            target = target[p]
        how = draw(st.integers(0, 3))
        if how == 0 and isinstance(target, dict):
            del target[path[-1]]
        elif how == 1:
            target[path[-1]] = [target[path[-1]]]
        else:
            target[path[-1]] = draw(weiboish)
    return obj


_SPLICE = [b"\xff", b"\xc3", b"\x00", b"\\", b'"', b"{", b"}", b"[", b"]", b",", b":",
           b"\\ud800", b"\\u0000", b"1e999", b"-", b"NaN", b"null", b"\xef\xbb\xbf",
           b"[" * 2000, b'"' + b"a" * 5000 + b'"', "长".encode() * 2000]


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A serialized fixture with byte-level damage: truncation, splices, flips."""
    line = bytearray(draw(st.sampled_from(FIXTURE_LINES)))
    for _ in range(draw(st.integers(1, 4))):
        if not line:
            break
        i = draw(st.integers(0, len(line) - 1))
        how = draw(st.integers(0, 3))
        if how == 0:
            del line[i:]
        elif how == 1:
            line[i:i] = draw(st.sampled_from(_SPLICE) | st.binary(max_size=8))
        elif how == 2:
            line[i] = draw(st.integers(0, 255))
        else:
            j = draw(st.integers(i, min(len(line), i + 64)))
            del line[i:j]
    return bytes(line)


lines = (mutated_lines() | st.binary(max_size=200)
         | weiboish.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8",
                                                                             "surrogatepass")))
objects = mutated_objects() | weiboish


# --------------------------------------------------------------------------- rule loader


def check_rule(text: str, gate: str = "rule_loader") -> bool:
    """One rule file's text through the loader; True if accepted (and usable).

    Anything but RuleError fails the run: exceptions from inside PyYAML (a control
    character, ``!!int x``) and an accepted spike rule whose bucket / half-life ratio
    underflows the detector (``bucket: 6e-271``) were such bugs, fixed and now pinned
    in tests/test_security.py and test_fuzz.py.
    """
    STATS.inputs[gate] += 1
    try:
        rule = rule_from_text(text, "fuzz", file="fuzz.yaml")
    except RuleError as exc:
        msg = str(exc)
        assert _RULE_ERROR.match(msg), f"reject without file:line: field: {msg!r}"
        STATS.reject(gate, msg)
        return False
    _exercise(rule)
    STATS.accepted[gate] += 1
    return True


_EVENTS = [
    Event(platform="weibo", id=str(7000 + i), kind=k, account_id="8800000001",
          owner_id="9100000112", text=t, created_at=f"2026-11-02T{9 + i:02d}:00:00+08:00",
          collected_at="2026-11-02T12:00:00+08:00", post_id="p1" if k == "comment" else None,
          root_id="p1" if k == "repost" else None, sentiment=s, sentiment_label=lbl)
    for i, (k, t, s, lbl) in enumerate([("comment", "请问停水什么时候恢复？", 0.1, "negative"),
                                         ("post", "今日天气晴", 0.7, "positive"),
                                         ("repost", "转发微博", 0.5, "neutral")])
]


def _exercise(rule: Rule) -> None:
    """An accepted rule must not crash the engine on ordinary events and a sweep."""
    engine = RuleEngine([rule], REGISTRY)
    state: Any = None
    for e in _EVENTS:
        state, _ = engine.on_event(state, e)
        state, _ = engine.on_author_activity(state, e)
    engine.sweep("weibo:9100000112", state, _EVENTS[-1].ts + 40 * 86400)


def packaged_rules() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(DEFAULT_RULES_DIR.glob("*.yaml"))]


PACKAGED = packaged_rules()

_durations = st.sampled_from(["5m", "1h30m", "90s", "14d", "2w", "0s", "0", "-1h", "1x",
                              "", "1.5h", "500ms", "1h 30m", "h", "1e400s"]) \
    | st.integers(-5, 10**6) | st.floats()
_severities = st.sampled_from(["蓝", "黄", "橙", "红", "红色", "blue", "Yellow", " orange ",
                               "red", "auto", "purple", ""])
_words = st.text(min_size=0, max_size=6) | st.sampled_from(["停水", "爆炸", "a", " ", "*", "(?"])
_str_lists = st.lists(_words | st.integers(), max_size=4) | _words | st.none()
_numbers = st.integers(-3, 50) | st.floats(-1, 100) | st.sampled_from([0, 1, 0.5, 1e309])
_junk = _scalars | st.lists(_scalars, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                     _scalars, max_size=3)


def _param_value(key: str) -> st.SearchStrategy[Any]:
    if key in ("bucket", "lateness", "warmup", "mean_half_life", "var_half_life",
               "refractory", "post_ttl", "share_half_life", "after", "remind_every"):
        return _durations
    if key == "thresholds":
        return st.lists(_numbers, min_size=0, max_size=5)
    if key == "checkpoints":
        return st.lists(st.floats(-0.5, 1.5) | st.sampled_from([0.25, 0.5, 0.5]), max_size=4)
    if key == "lists":
        return st.lists(st.fixed_dictionaries(
            {"name": _words, "words": _str_lists},
            optional={"severity": _severities, "extra": _scalars}), max_size=3)
    if key in ("fields", "markers", "statuses"):
        return st.lists(st.sampled_from(["text", "root_text", "failing", "auth_expired",
                                         "请问", "bogus"]), max_size=3) | _words
    if key == "per":
        return st.sampled_from(["account", "post", "unit", 1])
    if key in ("escalate", "case_sensitive", "question_marks"):
        return st.booleans() | st.sampled_from(["yes", 1, None])
    return _numbers


_clock = st.sampled_from(["23:00", "07:00", "24:00", "00:00", "7:5", "25:00", "12:60", "x"])


def _top_value(key: str, rtype: str) -> st.SearchStrategy[Any]:
    if key == "name":
        return st.sampled_from(["ok_name", "bad name", "x" * 81, "名字", "", "a.b-c_1"])
    if key in ("description",):
        return st.text(max_size=20)
    if key == "enabled":
        return st.booleans()
    if key == "severity":
        return _severities
    if key in ("realert", "escalate_after", "escalate_reset"):
        return _durations | st.just(False)
    if key == "filter":
        return st.fixed_dictionaries({}, optional={
            "accounts": _str_lists, "units": _str_lists,
            "levels": st.lists(st.sampled_from([*LEVELS, "village"]), max_size=3),
            "kinds": st.lists(st.sampled_from([*KINDS, "like"]), max_size=3),
            "sentiment": st.lists(st.sampled_from(["negative", "neutral", "positive", "x"]),
                                  max_size=2),
            "platforms": _str_lists, "registered_only": st.booleans() | _scalars,
            "bogus": _scalars})
    if key == "quiet_hours":
        qh = st.fixed_dictionaries({}, optional={
            "start": _clock, "end": _clock, "min_severity": _severities,
            "days": st.lists(st.sampled_from(["mon", "sun", "xyz"]), max_size=3)})
        return qh | st.lists(qh, max_size=2) | st.none() | st.just(False)
    if key == "routing":
        route = st.fixed_dictionaries({"channels": _str_lists}, optional={
            "levels": st.lists(st.sampled_from([*LEVELS, "x"]), max_size=2),
            "min_severity": _severities, "severities": st.lists(_severities, max_size=2),
            "lists": _str_lists, "stop": st.booleans() | _scalars, "units": _str_lists})
        return st.lists(route, max_size=3) | st.none()
    if key == "params":
        keys = [*PARAM_SPECS.get(rtype, {}), "bogus_key"]
        return st.dictionaries(st.sampled_from(keys), st.none(), max_size=6).flatmap(
            lambda d: st.fixed_dictionaries({k: _param_value(k) for k in d}))
    return _junk


@st.composite
def rule_docs(draw: st.DrawFn) -> str:
    """A rule file built from the schema: valid keys with values valid or nearly so."""
    junk = st.integers(0, 9).map(lambda n: n == 0)  # one value in ten is junk
    rtype = draw(_scalars) if draw(junk) else draw(st.sampled_from(RULE_TYPES))
    doc: dict[str, Any] = {"type": rtype}
    keys = draw(st.sets(st.sampled_from([k for k in TOP_KEYS if k != "type"]), max_size=8))
    for k in sorted(keys):
        doc[k] = draw(_junk) if draw(junk) else draw(
            _top_value(k, rtype if isinstance(rtype, str) else ""))
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(min_size=1, max_size=8))] = draw(_scalars)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


_TOKENS = [":", ": ", "- ", "  ", "\t", "{", "}", "[", "]", "'", '"', ",", "#", "|", ">", "? ",
           "!!str ", "!!int ", "!!binary ", "!!python/object/apply:os.system ['true'] ",
           "!!python/name:os.system ", "!custom ", "%YAML 1.1\n", "---\n", "...\n", "\ufeff",
           "\x00", "\x85", "\u2028", "&anchor ", "<<: ", "null", "~", "yes", "0o17", "0x1F",
           ".inf", "-.nan", "2001-12-14", "12:30:45", "1_000", "\n", "\r\n", "红"]


@st.composite
def mutated_rule_texts(draw: st.DrawFn) -> str:
    """A shipped or generated rule file with text damage: tokens spliced in, lines
    deleted, duplicated or re-indented."""
    text = draw(st.sampled_from(PACKAGED) | rule_docs())
    for _ in range(draw(st.integers(1, 4))):
        lines_ = text.split("\n")
        i = draw(st.integers(0, max(len(lines_) - 1, 0)))
        how = draw(st.integers(0, 4))
        if how == 0 and lines_:
            del lines_[i]
        elif how == 1 and lines_:
            lines_.insert(i, lines_[i])
        elif how == 2 and lines_:
            lines_[i] = " " * draw(st.integers(0, 6)) + lines_[i].lstrip()
        else:
            line = lines_[i] if lines_ else ""
            j = draw(st.integers(0, len(line)))
            tok = draw(st.sampled_from(_TOKENS) | st.text(max_size=4))
            lines_[i] = line[:j] + tok + line[j:]
        text = "\n".join(lines_)
    return text


rule_texts = rule_docs() | mutated_rule_texts() | st.text(max_size=80)
