// Alerts: the live list (new ones slide in on top) and the workflow on each alert:
// acknowledge, assign, note, close, reopen, with the history of who did what and when.
import { api, h, safeUrl } from "../api.js";
import { fmtTime, t } from "../i18n.js";

const SEVERITIES = ["red", "orange", "yellow", "blue"];
const STATUSES = ["open", "new", "acknowledged", "closed", "all"];

function fmtValue(key, v) {
  if (typeof v !== "number") return String(v);
  if (/(_start|_at)$/.test(key) && v > 1e9) return fmtTime(new Date(v * 1000).toISOString());
  if (/(rate|share|threshold|checkpoint)/.test(key) && v <= 1) return `${(v * 100).toFixed(0)}%`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function statusBadge(state) {
  return h("span", { class: `status status-${state.status}`, "data-role": "status" }, t(state.status));
}

export function alertCard(a, { onOpen } = {}) {
  const state = a.state || { status: "new" };
  const values = Object.entries(a.values || {});
  const samples = a.sample_posts || [];
  const card = h("article", {
    class: `alert sev-${a.severity}`, "data-alert-id": a.id, "data-rule": a.rule, "data-status": state.status,
  },
    h("div", { class: "sev" }, t(a.severity)),
    h("div", { class: "alert-body" },
      h("header", {},
        h("time", { datetime: a.timestamp }, fmtTime(a.timestamp)),
        h("span", { class: "type" }, t(a.type)),
        h("strong", { class: "title" }, a.title || a.rule)),
      h("div", { class: "who" },
        a.account_name || a.account_id || "",
        a.unit ? h("span", { class: "unit" }, ` · ${a.unit}`) : null,
        a.level ? h("span", { class: "muted" }, ` · ${t(a.level)}`) : null),
      a.message ? h("p", { class: "msg" }, a.message) : null,
      values.length ? h("div", { class: "values", title: t("values") },
        values.map(([k, v]) => h("span", { class: "chip" }, `${k}: ${fmtValue(k, v)}`))) : null,
      samples.length ? h("ul", { class: "samples", title: t("samples") },
        samples.map((s) => h("li", {}, s.text || "",
          safeUrl(s.url) ? h("a", { href: safeUrl(s.url), target: "_blank", rel: "noopener noreferrer" }, " ↗") : null))) : null,
      h("footer", {},
        statusBadge(state),
        h("span", { class: "assignee" }, state.assignee ? `${t("assignee")}：${state.assignee}` : ""),
        h("button", { type: "button", class: "link", "data-role": "open", onclick: () => onOpen && onOpen(a.id) }, t("history"))),
    ));
  return card;
}

function detailPanel(detail, users, onAction) {
  const state = detail.state;
  const note = h("textarea", { rows: 2, placeholder: t("note_placeholder"), "data-role": "note" });
  const who = h("select", { "data-role": "assignee" },
    users.map((u) => h("option", { value: u.name, selected: u.name === state.assignee }, u.name)));
  const btn = (action, label, extra = {}) => h("button", {
    type: "button", "data-action": action, onclick: () => onAction(action, {
      note: note.value, assignee: who.value, ...extra,
    }),
  }, label);
  const closed = state.status === "closed";
  return h("div", { class: "detail", "data-role": "detail" },
    h("div", { class: "actions" },
      state.status === "new" ? btn("ack", t("ack")) : null,
      !closed ? [who, btn("assign", t("assign"))] : null,
      note, btn("note", t("note")),
      !closed ? btn("close", t("close")) : btn("reopen", t("reopen"))),
    h("h4", {}, t("history")),
    h("ol", { class: "history", "data-role": "history" },
      detail.history.map((x) => h("li", {},
        h("time", {}, fmtTime(new Date(x.at * 1000).toISOString())), " ",
        h("strong", {}, x.user), " ", t(x.action),
        x.assignee && x.action === "assign" ? ` → ${x.assignee}` : "",
        x.note ? h("q", {}, x.note) : null))));
}

export async function mount(root, ctx) {
  let status = "open";
  let severity = "";
  let alerts = [];
  let openId = null;
  let users = [];
  const list = h("div", { class: "alert-list", id: "alert-list" });
  const filters = h("div", { class: "filters" },
    h("label", {}, t("status"), " ", h("select", {
      id: "alert-status", onchange: (e) => { status = e.target.value; load(); },
    }, STATUSES.map((s) => h("option", { value: s, selected: s === status }, t(s))))),
    h("label", {}, t("severity"), " ", h("select", {
      id: "alert-severity", onchange: (e) => { severity = e.target.value; load(); },
    }, h("option", { value: "" }, t("all")), SEVERITIES.map((s) => h("option", { value: s }, t(s))))),
    h("button", { type: "button", onclick: () => load() }, t("refresh")));
  root.append(filters, list);

  function matches(a) {
    const st = a.state.status;
    if (severity && a.severity !== severity) return false;
    if (status === "open") return st !== "closed";
    return status === "all" || st === status;
  }

  function cardFor(a) {
    const card = alertCard(a, { onOpen: toggle });
    if (a.id === openId && a.detail) {
      card.querySelector(".alert-body").append(detailPanel(a.detail, users, (act, p) => act_(a.id, act, p)));
    }
    return card;
  }

  function render() {
    list.replaceChildren();
    const shown = alerts.filter(matches);
    if (!shown.length) list.append(h("p", { class: "muted empty" }, t("no_alerts")));
    for (const a of shown) list.append(cardFor(a));
  }

  // Replace or insert one card without redrawing the others (a note being typed survives).
  function place(a) {
    const old = list.querySelector(`[data-alert-id="${CSS.escape(a.id)}"]`);
    if (!matches(a)) { old?.remove(); return null; }
    const card = cardFor(a);
    if (old) { old.replaceWith(card); return card; }
    list.querySelector(".empty")?.remove();
    const idx = alerts.filter(matches).findIndex((x) => x.id === a.id);
    const next = list.children[idx] || null;
    list.insertBefore(card, next);
    return card;
  }

  async function load() {
    const data = await api("/api/alerts", { params: { limit: 200, severity } });
    alerts = data.alerts;
    if (openId) await refreshDetail(openId);
    render();
  }

  async function refreshDetail(id) {
    const a = alerts.find((x) => x.id === id);
    if (!a) return;
    a.detail = await api(`/api/alerts/${encodeURIComponent(id)}`);
    a.state = a.detail.state;
  }

  async function toggle(id) {
    openId = openId === id ? null : id;
    if (openId) {
      if (!users.length) users = (await api("/api/users")).users;
      await refreshDetail(openId);
    }
    render();
  }

  async function act_(id, action, { note, assignee }) {
    try {
      const detail = await api(`/api/alerts/${encodeURIComponent(id)}/actions`, {
        method: "POST", body: { action, note: note || undefined, assignee: action === "assign" ? assignee : undefined },
      });
      const a = alerts.find((x) => x.id === id);
      a.detail = detail;
      a.state = detail.state;
      place(a);
    } catch (e) {
      alert(`${t("error")}: ${e.message}`);
    }
  }

  const onAlert = (ev) => {
    const a = ev.detail;
    if (alerts.some((x) => x.id === a.id)) return;
    alerts.unshift(a);
    alerts.sort((x, y) => new Date(y.timestamp) - new Date(x.timestamp));
    place(a)?.classList.add("fresh");
  };
  const onState = async (ev) => {
    for (const [id, st] of Object.entries(ev.detail)) {
      const a = alerts.find((x) => x.id === id);
      if (!a || JSON.stringify(a.state) === JSON.stringify(st)) continue;
      a.state = st;
      if (id === openId) await refreshDetail(id);
      place(a);
    }
  };
  ctx.bus.addEventListener("alert", onAlert);
  ctx.bus.addEventListener("state", onState);
  const timer = setInterval(load, 30000);
  await load();
  return () => {
    ctx.bus.removeEventListener("alert", onAlert);
    ctx.bus.removeEventListener("state", onState);
    clearInterval(timer);
  };
}
