// Prepare: the candle series in the store (range, rows, missing bars by the timeframe's spacing).
import { get } from "../api.js";
import { h, card, table, when, num } from "../ui.js";

export const title = "Prepare";
const UNIT = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export async function render(root) {
  const r = await get("/data");
  const step = (tf) => Number(tf.slice(0, -1)) * (UNIT[tf.slice(-1)] || NaN);
  root.append(h("h1", {}, "Prepare"),
    card("Stored candles", table([
      ["pair", (s) => s.symbol], ["timeframe", (s) => s.timeframe], ["first", (s) => when(s.first_ms)], ["last", (s) => when(s.last_ms)],
      ["rows", (s) => num(s.rows, 0)],
      ["missing bars", (s) => { const exp = Math.round((s.last_ms - s.first_ms) / step(s.timeframe)) + 1;
                                return Number.isFinite(exp) ? num(Math.max(0, exp - s.rows), 0) : "–"; }],
    ], r.series, "the store is empty: fill it with `thunes data download` or `thunes data import` (charts and runs use the sample files meanwhile)")));
}
