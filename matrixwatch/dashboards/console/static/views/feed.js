// Live feed: negative posts and comments by default, newest first, filtered by level,
// unit, account, platform, kind and sentiment, with full-text search. New items are
// fetched every 10 s; "load more" pages back in time.
import { api, h, safeUrl } from "../api.js";
import { fmtTime, t } from "../i18n.js";

const FIELDS = ["sentiment", "level", "unit", "account", "platform", "kind", "q"];

function select(id, options, value, allLabel) {
  return h("select", { id },
    h("option", { value: "" }, allLabel),
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export function eventRow(e) {
  const url = safeUrl(e.url);
  return h("li", { class: `event senti-${e.sentiment_label}`, "data-event-id": e.id },
    h("div", { class: "meta" },
      h("time", { datetime: e.created_at }, fmtTime(e.created_at)),
      h("span", { class: "chip" }, t(e.kind)),
      h("span", { class: `chip senti senti-${e.sentiment_label}` },
        `${t(e.sentiment_label || "neutral")} ${e.sentiment != null ? e.sentiment.toFixed(2) : ""}`),
      h("strong", {}, e.account_name || e.account_id),
      e.owner_id && e.owner_id !== e.account_id
        ? h("span", { class: "muted" }, ` → ${t("about")}：${e.owner_name || e.owner_id}`) : null,
      e.owner_unit ? h("span", { class: "muted" }, ` · ${e.owner_unit}`) : null),
    h("p", { class: "text" }, e.text,
      url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, " ↗") : null));
}

export async function mount(root, ctx) {
  const m = ctx.meta;
  const f = { sentiment: "negative" };
  const controls = {
    sentiment: select("feed-sentiment", ["negative", "neutral", "positive"].map((s) => [s, `${t("sentiment")}: ${t(s)}`]), "negative", `${t("sentiment")}: ${t("all")}`),
    level: select("feed-level", m.levels.map((l) => [l, t(l)]), "", `${t("level")}: ${t("all")}`),
    unit: select("feed-unit", m.units.map((u) => [u, u]), "", `${t("unit")}: ${t("all")}`),
    account: select("feed-account", m.accounts.map((a) => [a.id, `${a.name}`]), "", `${t("account")}: ${t("all")}`),
    platform: select("feed-platform", m.platforms.map((p) => [p, p]), "", `${t("platform")}: ${t("all")}`),
    kind: select("feed-kind", ["post", "repost", "comment"].map((k) => [k, t(k)]), "", `${t("kind")}: ${t("all")}`),
    q: h("input", { id: "feed-q", type: "search", placeholder: t("search") }),
  };
  const list = h("ul", { class: "feed", id: "feed-list" });
  const more = h("button", { type: "button", id: "feed-more", hidden: true, onclick: () => load(true) }, t("load_more"));
  root.append(h("form", { class: "filters", id: "feed-filters", onsubmit: (e) => { e.preventDefault(); read(); load(); } },
    FIELDS.map((k) => controls[k]), h("button", { type: "submit" }, t("search"))), list, more);
  for (const k of FIELDS) if (k !== "q") controls[k].addEventListener("change", () => { read(); load(); });

  let before = null;
  let newest = null;

  function read() {
    for (const k of FIELDS) f[k] = controls[k].value.trim();
  }

  async function load(older = false) {
    const d = await api("/api/feed", { params: { ...f, sentiment: f.sentiment || "all", before: older ? before : undefined, limit: 50 } });
    if (!older) list.replaceChildren();
    for (const e of d.events) list.append(eventRow(e));
    if (!older) newest = d.events[0]?.created_at || null;
    if (!list.children.length) list.append(h("li", { class: "muted empty" }, t("no_events")));
    before = d.next_before;
    more.hidden = before == null;
  }

  // Poll for newer items and put them on top (scroll position kept when reading further down).
  async function poll() {
    const d = await api("/api/feed", { params: { ...f, sentiment: f.sentiment || "all", limit: 50 } });
    const fresh = [];
    for (const e of d.events) {
      if (newest && new Date(e.created_at) <= new Date(newest)) break;
      if (!list.querySelector(`[data-event-id="${CSS.escape(e.id)}"]`)) fresh.push(e);
    }
    if (!fresh.length) return;
    list.querySelector(".empty")?.remove();
    list.prepend(...fresh.map(eventRow));
    newest = d.events[0].created_at;
  }

  await load();
  const timer = setInterval(() => poll().catch(() => {}), 10000);
  return () => clearInterval(timer);
}
