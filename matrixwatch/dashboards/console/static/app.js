// The console shell: session, tabs (#alerts, #handover, …), language and the live stream.
// Views are modules with mount(root, ctx) → optional unmount(); they listen on ctx.bus for
// "alert" (a newly stored alert) and "state" (someone changed an alert's workflow).
import { api, h } from "./api.js";
import { getLang, setLang, t, translate } from "./i18n.js";

const VIEWS = {
  alerts: () => import("./views/alerts.js"),
  handover: () => import("./views/handover.js"),
  feed: () => import("./views/feed.js"),
  matrix: () => import("./views/matrix.js"),
  charts: () => import("./views/charts.js"),
  admin: () => import("./views/admin.js"),
};

const bus = new EventTarget();
const ctx = { bus, meta: null, user: null, cursor: "" };
let unmount = null;
let current = null;
let source = null;
let unseen = 0;

function setLive(on) {
  const el = document.getElementById("live");
  el.className = `live ${on ? "on" : "off"}`;
  el.dataset.i18n = on ? "live_on" : "live_off";
  el.textContent = t(el.dataset.i18n);
}

function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function badge() {
  const tab = document.querySelector('[data-tab="alerts"]');
  tab.querySelector(".badge")?.remove();
  if (unseen > 0 && current !== "alerts") tab.append(h("span", { class: "badge" }, unseen));
}

// Server-sent events from the cursor the first alert list returned; on an error the stream
// is reopened from the latest cursor seen, so nothing is missed or repeated for long.
function connect() {
  source?.close();
  source = new EventSource(`/api/stream?cursor=${encodeURIComponent(ctx.cursor)}`);
  source.addEventListener("hello", () => setLive(true));
  source.addEventListener("alert", (ev) => {
    const alert = JSON.parse(ev.data);
    if (alert.cursor) ctx.cursor = alert.cursor;
    bus.dispatchEvent(new CustomEvent("alert", { detail: alert }));
    if (current !== "alerts") {
      unseen += 1;
      badge();
      toast(`${t("new_alert")}：${alert.title || alert.rule}`);
    }
  });
  source.addEventListener("state", (ev) => {
    bus.dispatchEvent(new CustomEvent("state", { detail: JSON.parse(ev.data).states }));
  });
  source.onerror = () => {
    setLive(false);
    source.close();
    setTimeout(connect, 2000);
  };
}

async function show(name) {
  if (!VIEWS[name] || (name === "admin" && ctx.user.role !== "matrix-manager")) name = "alerts";
  if (typeof unmount === "function") unmount();
  unmount = null;
  current = name;
  if (name === "alerts") unseen = 0;
  badge();
  for (const a of document.querySelectorAll("#tabs a")) {
    a.classList.toggle("active", a.dataset.tab === name);
  }
  const root = document.getElementById("view");
  root.replaceChildren(h("p", { class: "muted" }, t("loading")));
  root.dataset.view = name;
  const mod = await VIEWS[name]();
  if (current !== name) return;
  root.replaceChildren();
  unmount = await mod.mount(root, ctx);
}

async function main() {
  translate();
  const meta = await api("/api/meta");
  ctx.meta = meta;
  ctx.user = meta.user;
  document.getElementById("whoami").textContent = `${meta.user.name}（${t(meta.user.role)}）`;
  if (meta.user.role === "matrix-manager") {
    document.querySelector('[data-tab="admin"]').hidden = false;
  }
  const first = await api("/api/alerts", { params: { limit: 1 } });
  ctx.cursor = first.cursor;
  connect();
  document.getElementById("lang-switch").addEventListener("click", () => {
    setLang(getLang() === "en" ? "zh" : "en");
    translate();
    document.getElementById("whoami").textContent = `${ctx.user.name}（${t(ctx.user.role)}）`;
    show(current);
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST", body: {} });
    location.replace("/login");
  });
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  await show(location.hash.slice(1) || "alerts");
  document.body.dataset.ready = "1";
}

main().catch((e) => {
  document.getElementById("view").replaceChildren(h("p", { class: "error" }, `${t("error")}: ${e.message}`));
});
