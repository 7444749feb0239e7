"""The Kibana NDJSON, checked without a Kibana: structure, fields, and what each user needs.

`validate` is the real check (every data view, panel, column, sort and KQL field against
the index templates); the tests here prove it passes on the committed objects and that
it does catch each kind of mistake, so a green run means something.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from matrixwatch.dashboards import build, kibana

OBJECTS = kibana.load_objects()


def by_id(objects: list[dict[str, Any]] = OBJECTS) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in objects}


def lens_columns(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (layer,) = o["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
    return dict(layer["columns"])


def dv_of(o: dict[str, Any]) -> str:
    return str(o["references"][0]["id"])


def test_committed_ndjson_is_the_builder_output() -> None:
    """build.py is the source; `matrixwatch dashboards build` regenerates the files."""
    for name, objects in build.files().items():
        assert (kibana.KIBANA_DIR / name).read_text(encoding="utf-8") == build.dumps(objects), (
            f"{name} is stale: run `matrixwatch dashboards build`")


def test_every_object_is_valid_against_the_templates() -> None:
    assert kibana.validate(OBJECTS) == []
    types = sorted({o["type"] for o in OBJECTS})
    assert types == ["dashboard", "index-pattern", "lens", "search", "visualization"]
    assert len({(o["type"], o["id"]) for o in OBJECTS}) == len(OBJECTS) == 47


def test_every_reference_resolves_and_every_object_is_used() -> None:
    ids = {(o["type"], o["id"]) for o in OBJECTS}
    used = {(r["type"], r["id"]) for o in OBJECTS for r in o["references"]}
    assert used <= ids
    dashboards = [o for o in OBJECTS if o["type"] == "dashboard"]
    on_a_dashboard = {(r["type"], r["id"]) for d in dashboards for r in d["references"]}
    orphans = {k for k in ids if k[0] not in ("dashboard", "index-pattern")} - on_a_dashboard
    assert orphans == set()


def test_data_views_cover_every_index_with_its_time_field() -> None:
    views = {o["attributes"]["title"]: o["attributes"]["timeFieldName"]
             for o in OBJECTS if o["type"] == "index-pattern"}
    assert views == {"matrixwatch-events": "created_at", "matrixwatch-alerts": "timestamp",
                     "matrixwatch-linkage": "created_at",
                     "matrixwatch-linkage-items": "created_at",
                     "matrixwatch-measures": "period_end",
                     "matrixwatch-dead-letters": "received_at",
                     "matrixwatch-index-scores": "period_end",
                     "matrixwatch-compliance": "checked_at"}
    events = by_id()["mw-dv-events"]["attributes"]
    assert json.loads(events["fieldFormatMap"])["url"]["id"] == "url"  # feed links


def test_duty_officer_dashboard_has_what_duty_officers_need() -> None:
    objs = by_id()
    dash = objs["mw-dash-duty-officer"]
    panel_ids = {r["id"] for r in dash["references"]}
    assert dash["attributes"]["refreshInterval"] == {"pause": False, "value": 30000}
    feed = objs["mw-search-negative-feed"]["attributes"]
    src = json.loads(feed["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert feed["sort"] == [["created_at", "desc"]] and "url" in feed["columns"]
    assert src["query"]["query"] == 'sentiment_label : "negative"'
    spikes = objs["mw-lens-spikes-by-severity"]
    assert dv_of(spikes) == "mw-dv-alerts"
    assert {c["sourceField"] for c in lens_columns(spikes).values()} >= {"timestamp", "severity"}
    share = lens_columns(objs["mw-lens-negative-share-by-level"])
    assert {(c["operationType"], c["sourceField"]) for c in share.values()} >= {
        ("average", "is_negative"), ("terms", "owner_level"), ("date_histogram", "created_at")}
    top = objs["mw-lens-top-negative-comments"]["attributes"]["state"]["query"]["query"]
    assert 'kind : "comment"' in top and "negative" in top
    region = lens_columns(objs["mw-lens-region-table"])
    assert region["r"]["sourceField"] == "owner_region"
    assert {"mw-search-negative-feed", "mw-lens-spikes-by-severity",
            "mw-lens-negative-share-by-level", "mw-lens-top-negative-comments",
            "mw-lens-region-table", "mw-search-alerts"} <= panel_ids


def test_matrix_manager_dashboard_has_what_managers_need() -> None:
    objs = by_id()
    panel_ids = {r["id"] for r in objs["mw-dash-matrix-manager"]["references"]}
    per_sup, per_sub = objs["mw-lens-rate-per-superior"], objs["mw-lens-rate-per-subordinate"]
    assert (dv_of(per_sup), lens_columns(per_sup)["y"]["sourceField"]) == (
        "mw-dv-linkage", "rate")
    assert (dv_of(per_sub), lens_columns(per_sub)["y"]["sourceField"]) == (
        "mw-dv-linkage-items", "linked_n")
    lat = lens_columns(objs["mw-lens-latency-distribution"])["x"]
    assert (lat["operationType"], lat["sourceField"]) == ("range", "latency_seconds")
    assert lat["params"]["ranges"][0] == {"from": 0, "to": 600, "label": "10分钟内"}
    lag = objs["mw-lens-laggards"]["attributes"]["state"]["visualization"]
    assert lag["sorting"] == {"columnId": "r", "direction": "asc"}
    stale = objs["mw-lens-stale-accounts"]["attributes"]["state"]
    assert stale["visualization"]["sorting"] == {"columnId": "t", "direction": "asc"}
    index = {c["sourceField"] for c in lens_columns(objs["mw-lens-cluster-index"]).values()}
    assert {"coverage", "interactions_up", "interactions_down"} <= index  # 覆盖度 上级互动 下级联动
    assert {"mw-lens-rate-per-superior", "mw-lens-rate-per-subordinate",
            "mw-lens-latency-distribution", "mw-lens-laggards", "mw-lens-stale-accounts",
            "mw-search-stale-alerts", "mw-lens-cluster-index"} <= panel_ids


def test_matrix_manager_dashboard_has_the_index_ranking_and_compliance_findings() -> None:
    """Issue 10: the 排行榜 per level/vertical, sub-score bars, counts per check, vetoes."""
    from matrixwatch.reports.compliance import CHECKS
    from matrixwatch.reports.config import INDICES

    objs = by_id()
    panel_ids = {r["id"] for r in objs["mw-dash-matrix-manager"]["references"]}
    new = {"mw-md-index", "mw-lens-index-accounts", "mw-lens-index-composite",
           "mw-lens-compliance-veto-count", "mw-lens-compliance-errata",
           "mw-lens-index-ranking", "mw-lens-composite-by-level", "mw-lens-index-by-level",
           "mw-lens-index-profile", "mw-lens-compliance-by-check",
           "mw-lens-compliance-status-by-level", "mw-lens-compliance-veto-list",
           "mw-lens-compliance-problems"}
    assert new <= panel_ids
    index_fields = {f"{k}_index" for k, _ in INDICES}
    assert set(build.INDEX_LABELS) == {k for k, _ in INDICES}
    assert tuple(build.CHECK_LABELS) == CHECKS

    # 排行榜: one row per period → peer group (level/vertical) → account, by rank
    rank = objs["mw-lens-index-ranking"]
    assert dv_of(rank) == "mw-dv-index-scores"
    cols = lens_columns(rank)
    state = rank["attributes"]["state"]
    shown = [c["columnId"] for c in state["visualization"]["columns"]]
    assert [cols[c]["sourceField"] for c in shown[:3]] == ["period", "peer_group", "name"]
    assert cols["a"]["params"]["orderBy"] == {"type": "column", "columnId": "r"}
    assert cols["a"]["params"]["orderDirection"] == "asc"
    assert (cols["r"]["operationType"], cols["r"]["sourceField"]) == ("min", "rank")
    assert {c["sourceField"] for c in cols.values()} >= index_fields | {"composite", "veto"}

    # sub-score bars: the six indices per level and per account (composite's top 20)
    for lens_id in ("mw-lens-index-by-level", "mw-lens-index-profile"):
        vis = objs[lens_id]["attributes"]["state"]["visualization"]
        cols = lens_columns(objs[lens_id])
        (layer,) = vis["layers"]
        assert {cols[a]["sourceField"] for a in layer["accessors"]} >= index_fields
        assert vis["preferredSeriesType"] == "bar"
    by_level = lens_columns(objs["mw-lens-composite-by-level"])
    assert {c["sourceField"] for c in by_level.values()} == {"level", "vertical", "composite"}

    # findings: a count of failing/vetoed accounts per check, and the veto list
    checks = objs["mw-lens-compliance-by-check"]
    assert dv_of(checks) == "mw-dv-compliance"
    filters = sorted(c["filter"]["query"] for c in lens_columns(checks).values()
                     if "filter" in c)
    assert filters == sorted(f'{c}_status : ("fail" or "veto")' for c in CHECKS)
    veto = objs["mw-lens-compliance-veto-list"]["attributes"]["state"]
    assert veto["query"]["query"] == 'status : "veto"'
    vcols = lens_columns(objs["mw-lens-compliance-veto-list"])
    assert {c["sourceField"] for c in vcols.values()} >= {
        "name", "unit", "last_post_at", "days_since_last_post"}


def test_other_prefix_rewrites_data_views_and_still_validates() -> None:
    objs = kibana.with_prefix(OBJECTS, "gov")
    titles = {o["attributes"]["title"] for o in objs if o["type"] == "index-pattern"}
    assert "gov-events" in titles and not any(t.startswith("matrixwatch") for t in titles)
    assert kibana.validate(objs, "gov") == []
    assert kibana.validate(objs) != []  # and they no longer match the default indices


def _mutated(change: Any) -> list[str]:
    objs = copy.deepcopy(OBJECTS)
    change(by_id(objs))
    return kibana.validate(objs)


def _set_col(objs: dict[str, Any], lens_id: str, col: str, **kv: Any) -> None:
    layers = objs[lens_id]["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    layers["l1"]["columns"][col].update(kv)


def _dash_panels(objs: dict[str, Any], dash: str, fn: Any) -> None:
    a = objs[dash]["attributes"]
    panels = json.loads(a["panelsJSON"])
    fn(panels)
    a["panelsJSON"] = json.dumps(panels)


MISTAKES = {
    "unknown field": (lambda o: _set_col(o, "mw-lens-region-table", "r", sourceField="region"),
                      "field 'region' not in the index template"),
    "terms on text": (lambda o: _set_col(o, "mw-lens-region-table", "r", sourceField="text"),
                      "terms cannot use 'text'"),
    "average of a keyword": (lambda o: _set_col(o, "mw-lens-negative-share", "m",
                                                sourceField="owner_level"),
                             "average cannot use 'owner_level'"),
    "terms on url (no doc values)": (
        lambda o: _set_col(o, "mw-lens-region-table", "r", sourceField="url"),
        "terms cannot use 'url'"),
    "unknown field in KQL": (
        lambda o: o["mw-lens-spikes-by-severity"]["attributes"]["state"]["query"].update(
            query='kind_of_alert : "spike"'), "field 'kind_of_alert'"),
    "unknown sort column": (
        lambda o: o["mw-search-negative-feed"]["attributes"].update(sort=[["posted", "desc"]]),
        "field 'posted'"),
    "data view on no index": (
        lambda o: o["mw-dv-alerts"]["attributes"].update(title="matrixwatch-alert"),
        "no index or alias"),
    "wrong time field": (
        lambda o: o["mw-dv-linkage"]["attributes"].update(timeFieldName="deadline"),
        "time field 'deadline'"),
    "missing data view": (
        lambda o: o["mw-lens-laggards"]["references"][0].update(id="mw-dv-gone"),
        "missing data view 'mw-dv-gone'"),
    "panel to a missing object": (
        lambda o: o["mw-dash-duty-officer"]["references"][1].update(id="mw-lens-gone"),
        "refers to missing lens 'mw-lens-gone'"),
    "overlapping panels": (
        lambda o: _dash_panels(o, "mw-dash-matrix-manager",
                               lambda ps: ps[2]["gridData"].update(x=6)),
        "overlaps panel"),
    "accessor without a column": (
        lambda o: o["mw-lens-laggards"]["attributes"]["state"]["visualization"].update(
            sorting={"columnId": "zz", "direction": "asc"}), "missing column 'zz'"),
    "duplicate id": (lambda o: o["mw-lens-laggards"].update(id="mw-lens-stale-accounts"),
                     "duplicate object"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_validator_catches(name: str) -> None:
    change, expected = MISTAKES[name]
    problems = _mutated(change)
    assert any(expected in p for p in problems), problems
