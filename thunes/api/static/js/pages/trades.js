// Trades: the bot's round trips, newest first: filter by pair, page through, export as CSV.
import { get } from "../api.js";
import { h, card, table, num, px, signed, when, downloadCsv, errorLine } from "../ui.js";

export const title = "Trades";

export async function render(root) {
  let page = 1;
  const symbol = h("input", { name: "symbol", placeholder: "all pairs (e.g. BTC/USDT)", size: 14, id: "trades-symbol" });
  const perPage = h("select", { id: "trades-per-page" }, [20, 50, 100, 500].map((n) => h("option", { value: n }, n)));
  const body = h("div", { id: "trades-table" });
  const pager = h("div", { class: "row", id: "trades-pager" });
  const err = h("div");
  const form = h("form", { class: "row" }, h("label", {}, "Pair", symbol), h("label", {}, "Per page", perPage),
                 h("button", { type: "submit" }, "Filter"),
                 h("button", { type: "button", id: "trades-csv", onclick: exportCsv }, "Export CSV"));
  root.append(h("h1", {}, "Trades"), card(null, form, err, body, pager));

  const query = (p, n) => {
    const s = new URLSearchParams({ page: p, per_page: n });
    if (symbol.value.trim()) s.set("symbol", symbol.value.trim().toUpperCase());
    return `/trades?${s}`;
  };

  async function load() {
    err.replaceChildren();
    try {
      const r = await get(query(page, perPage.value));
      body.replaceChildren(table([
        ["#", (t) => t.id], ["pair", (t) => t.symbol], ["entry", (t) => when(t.entry_ms)], ["exit", (t) => when(t.exit_ms)],
        ["qty", (t) => t.qty], ["entry price", (t) => px(t.entry_price)], ["exit price", (t) => px(t.exit_price)],
        ["fees", (t) => num(t.fees, 4)], ["PnL", (t) => (t.pnl === null ? h("span", { class: "muted" }, "open") : signed(t.pnl))],
        ["return %", (t) => (t.return_pct === null ? "–" : signed(t.return_pct))],
      ], r.trades, "no trade"));
      pager.replaceChildren(
        h("button", { disabled: r.page <= 1, onclick: () => { page--; load(); } }, "‹ Newer"),
        h("span", { id: "trades-page" }, `page ${r.page} of ${r.pages} (${r.total} trades)`),
        h("button", { disabled: r.page >= r.pages, onclick: () => { page++; load(); } }, "Older ›"));
    } catch (e) { err.replaceChildren(errorLine(e)); }
  }

  async function exportCsv() {
    const rows = [];
    for (let p = 1; p <= 200; p++) {
      const r = await get(query(p, 500));
      rows.push(...r.trades);
      if (p >= r.pages) break;
    }
    downloadCsv(`thunes-trades${symbol.value ? "-" + symbol.value.replace("/", "") : ""}.csv`, rows);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); page = 1; load(); });
  perPage.addEventListener("change", () => { page = 1; load(); });
  await load();
}
