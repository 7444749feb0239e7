"""The source of the Kibana saved objects in ``kibana/*.ndjson``.

Lens state is verbose JSON that is easy to get subtly wrong by hand (a column id that
no accessor uses, a reference name that does not match its layer). The objects are
therefore built here from a few helpers and written out with ``matrixwatch dashboards
build``; a test checks that the committed NDJSON equals this output, and
``validate`` (loader) checks every field against the index templates.

Ids are fixed strings, so an import with ``overwrite=true`` replaces the same objects
every time (idempotent). Data view titles use the default index prefix
``matrixwatch``; the importer rewrites them for another prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CORE_MIGRATION = "8.8.0"
TYPE_MIGRATION = {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0",
                  "visualization": "8.5.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.11.0"
PREFIX = "matrixwatch"
LAYER = "l1"

# id → (index or alias suffix, time field, display name)
DATA_VIEWS: dict[str, tuple[str, str, str]] = {
    "mw-dv-events": ("events", "created_at", "matrixwatch 帖子与评论"),
    "mw-dv-alerts": ("alerts", "timestamp", "matrixwatch 告警"),
    "mw-dv-linkage": ("linkage", "created_at", "matrixwatch 联动任务"),
    "mw-dv-linkage-items": ("linkage-items", "created_at", "matrixwatch 联动明细（任务×下级）"),
    "mw-dv-measures": ("measures", "period_end", "matrixwatch 矩阵指标"),
    "mw-dv-dead-letters": ("dead-letters", "received_at", "matrixwatch 死信"),
    "mw-dv-index-scores": ("index-scores", "period_end", "matrixwatch 政务新媒体指数"),
    "mw-dv-compliance": ("compliance", "checked_at", "matrixwatch 合规检查"),
}
# 表1's six indices (reports/config.py INDICES) and the checks (reports/compliance.py CHECKS)
INDEX_LABELS: dict[str, str] = {
    "interaction": "互动指数", "audience": "受众指数", "propagation": "传播指数",
    "growth": "成长指数", "content": "内容指数", "cluster": "集群指数"}
CHECK_LABELS: dict[str, str] = {
    "stale": "两周无更新（否决）", "gaps": "更新间隔过长", "monthly": "月发布量不足",
    "interaction": "留言回复不及时", "errata": "错敏字", "duplicate": "同一平台多账号"}
SCORE1 = {"id": "number", "params": {"decimals": 1}}

PERCENT = {"id": "percent", "params": {"decimals": 1}}
NUMBER0 = {"id": "number", "params": {"decimals": 0}}


def _obj(type_: str, id_: str, attributes: dict[str, Any],
         references: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"type": type_, "id": id_, "attributes": attributes,
            "references": references or [], "managed": False,
            "coreMigrationVersion": CORE_MIGRATION, "typeMigrationVersion": TYPE_MIGRATION[type_]}


def data_view(id_: str) -> dict[str, Any]:
    suffix, time_field, name = DATA_VIEWS[id_]
    formats: dict[str, Any] = {}
    if id_ == "mw-dv-events":
        formats = {
            # The live feed shows a link to the original post.
            "url": {"id": "url", "params": {"type": "a", "urlTemplate": None,
                                            "labelTemplate": "原文", "openLinkInNewTab": True}},
            "sentiment": {"id": "number", "params": {"pattern": "0.00"}},
        }
    return _obj("index-pattern", id_, {
        "title": f"{PREFIX}-{suffix}", "name": name, "timeFieldName": time_field,
        "fields": "[]", "fieldAttrs": "{}", "fieldFormatMap": json.dumps(formats,
                                                                          ensure_ascii=False),
        "runtimeFieldMap": "{}", "sourceFilters": "[]", "typeMeta": "{}",
        "allowNoIndex": True,
    })


# --- lens columns -----------------------------------------------------------------------
def date_hist(field: str, label: str = "时间") -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "date",
            "operationType": "date_histogram", "sourceField": field, "isBucketed": True,
            "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True,
                                            "dropPartials": False}}


def terms(field: str, label: str, size: int, order_by: str | None,
          direction: str = "desc") -> dict[str, Any]:
    order: dict[str, Any] = ({"type": "column", "columnId": order_by} if order_by
                             else {"type": "alphabetical", "fallback": False})
    return {"label": label, "customLabel": True, "dataType": "string", "operationType": "terms",
            "sourceField": field, "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "orderBy": order, "orderDirection": direction,
                       "otherBucket": False, "missingBucket": False,
                       "parentFormat": {"id": "terms"}}}


def count(label: str = "数量", kql: str | None = None) -> dict[str, Any]:
    col: dict[str, Any] = {"label": label, "customLabel": True, "dataType": "number",
                           "operationType": "count", "isBucketed": False, "scale": "ratio",
                           "sourceField": "___records___",
                           "params": {"emptyAsNull": False, "format": NUMBER0}}
    if kql:
        col["filter"] = {"query": kql, "language": "kuery"}
    return col


def metric(op: str, field: str, label: str, fmt: dict[str, Any] | None = None,
           **params: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"emptyAsNull": True, **params}
    if fmt:
        p["format"] = fmt
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": op,
            "sourceField": field, "isBucketed": False, "scale": "ratio", "params": p}


def last_value(field: str, label: str, data_type: str, sort_field: str) -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": data_type,
            "operationType": "last_value", "sourceField": field, "isBucketed": False,
            "scale": "ratio" if data_type == "number" else "ordinal",
            "filter": {"query": f"{field}: *", "language": "kuery"},
            "params": {"sortField": sort_field, "showArrayValues": False}}


def ranges(field: str, label: str, bounds: list[tuple[float | None, float | None, str]]
           ) -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "number",
            "operationType": "range", "sourceField": field, "isBucketed": True,
            "scale": "ordinal",
            "params": {"type": "range", "maxBars": "auto", "includeEmptyRows": True,
                       "ranges": [{"from": a, "to": b, "label": lbl} for a, b, lbl in bounds],
                       "parentFormat": {"id": "range", "params": {"template": "arrow_right",
                                                                  "replaceInfinity": True}}}}


# --- lens visualisations ----------------------------------------------------------------
def lens(id_: str, title: str, dv: str, vis_type: str, columns: dict[str, dict[str, Any]],
         visualization: dict[str, Any], query: str = "", description: str = "") -> dict[str, Any]:
    state = {
        "datasourceStates": {"formBased": {"layers": {LAYER: {
            "columns": columns, "columnOrder": list(columns), "incompleteColumns": {},
            "sampling": 1}}}},
        "visualization": visualization,
        "query": {"query": query, "language": "kuery"},
        "filters": [], "internalReferences": [], "adHocDataViews": {},
    }
    return _obj("lens", id_, {"title": title, "description": description,
                              "visualizationType": vis_type, "state": state},
                [{"type": "index-pattern", "id": dv,
                  "name": f"indexpattern-datasource-layer-{LAYER}"}])


def xy(series: str, x: str, ys: list[str], split: str | None = None,
       legend: bool = True) -> dict[str, Any]:
    layer: dict[str, Any] = {"layerId": LAYER, "layerType": "data", "seriesType": series,
                             "xAccessor": x, "accessors": ys}
    if split:
        layer["splitAccessor"] = split
    return {"legend": {"isVisible": legend, "position": "right"}, "valueLabels": "hide",
            "fittingFunction": "None", "preferredSeriesType": series, "layers": [layer]}


def table(cols: Iterable[str], sort: tuple[str, str] | None = None) -> dict[str, Any]:
    vis: dict[str, Any] = {"layerId": LAYER, "layerType": "data",
                           "columns": [{"columnId": c} for c in cols]}
    if sort:
        vis["sorting"] = {"columnId": sort[0], "direction": sort[1]}
    return vis


def metric_vis(accessor: str) -> dict[str, Any]:
    return {"layerId": LAYER, "layerType": "data", "metricAccessor": accessor}


def search(id_: str, title: str, dv: str, columns: list[str], sort_field: str,
           query: str, description: str = "") -> dict[str, Any]:
    source = {"query": {"query": query, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return _obj("search", id_, {
        "title": title, "description": description, "columns": columns,
        "sort": [[sort_field, "desc"]], "grid": {}, "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source, ensure_ascii=False)},
    }, [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
         "id": dv}])


def markdown(id_: str, title: str, text: str) -> dict[str, Any]:
    vis = {"title": title, "type": "markdown", "aggs": [],
           "params": {"fontSize": 12, "openLinksInNewTab": False, "markdown": text}}
    return _obj("visualization", id_, {
        "title": title, "description": "", "uiStateJSON": "{}", "version": 1,
        "visState": json.dumps(vis, ensure_ascii=False),
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
            {"query": {"query": "", "language": "kuery"}, "filter": []})},
    })


def dashboard(id_: str, title: str, description: str,
              panels: list[tuple[dict[str, Any], int, int, int, int]], *, time_from: str,
              refresh_ms: int | None) -> dict[str, Any]:
    """``panels``: (saved object, x, y, w, h) on Kibana's 48-column grid."""
    out, refs = [], []
    for n, (obj, x, y, w, h) in enumerate(panels, start=1):
        pid = f"p{n}"
        out.append({"version": PANEL_VERSION, "type": obj["type"],
                    "gridData": {"x": x, "y": y, "w": w, "h": h, "i": pid},
                    "panelIndex": pid, "embeddableConfig": {"enhancements": {}},
                    "panelRefName": f"panel_{pid}"})
        refs.append({"name": f"{pid}:panel_{pid}", "type": obj["type"], "id": obj["id"]})
    return _obj("dashboard", id_, {
        "title": title, "description": description, "version": 1,
        "panelsJSON": json.dumps(out, ensure_ascii=False),
        "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                   "syncTooltips": False, "hidePanelTitles": False}),
        "timeRestore": True, "timeFrom": time_from, "timeTo": "now",
        "refreshInterval": {"pause": refresh_ms is None, "value": refresh_ms or 60000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
            {"query": {"query": "", "language": "kuery"}, "filter": []})},
    }, refs)


NEG = 'sentiment_label : "negative"'


def duty_officer() -> list[dict[str, Any]]:
    """值班: what is negative right now, where, and which alerts fired."""
    ev, al = "mw-dv-events", "mw-dv-alerts"
    feed = search(
        "mw-search-negative-feed", "负面动态（最新在前）", ev,
        ["owner_label", "owner_region", "kind", "account_name", "text", "sentiment", "url"],
        "created_at", NEG, "情感为负面的帖子与评论，按发布时间倒序；url 列链接原文。")
    alerts_list = search(
        "mw-search-alerts", "告警列表（最新在前）", al,
        ["severity", "type", "rule", "account_label", "title", "message"], "timestamp", "",
        "所有规则触发的告警，按事件时间倒序。")
    m_neg = lens("mw-lens-negative-count", "负面条数", ev, "lnsMetric",
                 {"m": count("负面条数", NEG)}, metric_vis("m"))
    m_share = lens("mw-lens-negative-share", "负面占比", ev, "lnsMetric",
                   {"m": metric("average", "is_negative", "负面占比", PERCENT)}, metric_vis("m"))
    m_all = lens("mw-lens-event-count", "帖子与评论", ev, "lnsMetric",
                 {"m": count("帖子与评论")}, metric_vis("m"))
    m_alerts = lens("mw-lens-alert-count", "橙色及红色告警", al, "lnsMetric",
                    {"m": count("橙色及红色告警", 'severity : ("orange" or "red")')},
                    metric_vis("m"))
    spikes = lens(
        "mw-lens-spikes-by-severity", "声量与负面突增告警（按级别）", al, "lnsXY",
        {"x": date_hist("timestamp"), "s": terms("severity", "级别", 4, "y"),
         "y": count("告警数")},
        xy("bar_stacked", "x", ["y"], "s"), 'type : ("spike" or "negative_surge")')
    share = lens(
        "mw-lens-negative-share-by-level", "负面占比随时间（按层级）", ev, "lnsXY",
        {"x": date_hist("created_at"), "s": terms("owner_level", "层级", 6, "y"),
         "y": metric("average", "is_negative", "负面占比", PERCENT)},
        xy("line", "x", ["y"], "s"))
    top = lens(
        "mw-lens-top-negative-comments", "负面评论最多的账号", ev, "lnsXY",
        {"x": terms("owner_label", "账号", 15, "y"), "y": count("负面评论数")},
        xy("bar_horizontal", "x", ["y"], legend=False), f'kind : "comment" and {NEG}')
    region = lens(
        "mw-lens-region-table", "各地区负面情况", ev, "lnsDatatable",
        {"r": terms("owner_region", "地区", 50, "n"), "c": count("总条数"),
         "n": metric("sum", "is_negative", "负面条数", NUMBER0),
         "p": metric("average", "is_negative", "负面占比", PERCENT)},
        table(["r", "c", "n", "p"], ("n", "desc")))
    note = markdown("mw-md-duty", "说明", (
        "**值班看板**：时间按 Asia/Shanghai 显示。负面 = 情感模型判为 negative。"
        "声量突增为各账号相对基线的告警；级别 蓝/黄/橙/红 = blue/yellow/orange/red。"))
    dash = dashboard(
        "mw-dash-duty-officer", "matrixwatch 值班看板",
        "负面动态、突增告警、各层级负面占比、负面评论最多的账号与各地区情况。",
        [(note, 0, 0, 48, 3), (m_neg, 0, 3, 12, 6), (m_share, 12, 3, 12, 6),
         (m_all, 24, 3, 12, 6), (m_alerts, 36, 3, 12, 6), (feed, 0, 9, 48, 16),
         (spikes, 0, 25, 24, 12), (share, 24, 25, 24, 12), (top, 0, 37, 24, 14),
         (region, 24, 37, 24, 14), (alerts_list, 0, 51, 48, 12)],
        time_from="now-24h", refresh_ms=30000)
    return [note, m_neg, m_share, m_all, m_alerts, feed, spikes, share, top, region,
            alerts_list, dash]


def matrix_manager() -> list[dict[str, Any]]:
    """矩阵管理: who reposts the superior, how fast, who lags, who is stale, 集群指数;
    then the monthly 政务新媒体指数 排行榜 and the compliance findings."""
    lk, it, me, ev, al = ("mw-dv-linkage", "mw-dv-linkage-items", "mw-dv-measures",
                          "mw-dv-events", "mw-dv-alerts")
    linked = "linked : true"
    m_rate = lens("mw-lens-linkage-rate", "平均联动率", lk, "lnsMetric",
                  {"m": metric("average", "rate", "平均联动率", PERCENT)}, metric_vis("m"))
    m_tasks = lens("mw-lens-linkage-tasks", "已关闭联动任务", lk, "lnsMetric",
                   {"m": count("联动任务")}, metric_vis("m"))
    m_latency = lens("mw-lens-linkage-median-latency", "转发时延中位数（秒）", it, "lnsMetric",
                     {"m": metric("median", "latency_seconds", "转发时延中位数（秒）", NUMBER0)},
                     metric_vis("m"), linked)
    m_cover = lens("mw-lens-coverage", "覆盖度", me, "lnsMetric",
                   {"m": metric("average", "coverage", "覆盖度", PERCENT)}, metric_vis("m"))
    per_sup = lens(
        "mw-lens-rate-per-superior", "各上级账号的联动率（低者在前）", lk, "lnsXY",
        {"x": terms("account_label", "上级账号", 20, "y", "asc"),
         "y": metric("average", "rate", "联动率", PERCENT)},
        xy("bar_horizontal", "x", ["y"], legend=False))
    per_sub = lens(
        "mw-lens-rate-per-subordinate", "各下级账号的响应率（低者在前）", it, "lnsXY",
        {"x": terms("account_label", "下级账号", 25, "y", "asc"),
         "y": metric("average", "linked_n", "响应率", PERCENT)},
        xy("bar_horizontal", "x", ["y"], legend=False))
    latency = lens(
        "mw-lens-latency-distribution", "转发时延分布", it, "lnsXY",
        {"x": ranges("latency_seconds", "时延", [
            (0, 600, "10分钟内"), (600, 1800, "10–30分钟"), (1800, 3600, "30–60分钟"),
            (3600, 7200, "1–2小时"), (7200, 21600, "2–6小时"), (21600, 43200, "6–12小时"),
            (43200, None, "12小时以上")]),
         "y": count("转发数")},
        xy("bar", "x", ["y"], legend=False), linked)
    over_time = lens(
        "mw-lens-response-over-time", "响应率随时间（按下级层级）", it, "lnsXY",
        {"x": date_hist("created_at", "上级发布时间"), "s": terms("level", "层级", 6, "y"),
         "y": metric("average", "linked_n", "响应率", PERCENT)},
        xy("line", "x", ["y"], "s"))
    laggards = lens(
        "mw-lens-laggards", "落后账号（响应率低者在前）", it, "lnsDatatable",
        {"a": terms("account_label", "下级账号", 100, "r", "asc"),
         "e": count("应转发"), "l": metric("sum", "linked_n", "已转发", NUMBER0),
         "r": metric("average", "linked_n", "响应率", PERCENT),
         "md": metric("median", "latency_seconds", "时延中位数（秒）", NUMBER0),
         "p9": metric("percentile", "latency_seconds", "时延P90（秒）", NUMBER0,
                      percentile=90)},
        table(["a", "e", "l", "r", "md", "p9"], ("r", "asc")))
    stale = lens(
        "mw-lens-stale-accounts", "停更排查：各矩阵账号最近发布（最久未更在前）", ev,
        "lnsDatatable",
        {"a": terms("author_label", "账号", 500, None),
         "lv": last_value("author_level", "层级", "string", "created_at"),
         "t": last_value("created_at", "最近发布", "date", "created_at"),
         "c": count("发布数")},
        table(["a", "lv", "t", "c"], ("t", "asc")),
        'kind : ("post" or "repost") and author_level : *',
        "时间范围内完全没有发布的账号不在此表：见右侧停更告警。")
    stale_alerts = search(
        "mw-search-stale-alerts", "停更告警（2周无更新，单项否决）", al,
        ["severity", "account_label", "title", "message"], "timestamp",
        'type : "stale_account"')
    index = lens(
        "mw-lens-cluster-index", "集群指数：覆盖度、上级互动、下级联动", me, "lnsDatatable",
        {"a": terms("account_label", "账号", 200, "dn"),
         "u": last_value("unit", "单位", "string", "period_end"),
         "lv": last_value("level", "层级", "string", "period_end"),
         "cv": last_value("coverage", "覆盖度", "number", "period_end"),
         "up": metric("sum", "interactions_up", "上级互动", NUMBER0),
         "dn": metric("sum", "interactions_down", "下级联动", NUMBER0),
         "rr": metric("average", "response_rate", "响应率", PERCENT),
         "ml": metric("average", "median_latency", "时延中位数（秒）", NUMBER0)},
        table(["a", "u", "lv", "cv", "up", "dn", "rr", "ml"], ("dn", "desc")))
    note = markdown("mw-md-manager", "指标说明", (
        "**联动率** = 截止时已转发的下级 / 应转发的下级（上级原创发布后 24 小时内）。"
        "**响应率** = 某下级已转发的任务 / 应转发的任务。"
        "**覆盖度** = 有账号的下级单位占比；**上级互动** = 转发或评论上级微博的次数；"
        "**下级联动** = 本账号微博被下级转发或评论的次数（新华网集群指数）。"
        "“监测时间点前2周内无更新”为单项否决。"))
    report_objs = index_and_compliance()
    (idx_note, m_acc, m_comp, m_veto, m_err, ranking, by_level, sub_level, profile, checks,
     status, vetoes, problems) = report_objs
    dash = dashboard(
        "mw-dash-matrix-manager", "matrixwatch 矩阵管理看板",
        "联动率（按上级、按下级）、转发时延分布、落后账号、停更账号与集群指数；"
        "政务新媒体指数排行榜、分项指数与合规检查结果。",
        [(note, 0, 0, 48, 4), (m_rate, 0, 4, 12, 6), (m_tasks, 12, 4, 12, 6),
         (m_latency, 24, 4, 12, 6), (m_cover, 36, 4, 12, 6), (per_sup, 0, 10, 24, 14),
         (per_sub, 24, 10, 24, 14), (latency, 0, 24, 24, 12), (over_time, 24, 24, 24, 12),
         (laggards, 0, 36, 48, 14), (stale, 0, 50, 24, 14), (stale_alerts, 24, 50, 24, 14),
         (index, 0, 64, 48, 14),
         (idx_note, 0, 78, 48, 4), (m_acc, 0, 82, 12, 6), (m_comp, 12, 82, 12, 6),
         (m_veto, 24, 82, 12, 6), (m_err, 36, 82, 12, 6), (ranking, 0, 88, 48, 20),
         (by_level, 0, 108, 24, 12), (sub_level, 24, 108, 24, 12), (profile, 0, 120, 48, 14),
         (checks, 0, 134, 24, 12), (status, 24, 134, 24, 12), (vetoes, 0, 146, 24, 14),
         (problems, 24, 146, 24, 14)],
        time_from="now-30d", refresh_ms=None)
    return [note, m_rate, m_tasks, m_latency, m_cover, per_sup, per_sub, latency, over_time,
            laggards, stale, stale_alerts, index, *report_objs, dash]


def index_and_compliance() -> list[dict[str, Any]]:
    """政务新媒体指数 and the compliance checks (issue 10): 排行榜, sub-scores, findings.

    One document per account and period (and check time); within a dashboard time range
    that spans one monthly report every bucket below holds one document, so average,
    min and last value all show that report's number.
    """
    sc, cp = "mw-dv-index-scores", "mw-dv-compliance"
    bad = '("fail" or "veto")'
    veto = 'status : "veto"'
    idx_cols = {f"i_{k}": metric("average", f"{k}_index", label, SCORE1)
                for k, label in INDEX_LABELS.items()}
    m_accounts = lens("mw-lens-index-accounts", "参评账号", sc, "lnsMetric",
                      {"m": metric("unique_count", "account_id", "参评账号", NUMBER0)},
                      metric_vis("m"))
    m_composite = lens("mw-lens-index-composite", "平均综合指数", sc, "lnsMetric",
                       {"m": metric("average", "composite", "平均综合指数", SCORE1)},
                       metric_vis("m"))
    m_veto = lens("mw-lens-compliance-veto-count", "单项否决账号", cp, "lnsMetric",
                  {"m": count("单项否决账号", veto)}, metric_vis("m"))
    m_errata = lens("mw-lens-compliance-errata", "错敏字（处）", cp, "lnsMetric",
                    {"m": metric("sum", "errata_hits", "错敏字（处）", NUMBER0)},
                    metric_vis("m"))
    ranking = lens(
        "mw-lens-index-ranking", "排行榜：综合指数（按层级/领域分组，名次在前）", sc,
        "lnsDatatable",
        {"p": terms("period", "期间", 3, None, "desc"),
         "g": terms("peer_group", "层级/领域", 40, None, "asc"),
         "a": terms("name", "账号", 300, "r", "asc"),
         "r": metric("min", "rank", "名次", NUMBER0),
         **idx_cols,
         "c": metric("average", "composite", "综合指数", SCORE1),
         "v": last_value("veto", "单项否决", "boolean", "period_end")},
        table(["p", "g", "a", "r", *idx_cols, "c", "v"]),
        description="名次为同层级、同领域（peer_group）内的竞争排名；两周无更新（单项否决）"
                    "的账号排在本组最后，分数照常显示。")
    by_level = lens(
        "mw-lens-composite-by-level", "平均综合指数（按层级，分领域）", sc, "lnsXY",
        {"x": terms("level", "层级", 6, None, "asc"),
         "s": terms("vertical", "领域", 12, "y"),
         "y": metric("average", "composite", "平均综合指数", SCORE1)},
        xy("bar", "x", ["y"], "s"))
    sub_level = lens(
        "mw-lens-index-by-level", "分项指数（按层级平均）", sc, "lnsXY",
        {"x": terms("level", "层级", 6, None, "asc"), **idx_cols},
        xy("bar", "x", list(idx_cols)))
    profile = lens(
        "mw-lens-index-profile", "分项指数与综合指数（综合指数前20的账号）", sc, "lnsXY",
        {"x": terms("name", "账号", 20, "c"), **idx_cols,
         "c": metric("average", "composite", "综合指数", SCORE1)},
        xy("bar", "x", [*idx_cols, "c"]))
    check_cols = {f"k_{c}": count(label, f"{c}_status : {bad}")
                  for c, label in CHECK_LABELS.items()}
    checks = lens(
        "mw-lens-compliance-by-check", "各检查项不合格账号数（按期间）", cp, "lnsXY",
        {"x": terms("period", "期间", 3, None, "desc"), **check_cols},
        xy("bar_horizontal", "x", list(check_cols)))
    status = lens(
        "mw-lens-compliance-status-by-level", "检查结论（按层级）：通过、不合格、否决", cp,
        "lnsXY",
        {"x": terms("level", "层级", 6, None, "asc"), "s": terms("status", "结论", 3, "y"),
         "y": count("账号数")},
        xy("bar_stacked", "x", ["y"], "s"))
    vetoes = lens(
        "mw-lens-compliance-veto-list", "单项否决名单（两周无更新，停更最久在前）", cp,
        "lnsDatatable",
        {"a": terms("name", "账号", 500, "g"),
         "u": last_value("unit", "单位", "string", "checked_at"),
         "lv": last_value("level", "层级", "string", "checked_at"),
         "t": last_value("last_post_at", "最近发布", "date", "checked_at"),
         "d": metric("max", "days_since_last_post", "距最近发布（天）", SCORE1),
         "g": metric("max", "longest_gap_days", "最长间隔（天）", SCORE1)},
        table(["a", "u", "lv", "t", "d", "g"], ("g", "desc")), veto,
        "最近发布为空：检查期内及回看窗口内没有任何发布。")
    problems = lens(
        "mw-lens-compliance-problems", "问题账号明细（不合格项多者在前）", cp, "lnsDatatable",
        {"a": terms("name", "账号", 500, "f"),
         "st": last_value("status", "结论", "string", "checked_at"),
         "f": metric("max", "fails", "不合格项", NUMBER0),
         "mb": metric("max", "months_below_min", "发布不足月数", NUMBER0),
         "rr": metric("min", "reply_rate", "回复率", PERCENT),
         "rh": metric("max", "median_reply_hours", "回复时长中位数（小时）", SCORE1),
         "e": metric("sum", "errata_hits", "错敏字", NUMBER0),
         "dw": last_value("duplicate_with", "同单位同平台账号", "string", "checked_at")},
        table(["a", "st", "f", "mb", "rr", "rh", "e", "dw"], ("f", "desc")),
        f"status : {bad}")
    note = markdown("mw-md-index", "政务新媒体指数与合规检查", (
        "**政务新媒体指数**（新华网 表1）：互动、受众、传播、成长、内容、集群六项分指数，"
        "均在同层级、同领域的账号组内归一化到 0–100，加权得综合指数并排名。"
        "**合规检查**：两周无更新（单项否决）、更新间隔、月发布量、留言回复率、错敏字、"
        "同一单位同一平台多账号。数据来自月度报告（`matrixwatch report monthly`），"
        "时间范围请覆盖一个报告期的期末。口径见 reports/INDEX.md。"))
    return [note, m_accounts, m_composite, m_veto, m_errata, ranking, by_level, sub_level,
            profile, checks, status, vetoes, problems]


def files() -> dict[str, list[dict[str, Any]]]:
    """NDJSON file name → objects. Data views first: the others refer to them."""
    return {
        "00-data-views.ndjson": [data_view(i) for i in DATA_VIEWS],
        "10-duty-officer.ndjson": duty_officer(),
        "20-matrix-manager.ndjson": matrix_manager(),
    }


def dumps(objects: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n" for o in objects)


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, objects in files().items():
        p = out_dir / name
        p.write_text(dumps(objects), encoding="utf-8")
        paths.append(p)
    return paths
