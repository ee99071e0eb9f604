// Audit: the bot's audit trail verified end to end (hash chain), and the log tail by level and component.
import { get } from "../api.js";
import { h, card, kv, table } from "../ui.js";

export const title = "Audit";

export async function render(root) {
  const v = await get("/audit/verify");
  const level = h("select", { id: "log-level" }, ["", "INFO", "WARNING", "ERROR"].map((l) => h("option", { value: l }, l || "all levels")));
  const logs = h("div", { id: "audit-logs" });
  async function loadLogs() {
    const r = await get(`/logs?lines=200${level.value ? `&level=${level.value}` : ""}`);
    logs.replaceChildren(table([["time", (l) => l.ts || l.time || l.asctime || ""], ["level", (l) => l.level || ""],
      ["component", (l) => l.component || l.logger || l.name || ""], ["message", (l) => l.message || l.msg || JSON.stringify(l)]],
      r.lines.slice().reverse(), "no log line"));
  }
  level.addEventListener("change", loadLogs);
  root.append(h("h1", {}, "Audit"),
    card("Audit trail", kv([
      ["verdict", h("span", { class: `badge ${v.ok ? "ok" : "bad"}`, id: "audit-verdict" }, v.ok ? "intact" : "BROKEN")],
      ["records", String(v.records)], ["file", v.path], ["torn tail", v.torn_tail ? "yes (last line incomplete)" : "no"],
      ...(v.error ? [["error", `${v.error}${v.line ? ` (line ${v.line})` : ""}`]] : [])])),
    card("Logs", h("div", { class: "row" }, h("label", {}, "Level", level)), logs));
  await loadLogs();
}
