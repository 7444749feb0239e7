// Matrix-manager only: validate or replace the account registry, read the audit log.
// The server enforces the role; this tab is merely hidden from duty officers.
import { api, h } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { table } from "./handover.js";

export async function mount(root) {
  const text = h("textarea", { id: "registry-yaml", rows: 12, spellcheck: "false", placeholder: "accounts:\n  - {id: \"…\", platform: weibo, name: …}" });
  const result = h("pre", { id: "registry-result", class: "result" });
  const audit = h("div", { id: "audit" });

  async function send(method, path) {
    try {
      const r = await api(path, { method, body: { yaml: text.value } });
      result.className = "result ok";
      result.textContent = `${t("valid")} · ${t("accounts")} ${r.accounts}${r.written ? ` → ${r.written}\n${t("restart_note")}` : ""}`;
    } catch (e) {
      result.className = "result bad";
      result.textContent = `${e.status === 403 ? t("forbidden") : t("invalid")}: ${(e.body && (e.body.error_detail || e.body.error)) || e.message}`;
      if (e.body && e.body.error && e.status === 422) result.textContent = `${t("invalid")}: ${e.body.error}`;
    }
    loadAudit();
  }

  async function loadAudit() {
    const d = await api("/api/audit", { params: { limit: 200 } });
    audit.replaceChildren(table([t("at"), t("user"), t("role"), t("action"), t("target")],
      d.audit.map((a) => [fmtTime(new Date(a.at * 1000).toISOString()), a.user || "–", a.role ? t(a.role) : "–", a.action, a.target || ""]), "audit-table"));
  }

  root.append(
    h("section", {}, h("h3", {}, t("registry")), text,
      h("div", { class: "filters" },
        h("button", { type: "button", id: "registry-validate", onclick: () => send("POST", "/api/registry/validate") }, t("validate")),
        h("button", { type: "button", id: "registry-upload", onclick: () => send("PUT", "/api/registry") }, t("upload"))),
      result),
    h("section", {}, h("h3", {}, t("audit")), audit));
  await loadAudit();
}
