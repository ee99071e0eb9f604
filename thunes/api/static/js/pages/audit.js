// Audit: the bot's audit trail verified end to end (hash chain), a look-ahead audit of a strategy or feature set,
// and the log tail by level.
import { get } from "../api.js";
import { h, card, kv, table, errorLine } from "../ui.js";

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
  const target = h("input", { name: "target", value: "sma_cross", list: "audit-targets", size: 14, id: "lookahead-target" });
  const params = h("input", { name: "params", placeholder: '{"fast": 10}', size: 16 });
  const look = h("div", { id: "lookahead-result" });
  const lookForm = h("form", { class: "row", id: "lookahead-form" },
    h("label", {}, "Strategy or features[:set]", target),
    h("datalist", { id: "audit-targets" }, ["sma_cross", "rsi_bollinger", "features"].map((t) => h("option", { value: t }))),
    h("label", {}, "Params (JSON)", params),
    h("label", {}, "Pair", h("input", { name: "symbol", value: "BTC/USDT", size: 10 })),
    h("label", {}, "Timeframe", h("input", { name: "timeframe", value: "1h", size: 4 })),
    h("button", { type: "submit", id: "lookahead-run" }, "Run the look-ahead audit"));
  lookForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(lookForm);
    const q = new URLSearchParams({ target: f.get("target").trim(), symbol: f.get("symbol").trim().toUpperCase(),
                                    timeframe: f.get("timeframe").trim() });
    if (f.get("params").trim()) q.set("params", f.get("params").trim());
    look.replaceChildren(h("p", { class: "muted" }, "recomputing on random prefixes…"));
    try {
      const r = await get(`/audit/lookahead?${q}`);
      look.replaceChildren(kv([
        ["verdict", h("span", { class: `badge ${r.ok ? "ok" : "bad"}`, id: "lookahead-verdict" },
                      r.ok ? "no look-ahead" : `LOOK-AHEAD in ${r.bad_columns.join(", ")}`)],
        ["audited", `${r.target}: ${r.columns.length} column(s), ${r.rows} candles, ${r.prefixes} prefixes`],
        ["candles", r.candles], ...(r.errors.length ? [["errors", r.errors.join("; ")]] : [])]),
        r.violations.length ? table([["column", (v) => v.column], ["time", (v) => v.ts], ["prefix rows", (v) => v.prefix_len],
          ["on the prefix", (v) => v.prefix_value], ["on all data", (v) => v.full_value]], r.violations) : "");
    } catch (err) { look.replaceChildren(errorLine(err)); }
  });
  root.append(h("h1", {}, "Audit"),
    card("Audit trail", kv([
      ["verdict", h("span", { class: `badge ${v.ok ? "ok" : "bad"}`, id: "audit-verdict" }, v.ok ? "intact" : "BROKEN")],
      ["records", String(v.records)], ["file", v.path], ["torn tail", v.torn_tail ? "yes (last line incomplete)" : "no"],
      ...(v.error ? [["error", `${v.error}${v.line ? ` (line ${v.line})` : ""}`]] : [])])),
    card("Look-ahead audit", h("p", { class: "muted" }, "Recomputes the signals (or features) on random prefixes of the ",
      "candles: a value at time t that changes once later candles are appended is a look-ahead."), lookForm, look),
    card("Logs", h("div", { class: "row" }, h("label", {}, "Level", level)), logs));
  await loadLogs();
}
