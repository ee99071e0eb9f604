// Small DOM helpers shared by the pages: element builder, tables, numbers, dates, the confirmation dialog.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false)
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export const num = (v, digits = 2) => {
  if (v === null || v === undefined || v === "") return "–";
  const n = Number(v);
  return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(digits, 2) }) : String(v);
};
export const signed = (v, digits = 2) => h("span", { class: Number(v) > 0 ? "pos" : Number(v) < 0 ? "neg" : "" }, num(v, digits));
export const when = (ms) => (ms ? new Date(Number(ms)).toISOString().replace("T", " ").slice(0, 16) : "–");

export function table(columns, rows, empty = "none") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, f]) => h("td", {}, f(r))))))));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export const card = (title, ...body) => h("div", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
export const errorLine = (err) => h("p", { class: "error", role: "alert" }, String(err.message || err));

// A write asks first: resolves to the typed reason, or null when cancelled.
export function confirmAction(text, defaultReason = "") {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const reason = document.getElementById("confirm-reason");
  reason.value = defaultReason;
  return new Promise((resolve) => {
    dlg.onclose = () => resolve(dlg.returnValue === "ok" ? reason.value.trim() : null);
    dlg.returnValue = "";
    dlg.showModal();
  });
}

// A tiny SVG line/bar plot (equity, drawdown, PnL bars, loss curves) so pages need no second chart library.
export function plot(series, { bars = false, height = 220, zero = true } = {}) {
  const W = 800, H = height, pad = 30;
  const all = series.flatMap((s) => s.y.filter((v) => v !== null && Number.isFinite(v)));
  if (!all.length) return h("p", { class: "muted" }, "no data");
  let lo = Math.min(...all), hi = Math.max(...all);
  if (zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  if (hi === lo) hi = lo + 1;
  const n = Math.max(...series.map((s) => s.y.length));
  const X = (i) => pad + (i * (W - 2 * pad)) / Math.max(1, n - 1);
  const Y = (v) => H - pad - ((v - lo) * (H - 2 * pad)) / (hi - lo);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "plot");
  svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); svg.append(e); return e; };
  add("line", { x1: pad, x2: W - pad, y1: Y(0), y2: Y(0), stroke: "#2a3540" });
  add("text", { x: 2, y: pad, fill: "#8a96a3", "font-size": 11 }).textContent = num(hi);
  add("text", { x: 2, y: H - pad, fill: "#8a96a3", "font-size": 11 }).textContent = num(lo);
  for (const s of series) {
    if (bars) {
      const w = Math.max(1, (W - 2 * pad) / n - 2);
      s.y.forEach((v, i) => add("rect", { x: X(i) - w / 2, width: w, y: Math.min(Y(v), Y(0)), height: Math.abs(Y(v) - Y(0)) || 1,
                                          fill: v >= 0 ? "#26a69a" : "#ef5350" }));
    } else {
      const d = s.y.map((v, i) => (v === null ? "" : `${i ? "L" : "M"}${X(i).toFixed(1)},${Y(v).toFixed(1)}`)).join("");
      add("path", { d, fill: "none", stroke: s.color || "#3fa7ff", "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" });
    }
  }
  if (series.some((s) => s.label)) series.forEach((s, i) =>
    add("text", { x: W - pad - 150, y: 14 + 13 * i, fill: s.color || "#3fa7ff", "font-size": 11 }).textContent = s.label || "");
  return svg;
}

export function downloadCsv(filename, rows) {
  const cols = Object.keys(rows[0] || {});
  const esc = (v) => { const s = v === null || v === undefined ? "" : String(v); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
  const text = [cols.join(","), ...rows.map((r) => cols.map((c) => esc(r[c])).join(","))].join("\n") + "\n";
  const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: filename });
  document.body.append(a); a.click(); a.remove();
}

// A price with the decimals its size needs (64,919.36; 2,387.58; 0.6327; 0.00001234).
export const px = (v) => {
  if (v === null || v === undefined || v === "") return "–";
  const a = Math.abs(Number(v));
  return num(v, a >= 100 ? 2 : a >= 1 ? 4 : 8);
};
