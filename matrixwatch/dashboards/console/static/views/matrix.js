// Matrix board: open linkage tasks (progress 7/12, countdown, laggards and their units),
// the per-account response-rate table, stale accounts and recently closed tasks.
import { api, h, safeUrl } from "../api.js";
import { fmtDuration, fmtTime, t } from "../i18n.js";
import { table } from "./handover.js";

function pct(v) {
  return v == null ? "–" : `${(v * 100).toFixed(0)}%`;
}

function progress(task) {
  return h("div", { class: "progress", title: pct(task.rate) },
    h("div", { class: "bar", style: { width: `${Math.round(task.rate * 100)}%` } }),
    h("span", { class: "label", "data-role": "progress" }, task.progress));
}

function laggards(list) {
  if (!list.length) return h("span", { class: "muted" }, t("none"));
  return h("ul", { class: "laggards" }, list.map((a) => h("li", { "data-account-id": a.id },
    a.name, a.unit ? h("span", { class: "muted" }, `（${a.unit}）`) : null)));
}

export async function mount(root) {
  const days = h("select", { id: "board-days" }, [7, 14, 30, 90].map((d) => h("option", { value: d }, `${d} ${t("days")}`)));
  const body = h("div", { id: "board-body" });
  root.append(h("div", { class: "filters" },
    h("h2", {}, t("tab_matrix")), days,
    h("button", { type: "button", onclick: () => load() }, t("refresh"))), body);
  days.addEventListener("change", () => load());
  let fetchedAt = 0;
  let tasks = [];

  function tick() {
    const elapsed = (Date.now() - fetchedAt) / 1000;
    for (const el of body.querySelectorAll("[data-remaining]")) {
      const left = Number(el.dataset.remaining) - (el.dataset.clock === "wall" ? elapsed : 0);
      el.textContent = left > 0 ? fmtDuration(left) : t("overdue");
      el.classList.toggle("urgent", left < 3 * 3600);
    }
  }

  async function load() {
    const d = await api("/api/board", { params: { days: days.value } });
    fetchedAt = Date.now();
    tasks = d.open_tasks;
    body.replaceChildren(
      h("p", { class: "summary" }, `${t("ref_time")}：`, h("time", { id: "board-ref" }, fmtTime(d.ref)), " ",
        h("span", { class: "muted" }, d.clock === "wall" ? t("clock_wall") : t("clock_event"))),
      h("h3", {}, `${t("open_tasks")}（${d.counts.open}）`),
      h("table", { class: "grid", id: "open-tasks" },
        h("thead", {}, h("tr", {}, [t("superior"), t("post_text"), t("published"), t("deadline"), t("countdown"), t("progress"), t("laggards")].map((x) => h("th", {}, x)))),
        h("tbody", {}, tasks.length ? tasks.map((x) => h("tr", { "data-post-id": x.post_id },
          h("td", {}, h("strong", {}, x.name), h("div", { class: "muted" }, x.unit || "")),
          h("td", { class: "text" }, x.text, safeUrl(x.url) ? h("a", { href: safeUrl(x.url), target: "_blank", rel: "noopener noreferrer" }, " ↗") : null),
          h("td", {}, fmtTime(x.created_at)),
          h("td", {}, fmtTime(x.deadline)),
          h("td", { "data-remaining": x.remaining, "data-clock": d.clock, class: "countdown" }, fmtDuration(x.remaining)),
          h("td", {}, progress(x)),
          h("td", {}, laggards(x.laggards))))
          : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("none"))))),
      h("h3", {}, t("response_table")),
      table([t("account"), t("unit"), t("level"), t("superior"), t("expected"), t("linked"), t("rate"), t("median_latency"), t("last_post")],
        d.responses.map((r) => [r.name, r.unit || "", t(r.level || ""), r.parent_name || "", r.tasks_expected, r.tasks_linked,
          h("span", { class: r.response_rate < 0.6 ? "bad" : "" }, pct(r.response_rate)), fmtDuration(r.median_latency), fmtTime(r.last_post_at)]), "responses"),
      h("h3", {}, `${t("stale")}（${d.stale.length}）`),
      table([t("account"), t("unit"), t("level"), t("last_post"), t("silent_days")],
        d.stale.map((s) => [s.name, s.unit || "", t(s.level || ""), s.last_post_at ? fmtTime(s.last_post_at) : t("never"), s.silent_days ?? "–"]), "stale"),
      h("h3", {}, t("closed_tasks")),
      table([t("superior"), t("published"), t("progress"), t("rate"), t("laggards")],
        d.closed_recent.map((c) => [c.name, fmtTime(c.created_at), c.progress, pct(c.rate), laggards(c.laggards)]), "closed-tasks"));
    tick();
  }

  await load();
  const ticker = setInterval(tick, 1000);
  const refresher = setInterval(() => load().catch(() => {}), 30000);
  return () => { clearInterval(ticker); clearInterval(refresher); };
}
