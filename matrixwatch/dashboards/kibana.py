"""Load, check and import the Kibana saved objects in ``kibana/*.ndjson``.

* ``validate`` is the structural check the tests and ``matrixwatch dashboards check``
  run: ids unique, every reference resolves inside the set, every data view names an
  index or alias the templates create (with the right time field), and every field a
  panel, column, sort or KQL query uses exists in that index's mapping with a type the
  operation accepts. Kibana would import a dashboard over a missing field silently and
  show an error panel; this catches it before.
* ``import_objects`` posts the objects to ``POST /api/saved_objects/_import?overwrite=true``
  as one multipart file with the ``kbn-xsrf`` header: fixed ids + overwrite make it
  idempotent. ``set_advanced_settings`` sets ``dateFormat:tz`` (Asia/Shanghai) through
  ``POST /api/kibana/settings``: a ``config`` saved object is keyed by Kibana's version,
  so importing one would not reliably apply.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from matrixwatch.streams.sinks.elasticsearch import SPECS, alias_name, index_name, mapped_fields

KIBANA_DIR = Path(__file__).parent / "kibana"
DEFAULT_PREFIX = "matrixwatch"
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
NOT_AGGREGATABLE = {"text", "flattened", "object"}
KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")
META_FIELDS = {"_id": "keyword", "_index": "keyword", "___records___": "records"}


class KibanaError(RuntimeError):
    pass


# --- loading ----------------------------------------------------------------------------
def load_objects(directory: Path = KIBANA_DIR) -> list[dict[str, Any]]:
    """All objects of every ``*.ndjson`` in name order (data views come first)."""
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.ndjson")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise KibanaError(f"{path.name}:{n}: invalid JSON: {e}") from e
    return out


def with_prefix(objects: Iterable[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Point the data views at ``<prefix>-…`` indices instead of ``matrixwatch-…``."""
    out = []
    for obj in objects:
        obj = json.loads(json.dumps(obj))
        if obj["type"] == "index-pattern" and prefix != DEFAULT_PREFIX:
            title = obj["attributes"]["title"]
            if title.startswith(DEFAULT_PREFIX + "-"):
                obj["attributes"]["title"] = prefix + title[len(DEFAULT_PREFIX):]
        out.append(obj)
    return out


def to_ndjson(objects: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n"
                   for o in objects).encode("utf-8")


# --- validation -------------------------------------------------------------------------
def index_fields(prefix: str = DEFAULT_PREFIX) -> dict[str, tuple[str, dict[str, str]]]:
    """Index or alias name → (time field, {field: type}) as the templates define them."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for spec in SPECS.values():
        fields = {**META_FIELDS, **mapped_fields(spec.mapping)}
        # doc_values: false (url) → present but not aggregatable
        for name, fspec in spec.mapping["properties"].items():
            if fspec.get("doc_values") is False:
                fields[name] = "no_doc_values"
        out[index_name(prefix, spec.name)] = (spec.time_field, fields)
        for a in spec.aliases:
            out.setdefault(alias_name(prefix, a), (spec.time_field, fields))
    return out


def kql_fields(query: str) -> set[str]:
    """Field names a KQL query uses (``a : x and b : (y or z)`` → {a, b})."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query or "")
    return set(KQL_FIELD.findall(no_strings))


def _accepts(op: str, ftype: str) -> bool:
    if op == "count":
        return True
    if ftype == "no_doc_values" or ftype in NOT_AGGREGATABLE:
        return False
    if op == "date_histogram":
        return ftype == "date"
    if op in ("average", "sum", "median", "min", "max", "percentile", "range",
              "standard_deviation", "percentile_rank"):
        return ftype in NUMERIC
    return True  # terms, last_value, unique_count: any aggregatable field


def _refs(obj: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {r["name"]: r for r in obj.get("references", [])}


def validate(objects: list[dict[str, Any]], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Every problem found, as one line each (empty list = valid)."""
    problems: list[str] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for o in objects:
        key = (o.get("type", "?"), o.get("id", "?"))
        if key in by_key:
            problems.append(f"duplicate object {key}")
        by_key[key] = o
        for k in ("type", "id", "attributes", "references"):
            if k not in o:
                problems.append(f"{key}: missing {k}")
    indices = index_fields(prefix)
    views: dict[str, dict[str, str]] = {}
    for (t, i), o in by_key.items():
        if t != "index-pattern":
            continue
        a = o["attributes"]
        if a.get("title") not in indices:
            problems.append(f"data view {i}: title {a.get('title')!r} is no index or alias "
                            "the templates create")
            continue
        time_field, fields = indices[a["title"]]
        views[i] = fields
        if a.get("timeFieldName") != time_field:
            problems.append(f"data view {i}: time field {a.get('timeFieldName')!r}, "
                            f"templates say {time_field!r}")
        for f in json.loads(a.get("fieldFormatMap") or "{}"):
            if f not in fields:
                problems.append(f"data view {i}: format for unknown field {f!r}")

    def view_of(o: dict[str, Any], ref_name: str, where: str) -> dict[str, str] | None:
        ref = _refs(o).get(ref_name)
        if ref is None:
            problems.append(f"{where}: no reference named {ref_name!r}")
            return None
        if ref["type"] != "index-pattern" or ref["id"] not in views:
            problems.append(f"{where}: reference {ref_name!r} → missing data view {ref['id']!r}")
            return None
        return views[ref["id"]]

    def check_fields(names: Iterable[str], fields: dict[str, str], where: str) -> None:
        for f in names:
            if f not in fields:
                problems.append(f"{where}: field {f!r} not in the index template")

    for (t, i), o in by_key.items():
        where = f"{t} {i}"
        a = o["attributes"]
        if t == "lens":
            problems += _check_lens(o, where, view_of, check_fields)
        elif t == "search":
            src = json.loads(a["kibanaSavedObjectMeta"]["searchSourceJSON"])
            fields = view_of(o, src.get("indexRefName", ""), where)
            if fields is not None:
                check_fields(a.get("columns", []), fields, where)
                check_fields([s[0] for s in a.get("sort", [])], fields, where)
                check_fields(kql_fields(src.get("query", {}).get("query", "")), fields, where)
        elif t == "dashboard":
            problems += _check_dashboard(o, where, by_key)
        elif t == "visualization":
            vis = json.loads(a["visState"])
            if vis.get("aggs"):
                problems.append(f"{where}: aggregation-based visualisations are not checked; "
                                "use Lens")
        elif t != "index-pattern":
            problems.append(f"{where}: unexpected type")
    return problems


def _check_lens(o: dict[str, Any], where: str, view_of: Any, check_fields: Any) -> list[str]:
    problems: list[str] = []
    state = o["attributes"]["state"]
    layers = state["datasourceStates"]["formBased"]["layers"]
    all_cols: set[str] = set()
    for layer_id, layer in layers.items():
        lw = f"{where} layer {layer_id}"
        fields = view_of(o, f"indexpattern-datasource-layer-{layer_id}", lw)
        cols = layer["columns"]
        all_cols |= set(cols)
        if list(layer.get("columnOrder", [])) != list(cols) and set(
                layer.get("columnOrder", [])) != set(cols):
            problems.append(f"{lw}: columnOrder does not match the columns")
        for cid, col in cols.items():
            cw = f"{lw} column {cid}"
            for ref in ("orderBy",):
                ob = col.get("params", {}).get(ref, {})
                if ob.get("type") == "column" and ob.get("columnId") not in cols:
                    problems.append(f"{cw}: orders by missing column {ob.get('columnId')!r}")
            if fields is None:
                continue
            src = col.get("sourceField")
            if src is not None:
                if src not in fields:
                    problems.append(f"{cw}: field {src!r} not in the index template")
                elif not _accepts(col["operationType"], fields[src]):
                    problems.append(f"{cw}: {col['operationType']} cannot use {src!r} "
                                    f"({fields[src]})")
            sort = col.get("params", {}).get("sortField")
            if sort is not None and fields.get(sort) != "date":
                problems.append(f"{cw}: sort field {sort!r} is not a date")
            check_fields(kql_fields((col.get("filter") or {}).get("query", "")), fields, cw)
        if fields is not None:
            check_fields(kql_fields(state.get("query", {}).get("query", "")), fields, lw)
    vis = state["visualization"]
    used: list[str] = []
    for layer in vis.get("layers", [vis]):
        used += [layer[k] for k in ("xAccessor", "splitAccessor", "metricAccessor",
                                    "accessor") if layer.get(k)]
        used += list(layer.get("accessors", []))
        used += [c["columnId"] for c in layer.get("columns", [])]
    if "sorting" in vis:
        used.append(vis["sorting"]["columnId"])
    for cid in used:
        if cid not in all_cols:
            problems.append(f"{where}: visualisation uses missing column {cid!r}")
    unused = all_cols - set(used)
    if unused:
        problems.append(f"{where}: columns never shown: {sorted(unused)}")
    return problems


def _check_dashboard(o: dict[str, Any], where: str,
                     by_key: Mapping[tuple[str, str], dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    panels = json.loads(o["attributes"]["panelsJSON"])
    refs = _refs(o)
    cells: dict[tuple[int, int], str] = {}
    seen: set[str] = set()
    for p in panels:
        pid = p["panelIndex"]
        pw = f"{where} panel {pid}"
        if pid in seen:
            problems.append(f"{pw}: duplicate panelIndex")
        seen.add(pid)
        g = p["gridData"]
        if g.get("i") != pid:
            problems.append(f"{pw}: gridData.i differs from panelIndex")
        if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 48 or g["h"] < 1:
            problems.append(f"{pw}: outside the 48-column grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{pw}: overlaps panel {cells[(x, y)]}")
                    break
                cells[(x, y)] = pid
            else:
                continue
            break
        ref = refs.get(f"{pid}:{p.get('panelRefName')}")
        if ref is None:
            problems.append(f"{pw}: no reference {pid}:{p.get('panelRefName')}")
        elif (ref["type"], ref["id"]) not in by_key:
            problems.append(f"{pw}: refers to missing {ref['type']} {ref['id']!r}")
        elif ref["type"] != p["type"]:
            problems.append(f"{pw}: panel type {p['type']} but reference type {ref['type']}")
    names = {f"{p['panelIndex']}:{p.get('panelRefName')}" for p in panels}
    for extra in set(refs) - names:
        problems.append(f"{where}: reference {extra!r} used by no panel")
    return problems


# --- the Kibana API ---------------------------------------------------------------------
def _base(url: str, space: str | None) -> str:
    url = url.rstrip("/")
    return f"{url}/s/{space}" if space and space != "default" else url


def _client(auth: tuple[str, str] | None, verify: bool, timeout: float) -> httpx.Client:
    return httpx.Client(auth=auth, verify=verify, timeout=timeout,
                        headers={"kbn-xsrf": "matrixwatch"}, trust_env=False)


def wait_for_kibana(url: str, *, auth: tuple[str, str] | None = None, verify: bool = True,
                    timeout: float = 300.0, poll: float = 3.0) -> None:
    """Wait until ``/api/status`` answers 200 (Kibana up and its ES reachable)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with _client(auth, verify, 10.0) as c:
        while True:
            try:
                r = c.get(url.rstrip("/") + "/api/status")
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise KibanaError(f"Kibana at {url} not ready after {timeout:.0f}s ({last})")
            time.sleep(poll)


def import_objects(url: str, data: bytes, *, auth: tuple[str, str] | None = None,
                   space: str | None = None, verify: bool = True,
                   timeout: float = 60.0) -> dict[str, Any]:
    """POST the NDJSON as one multipart file; raise KibanaError unless every object imported."""
    try:
        with _client(auth, verify, timeout) as c:
            r = c.post(_base(url, space) + "/api/saved_objects/_import",
                       params={"overwrite": "true"},
                       files={"file": ("matrixwatch.ndjson", data, "application/ndjson")})
    except httpx.HTTPError as e:
        raise KibanaError(f"cannot reach Kibana at {url}: {e}") from e
    try:
        body = r.json()
    except ValueError:
        body = {"raw": r.text[:500]}
    if r.status_code != 200:
        raise KibanaError(f"import failed: HTTP {r.status_code}: {body}")
    if not body.get("success"):
        errors = "; ".join(f"{e.get('type')} {e.get('id')}: {e.get('error')}"
                           for e in body.get("errors", []))
        raise KibanaError(f"import reported errors: {errors or body}")
    return dict(body)


def set_advanced_settings(url: str, changes: Mapping[str, Any], *,
                          auth: tuple[str, str] | None = None, space: str | None = None,
                          verify: bool = True, timeout: float = 30.0) -> None:
    try:
        with _client(auth, verify, timeout) as c:
            r = c.post(_base(url, space) + "/api/kibana/settings",
                       json={"changes": dict(changes)})
    except httpx.HTTPError as e:
        raise KibanaError(f"cannot reach Kibana at {url}: {e}") from e
    if r.status_code != 200:
        raise KibanaError(f"settings failed: HTTP {r.status_code}: {r.text[:300]}")
