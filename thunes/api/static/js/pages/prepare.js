// Prepare: the candle series in the store (range, rows, missing bars by the timeframe's spacing) and the quality
// report of each (gaps, duplicates, bad OHLC, zero-volume flat runs, price jumps).
import { get } from "../api.js";
import { h, card, kv, table, when, num, errorLine } from "../ui.js";

export const title = "Prepare";
const UNIT = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export async function render(root) {
  const r = await get("/data");
  const step = (tf) => Number(tf.slice(0, -1)) * (UNIT[tf.slice(-1)] || NaN);
  const report = h("div", { id: "quality-result" });
  async function check(s) {
    report.replaceChildren(h("p", { class: "muted" }, `checking ${s.symbol} ${s.timeframe}…`));
    try {
      const q = await get(`/data/quality?symbol=${encodeURIComponent(s.symbol)}&timeframe=${s.timeframe}`);
      report.replaceChildren(h("h2", {}, q.name), kv([
        ["verdict", h("span", { class: `badge ${q.ok ? "ok" : "bad"}`, id: "quality-verdict" }, q.ok ? "ok" : `${q.errors.length} error(s)`)],
        ["rows", `${num(q.rows, 0)} (${q.first} → ${q.last})`],
        ["gaps", `${q.gaps.length} (${num(q.missing_bars, 0)} missing bars)`],
        ["zero-volume flat runs", `${q.flat_runs.length} (${num(q.flat_bars, 0)} bars)`],
        ["price jumps", String(q.jumps.length)]]),
        ...[...q.errors.map((i) => ["error", i]), ...q.warnings.map((i) => ["warning", i])].map(([k, i]) =>
          h("p", { class: k === "error" ? "error" : "muted" }, `${k} ${i.kind}: ${i.message}`)),
        h("div", { id: "quality-gaps" }, table([["before", (g) => g.before], ["after", (g) => g.after],
          ["missing bars", (g) => num(g.missing_bars, 0)]], q.gaps.slice(0, 200), "no gap")));
    } catch (err) { report.replaceChildren(errorLine(err)); }
  }
  root.append(h("h1", {}, "Prepare"),
    card("Stored candles", table([
      ["pair", (s) => s.symbol], ["timeframe", (s) => s.timeframe], ["first", (s) => when(s.first_ms)], ["last", (s) => when(s.last_ms)],
      ["rows", (s) => num(s.rows, 0)],
      ["missing bars", (s) => { const exp = Math.round((s.last_ms - s.first_ms) / step(s.timeframe)) + 1;
                                return Number.isFinite(exp) ? num(Math.max(0, exp - s.rows), 0) : "–"; }],
      ["", (s) => h("button", { class: "quality-check", onclick: () => check(s) }, "Quality report")],
    ], r.series, "the store is empty: fill it with `thunes data download` or `thunes data import` (charts and runs use the sample files meanwhile)")),
    card("Quality report", report));
}
