// Forecast: a trained model's latest return and volatility forecast, its price interval (±1σ, ±2σ) drawn after
// the newest candles.
import { get } from "../api.js";
import { h, card, kv, num, px, when, errorLine } from "../ui.js";
import { candleChart, drawCandles } from "./chart.js";

export const title = "Forecast";

export async function render(root) {
  const { models } = await get("/models");
  root.append(h("h1", {}, "Forecast"));
  if (!models.length) {
    root.append(card(null, h("p", { class: "muted", id: "forecast-none" },
      "No trained model yet: train one on the Train page (or `thunes train`).")));
    return;
  }
  const select = h("select", { id: "forecast-model" }, models.map((m) =>
    h("option", { value: m.name }, `${m.name} (${m.symbol || "?"} ${m.timeframe || ""}, ${m.model_type})`)));
  const out = h("div", { id: "forecast-result" });
  const el = h("div", { class: "chart", id: "forecast-chart" });
  root.append(card(null, h("div", { class: "row" }, h("label", {}, "Model", select)), out), card("On the chart", el));
  const c = candleChart(el);
  let extra = [];

  async function show() {
    out.replaceChildren(h("p", { class: "muted" }, "forecasting…"));
    try {
      const f = await get(`/forecast?model=${encodeURIComponent(select.value)}`);
      out.replaceChildren(kv([
        ["pair", `${f.symbol} ${f.timeframe}`], ["as of candle", when(f.as_of_ms)],
        ["horizon", `${f.horizon_bars} bars (to ${when(f.target_ms)})`],
        ["predicted return", h("span", { class: f.pred_return >= 0 ? "pos" : "neg", id: "forecast-return" },
                               `${num(f.pred_return_pct, 3)} %`)],
        ["predicted volatility", `${num(100 * f.pred_vol, 3)} %`],
        ["price: last → expected", `${px(f.last_close)} → ${px(f.price)}`],
        ["interval ±1σ", `${px(f.band_1s[0])} – ${px(f.band_1s[1])}`],
        ["interval ±2σ", `${px(f.band_2s[0])} – ${px(f.band_2s[1])}`],
        ["model", `${f.model} (${f.backend}), trained ${f.model_trained_at || "?"} on data up to ${f.model_data_until || "?"}`],
        ["candles", f.candles_source]]));
      const data = await get(`/candles?${new URLSearchParams({ symbol: f.symbol, timeframe: f.timeframe, limit: 120,
                                                               until: new Date(f.as_of_ms + 86_400_000).toISOString().slice(0, 10) })}`);
      drawCandles(c, data);
      for (const s of extra) c.chart.removeSeries(s);
      const t0 = f.as_of_ms / 1000, t1 = f.target_ms / 1000;
      const line = (a, b, color, style) => {
        const s = c.chart.addLineSeries({ color, lineWidth: 2, lineStyle: style, priceLineVisible: false, lastValueVisible: true });
        s.setData([{ time: t0, value: a }, { time: t1, value: b }]);
        return s;
      };
      extra = [line(f.last_close, f.price, "#f0b429", 0),
               line(f.last_close, f.band_1s[0], "#3fa7ff", 2), line(f.last_close, f.band_1s[1], "#3fa7ff", 2),
               line(f.last_close, f.band_2s[0], "#8a96a3", 1), line(f.last_close, f.band_2s[1], "#8a96a3", 1)];
      c.chart.timeScale().fitContent();
      el.dataset.band = `${f.band_2s[0]},${f.band_2s[1]}`;
    } catch (err) { out.replaceChildren(errorLine(err)); }
  }
  select.addEventListener("change", show);
  await show();
  return () => c.chart.remove();
}
