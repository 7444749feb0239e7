// Charts with the bundled ECharts (served from /static/vendor, never a CDN): volume and
// negative share over time for an account or a unit; linkage rate per subordinate.
import { api, h } from "../api.js";
import { fmtTime, t } from "../i18n.js";

let loading = null;

function loadECharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  loading ??= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/static/vendor/echarts.common.min.js";
    s.onload = () => resolve(window.echarts);
    s.onerror = () => reject(new Error("echarts"));
    document.head.append(s);
  });
  return loading;
}

export async function mount(root, ctx) {
  const echarts = await loadECharts();
  const m = ctx.meta;
  const account = h("select", { id: "chart-account" }, h("option", { value: "" }, t("choose_account")),
    m.accounts.map((a) => h("option", { value: a.id }, `${a.name}`)));
  const unit = h("select", { id: "chart-unit" }, h("option", { value: "" }, t("choose_unit")),
    m.units.map((u) => h("option", { value: u }, u)));
  const days = h("select", { id: "chart-days" }, [1, 3, 7, 30].map((d) => h("option", { value: d }, `${d} ${t("days")}`)));
  const superior = h("select", { id: "chart-superior" },
    m.superiors.map((s) => h("option", { value: s.id, "data-platform": s.platform }, `${s.name}${s.unit ? `（${s.unit}）` : ""}`)));
  const volumeEl = h("div", { class: "chart", id: "chart-volume" });
  const linkageEl = h("div", { class: "chart", id: "chart-linkage" });
  root.append(
    h("section", {}, h("h3", {}, t("chart_volume")), h("div", { class: "filters" }, account, unit, days), volumeEl),
    h("section", {}, h("h3", {}, t("chart_linkage")), h("div", { class: "filters" }, superior), linkageEl));
  const volume = echarts.init(volumeEl);
  const linkage = echarts.init(linkageEl);
  if (m.accounts.length) account.value = (m.superiors[0] || m.accounts[0]).id;

  async function drawVolume() {
    const params = { days: days.value };
    if (unit.value) params.unit = unit.value;
    else if (account.value) params.account = account.value;
    else return;
    const d = await api("/api/series", { params });
    volume.setOption({
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: [t("volume"), t("negative_share")] },
      grid: { left: 48, right: 56, bottom: 40, top: 48 },
      xAxis: { type: "category", data: d.points.map((p) => fmtTime(p.t).slice(5, 16)) },
      yAxis: [{ type: "value", name: t("volume"), minInterval: 1 },
        { type: "value", name: t("negative_share"), min: 0, max: 100, axisLabel: { formatter: "{value}%" } }],
      series: [
        { name: t("volume"), type: "bar", data: d.points.map((p) => p.total), itemStyle: { color: "#5470c6" } },
        { name: t("negative_share"), type: "line", yAxisIndex: 1, connectNulls: true, itemStyle: { color: "#d62728" },
          data: d.points.map((p) => (p.negative_share == null ? null : Math.round(p.negative_share * 1000) / 10)) },
      ],
    }, true);
    volumeEl.dataset.points = String(d.points.length);
  }

  async function drawLinkage() {
    if (!superior.value) return;
    const platform = superior.selectedOptions[0]?.dataset.platform || "weibo";
    const d = await api("/api/linkage-rates", { params: { superior: superior.value, platform, days: 30 } });
    const pctOf = (v) => (v == null ? null : Math.round(v * 1000) / 10);
    linkage.setOption({
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: [t("closed_rate"), t("open_rate")] },
      grid: { left: 48, right: 24, bottom: 80, top: 40 },
      xAxis: { type: "category", data: d.rows.map((r) => r.name), axisLabel: { rotate: 30 } },
      yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
      series: [
        { name: t("closed_rate"), type: "bar", data: d.rows.map((r) => pctOf(r.closed_rate)), itemStyle: { color: "#91cc75" } },
        { name: t("open_rate"), type: "bar", data: d.rows.map((r) => pctOf(r.open_rate)), itemStyle: { color: "#fac858" } },
      ],
    }, true);
    linkageEl.dataset.rows = String(d.rows.length);
  }

  account.addEventListener("change", () => { unit.value = ""; drawVolume(); });
  unit.addEventListener("change", () => { drawVolume(); });
  days.addEventListener("change", drawVolume);
  superior.addEventListener("change", drawLinkage);
  const onResize = () => { volume.resize(); linkage.resize(); };
  window.addEventListener("resize", onResize);
  await Promise.all([drawVolume(), drawLinkage()]);
  return () => {
    window.removeEventListener("resize", onResize);
    volume.dispose();
    linkage.dispose();
  };
}
