// Chart: candles of any stored pair/timeframe (store, else the sample files) with volume and the strategy's
// indicator lines; the entries and exits of the bot's own trades or of a backtest run drawn on the candles.
// Pan with a drag, zoom with the wheel or a pinch (TradingView Lightweight Charts, vendored).
import { get } from "../api.js";
import { h, card, errorLine, num, px } from "../ui.js";
import { createChart, CrosshairMode } from "../../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";

export const title = "Chart";
const COLORS = ["#f0b429", "#3fa7ff", "#c678dd", "#98c379", "#e06c75"];
const DAY = 86_400_000;

export function candleChart(el, { height } = {}) {
  const chart = createChart(el, {
    autoSize: true, height,
    layout: { background: { color: "#0f1419" }, textColor: "#dde3ea", attributionLogo: true },
    grid: { vertLines: { color: "#1c252e" }, horzLines: { color: "#1c252e" } },
    crosshair: { mode: CrosshairMode.Normal }, timeScale: { timeVisible: true, secondsVisible: false },
  });
  const candles = chart.addCandlestickSeries({ upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
                                               wickUpColor: "#26a69a", wickDownColor: "#ef5350" });
  const volume = chart.addHistogramSeries({ priceScaleId: "vol", priceFormat: { type: "volume" } });
  chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });
  return { chart, candles, volume, lines: [] };
}

export function drawCandles(c, data) {
  const t = data.time_ms.map((ms) => ms / 1000);
  c.candles.setData(t.map((time, i) => ({ time, open: data.open[i], high: data.high[i], low: data.low[i], close: data.close[i] })));
  c.volume.setData(t.map((time, i) => ({ time, value: data.volume[i] ?? 0,
                                          color: data.close[i] >= data.open[i] ? "#26a69a55" : "#ef535055" })));
  for (const l of c.lines) c.chart.removeSeries(l);
  c.lines = Object.entries(data.indicators || {}).map(([name, ys], k) => {
    const s = c.chart.addLineSeries({ color: COLORS[k % COLORS.length], lineWidth: 1, title: name, priceLineVisible: false,
                                      lastValueVisible: false });
    s.setData(t.map((time, i) => (ys[i] === null ? { time } : { time, value: ys[i] })));
    return s;
  });
}

// Markers must sit on a bar's time: each trade time is moved to the bar that contains it.
export function tradeMarkers(times, trades) {
  const bar = (ms) => {
    let lo = 0, hi = times.length - 1;
    if (hi < 0 || ms < times[0] || ms > times[hi] + (times[hi] - (times[hi - 1] ?? times[hi]))) return null;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= ms) lo = mid; else hi = mid - 1; }
    return times[lo] / 1000;
  };
  const out = [];
  for (const tr of trades) {
    const short = tr.side === "short";
    const e = bar(tr.entry_ms);
    if (e !== null) out.push({ time: e, position: short ? "aboveBar" : "belowBar", color: "#3fa7ff", shape: short ? "arrowDown" : "arrowUp",
                               text: `${short ? "short" : "buy"} ${px(tr.entry_price)}` });
    const x = tr.exit_ms ? bar(tr.exit_ms) : null;
    if (x !== null) out.push({ time: x, position: short ? "belowBar" : "aboveBar", color: Number(tr.pnl) >= 0 ? "#26a69a" : "#ef5350",
                               shape: short ? "arrowUp" : "arrowDown", text: `exit ${px(tr.exit_price)} (${num(tr.pnl)})` });
  }
  return out.sort((a, b) => a.time - b.time);
}

async function botTrades(symbol) {
  const all = [];
  for (let page = 1; page <= 20; page++) {
    const r = await get(`/trades?per_page=500&page=${page}&symbol=${encodeURIComponent(symbol)}`);
    all.push(...r.trades);
    if (page >= r.pages) break;
  }
  return all;
}

const day = (ms) => new Date(ms).toISOString().slice(0, 10);

export async function render(root) {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  // No bot yet (`thunes api serve` before any run): the chart still works, without the bot's pairs.
  const [status, runs, series] = await Promise.all([get("/bot/status").catch(() => ({})), get("/runs?kind=backtest"),
                                                    get("/data")]);
  const botPairs = (status.pairs || []);
  const first = botPairs[0] || {};
  const form = h("form", { class: "row", id: "chart-form" },
    h("label", {}, "Pair", h("input", { name: "symbol", value: q.get("symbol") || first.symbol || "BTC/USDT", list: "chart-pairs", size: 10 })),
    h("datalist", { id: "chart-pairs" }, [...new Set([...botPairs.map((p) => p.symbol), ...series.series.map((s) => s.symbol)])]
      .map((s) => h("option", { value: s }))),
    h("label", {}, "Timeframe", h("input", { name: "timeframe", value: q.get("timeframe") || first.timeframe || "1h", size: 4 })),
    h("label", {}, "Trades", h("select", { name: "trades" },
      h("option", { value: "bot" }, "the bot's"),
      runs.runs.map((r) => h("option", { value: `run:${r.id}`, selected: q.get("run") === r.id }, `backtest ${r.id}`)),
      h("option", { value: "none", selected: q.get("trades") === "none" }, "none"))),
    h("label", {}, "Strategy", h("input", { name: "strategy", value: q.get("strategy") || first.strategy || "sma_cross", size: 10 })),
    h("label", {}, "Params (JSON)", h("input", { name: "params", value: q.get("params") || JSON.stringify(withoutDefaults(first.params)), size: 16 })),
    h("label", {}, "Candles", h("input", { name: "limit", type: "number", value: q.get("limit") || 8760, min: 10, max: 50000, size: 6 })),
    // Where from (the rule of every command): auto = the store, else the real sample files; sample = the sample
    // files, synthetic candles (said so) without them, as a bot replaying samples on a fresh clone trades.
    h("label", {}, "Source", h("select", { name: "source" },
      ["auto", "store", "sample"].map((s) => h("option", { value: s, selected: (q.get("source") || "auto") === s }, s)))),
    h("button", { type: "submit" }, "Show"));
  const info = h("p", { class: "muted", id: "chart-info" });
  const err = h("div");
  const el = h("div", { class: "chart", id: "chart" });
  root.append(h("h1", {}, "Chart"), card(null, form, info, err, el));
  const c = candleChart(el);

  async function show() {
    const f = new FormData(form);
    const symbol = f.get("symbol").trim().toUpperCase(), timeframe = f.get("timeframe").trim(), mode = f.get("trades");
    err.replaceChildren();
    try {
      let trades = [];
      let range = {};
      if (mode === "bot" && status.state_dir) {
        trades = await botTrades(symbol);
        if (trades.length) {  // the candles around the bot's trades, whatever their age
          const t0 = Math.min(...trades.map((t) => t.entry_ms)), t1 = Math.max(...trades.map((t) => t.exit_ms || t.entry_ms));
          range = { since: day(t0 - 2 * DAY), until: day(t1 + 2 * DAY) };
        }
      } else if (mode.startsWith("run:")) {
        const r = await get(`/runs/backtest/${mode.slice(4)}/trades`);
        trades = r.trades.filter((t) => !t.symbol || t.symbol === symbol);
      }
      const params = new URLSearchParams({ symbol, timeframe, limit: f.get("limit") || 8760, source: f.get("source") || "auto",
                                           ...range });
      if (f.get("strategy")) params.set("strategy", f.get("strategy").trim());
      if (f.get("params")) params.set("params", f.get("params"));
      const data = await get(`/candles?${params}`);
      drawCandles(c, data);
      const markers = tradeMarkers(data.time_ms, trades);
      c.candles.setMarkers(markers);
      c.chart.timeScale().fitContent();
      if (markers.length && mode === "bot") {  // zoom onto the bot's trades (pan or zoom out for the rest)
        const t0 = markers[0].time, t1 = markers[markers.length - 1].time;
        const bar = data.time_ms.length > 1 ? (data.time_ms[1] - data.time_ms[0]) / 1000 : 60;
        const pad = Math.max((t1 - t0) * 0.4, 60 * bar);
        c.chart.timeScale().setVisibleRange({ from: t0 - pad, to: t1 + pad });
      }
      el.dataset.candles = data.time_ms.length;
      el.dataset.markers = markers.length;
      info.textContent = `${data.symbol} ${data.timeframe}: ${data.time_ms.length} candles from ${data.source}; ` +
        `${trades.length} trade(s), ${markers.length} marker(s) on the chart`;
    } catch (e) { err.replaceChildren(errorLine(e)); }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); show(); });
  await show();
  return () => c.chart.remove();
}

function withoutDefaults(params) {
  if (!params) return {};
  const { short, ...rest } = params;  // short=false is the default: keep the field readable
  return short ? params : rest;
}
