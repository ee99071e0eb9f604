// Performance: realised equity curve and drawdown (from the closed trades), daily/weekly/monthly PnL, per pair.
import { get } from "../api.js";
import { h, card, kv, table, num, signed, when, plot } from "../ui.js";

export const title = "Performance";

export async function render(root) {
  const [profit, daily, weekly, monthly, perf] = await Promise.all([
    get("/profit"), get("/daily?days=30"), get("/weekly?weeks=12"), get("/monthly?months=12"), get("/performance")]);
  const closed = [];
  for (let p = 1; p <= 200; p++) {
    const r = await get(`/trades?per_page=500&page=${p}`);
    closed.push(...r.trades.filter((t) => t.pnl !== null));
    if (p >= r.pages) break;
  }
  closed.sort((a, b) => a.exit_ms - b.exit_ms);
  let eq = 0, peak = 0;
  const equity = [0], drawdown = [0];
  for (const t of closed) {
    eq += Number(t.pnl); peak = Math.max(peak, eq);
    equity.push(eq); drawdown.push(eq - peak);
  }
  const bars = (rows) => plot([{ y: rows.slice().reverse().map((d) => Number(d.realised_pnl ?? d.profit ?? 0)) }], { bars: true, height: 160 });
  root.append(h("h1", {}, "Performance"),
    h("div", { class: "grid" },
      card("Summary", kv([
        ["closed / open trades", `${profit.closed_trades} / ${profit.open_trades}`],
        ["realised PnL", signed(profit.realised_pnl)], ["fees", num(profit.fees, 4)],
        ["win rate", profit.win_rate === null ? "–" : `${num(100 * profit.win_rate, 1)} %`],
        ["wins / losses", `${profit.wins} / ${profit.losses}`],
        ["first / last trade", `${when(profit.first_ms)} / ${when(profit.last_ms)}`]])),
      card("Realised equity (quote)", h("div", { id: "perf-equity" }, plot([{ y: equity, label: "equity" }]))),
      card("Drawdown (quote)", plot([{ y: drawdown, color: "#ef5350", label: "drawdown" }]))),
    h("div", { class: "grid" },
      card("Daily PnL (30 days)", bars(daily.days)), card("Weekly PnL (12 weeks)", bars(weekly.weeks)),
      card("Monthly PnL (12 months)", bars(monthly.months))),
    card("Per pair", h("div", { id: "perf-pairs" }, table(columnsOf(perf.pairs), perf.pairs, "no closed trade yet"))));
}

function columnsOf(rows) {
  const keys = Object.keys(rows[0] || {});
  const format = (k, v) => (/pnl|profit/.test(k) ? signed(v) : /^(trades|wins|losses)$/.test(k) ? String(v)
    : v !== null && v !== "" && Number.isFinite(Number(v)) ? num(v, 4) : v);
  return keys.map((k) => [k.replace(/_/g, " "), (r) => format(k, r[k])]);
}
