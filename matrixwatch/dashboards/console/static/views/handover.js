// Shift hand-over: what is still open, what was done during the shift, and notes for the
// next officer. The shift starts at the last shift change (08:00 / 20:00 by default).
import { api, h } from "../api.js";
import { fmtTime, t } from "../i18n.js";

function epochIso(at) {
  return new Date(at * 1000).toISOString();
}

export async function mount(root) {
  const since = h("input", { type: "datetime-local", id: "handover-since" });
  const body = h("div", { id: "handover-body" });
  const note = h("textarea", { rows: 3, id: "handover-note", placeholder: t("handover_notes") });
  root.append(
    h("div", { class: "filters" },
      h("h2", {}, t("handover_title")),
      h("label", {}, t("shift_since"), " ", since),
      h("button", { type: "button", onclick: () => load(true) }, t("refresh")),
      h("button", { type: "button", onclick: () => window.print() }, t("print"))),
    body);

  async function load(custom = false) {
    const params = {};
    // The field shows Beijing time whatever the browser's zone: read it back as +08:00.
    if (custom && since.value) params.since = new Date(`${since.value}:00+08:00`).getTime() / 1000;
    const d = await api("/api/handover", { params });
    if (!since.value) since.value = d.since.slice(0, 16);
    const c = d.counts;
    body.replaceChildren(
      h("p", { class: "summary", id: "handover-summary" },
        `${fmtTime(d.since)} – ${fmtTime(d.until)} · ${t("open_alerts")} ${c.open} (${t("new")} ${c.new}, ${t("acknowledged")} ${c.acknowledged}) · ${t("closed")} ${c.closed_in_shift}`),
      h("h3", {}, t("open_alerts")),
      table([t("severity"), t("at"), t("tab_alerts"), t("account"), t("status"), t("assignee")],
        d.open_alerts.map((a) => [
          h("span", { class: `sev-dot sev-${a.severity}` }, t(a.severity)), fmtTime(a.timestamp),
          a.title || a.rule, [a.account_name || a.account_id || "", a.unit ? ` · ${a.unit}` : ""],
          t(a.state.status), a.state.assignee || t("unassigned")]), "handover-open"),
      h("h3", {}, t("shift_actions")),
      table([t("at"), t("user"), t("action"), t("tab_alerts"), t("note")],
        d.actions.map((x) => [fmtTime(epochIso(x.at)), x.user,
          t(x.action) + (x.action === "assign" && x.assignee ? ` → ${x.assignee}` : ""),
          x.alert ? x.alert.title || x.alert.rule : x.alert_id, x.note || ""]), "handover-actions"),
      h("h3", {}, t("handover_notes")),
      h("ul", { class: "notes" }, d.notes.map((n) => h("li", {},
        h("time", {}, fmtTime(epochIso(n.at))), " ", h("strong", {}, n.user), "：", n.text))),
      note,
      h("button", { type: "button", id: "handover-add", onclick: addNote }, t("add_note")));
  }

  async function addNote() {
    if (!note.value.trim()) return;
    await api("/api/handover/notes", { method: "POST", body: { text: note.value } });
    note.value = "";
    load(true);
  }

  await load();
}

export function table(headers, rows, id) {
  return h("table", { class: "grid", id },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))
      : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, t("none")))));
}
