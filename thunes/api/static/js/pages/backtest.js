// Backtest / Optimise: start a run as a background task (traders), follow its progress, read its results and
// HTML report; every earlier run is listed.
import { get, post, call } from "../api.js";
import { h, card, kv, table, num, when, errorLine } from "../ui.js";

export const title = "Backtest";

function field(label, attrs) { return h("label", {}, label, h("input", attrs)); }

export async function render(root, session) {
  const runsBox = h("div", { id: "runs" });
  const taskBox = h("div", { id: "task" });
  const result = h("div", { id: "run-result" });
  let timer = null;

  const form = h("form", { class: "row", id: "backtest-form" },
    field("Strategy", { name: "strategy", value: "sma_cross", size: 10 }),
    field("Pair", { name: "symbol", value: "BTC/USDT", size: 10 }),
    field("Timeframe", { name: "timeframe", value: "1h", size: 4 }),
    field("Params (JSON)", { name: "params", value: '{"fast": 10, "slow": 50}', size: 20 }),
    field("Since", { name: "since", placeholder: "YYYY-MM-DD", size: 10 }),
    field("Until", { name: "until", placeholder: "YYYY-MM-DD", size: 10 }),
    h("label", {}, "Data", h("select", { name: "source" }, ["auto", "store", "sample"].map((s) => h("option", { value: s }, s)))),
    field("Trials (optimise)", { name: "trials", type: "number", value: 20, min: 1, max: 10000, size: 5 }),
    h("button", { type: "submit", id: "run-backtest", class: "write", value: "backtest" }, "Run backtest"),
    h("button", { type: "submit", id: "run-optimize", class: "write", value: "optimize" }, "Optimise"));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const kind = e.submitter?.value || "backtest";
    const f = new FormData(form);
    taskBox.replaceChildren();
    try {
      const params = f.get("params").trim() ? JSON.parse(f.get("params")) : {};
      const body = { strategy: f.get("strategy").trim(), symbol: f.get("symbol").trim().toUpperCase(),
                     timeframe: f.get("timeframe").trim(), params, source: f.get("source"),
                     since: f.get("since") || null, until: f.get("until") || null };
      if (kind === "optimize") body.trials = Number(f.get("trials"));
      const task = await post(`/tasks/${kind}`, body);
      follow(task.id);
    } catch (err) { taskBox.replaceChildren(errorLine(err)); }
  });

  function follow(id) {
    clearInterval(timer);
    const tick = async () => {
      const t = await get(`/tasks/${id}`);
      taskBox.replaceChildren(h("div", { "data-state": t.state, id: "task-state" },
        kv([["task", `${t.kind} ${t.id}`], ["state", h("span", { class: "badge" }, t.state)], ["step", t.message || "–"]]),
        h("progress", { max: 1, value: t.progress ?? 0 }),
        t.error ? errorLine(t.error) : null,
        ["queued", "running"].includes(t.state) && session.canWrite
          ? h("button", { class: "write", onclick: () => post(`/tasks/${id}/cancel`) }, "Cancel") : null));
      if (!["queued", "running"].includes(t.state)) {
        clearInterval(timer);
        await loadRuns();
        if (t.result?.run_id) showRun(t.kind === "optimize" ? "optimize" : "backtest", t.result.run_id, t.result);
      }
    };
    timer = setInterval(tick, 500);
    tick();
  }

  async function showRun(kind, id, taskResult) {
    result.replaceChildren(h("p", { class: "muted" }, "loading…"));
    try {
      const detail = await get(`/runs/${kind}/${id}`);
      const stats = detail.stats || detail.best_stats || taskResult?.best_stats || {};
      const parts = [h("h2", {}, `${kind} ${id}`),
        kv([["strategy", detail.strategy || detail.spec?.strategy || "–"], ["pair", `${detail.symbol || detail.spec?.symbol || "–"} ${detail.timeframe || detail.spec?.timeframe || ""}`],
            ["params", JSON.stringify(detail.params || detail.best_params || {})],
            ...(taskResult?.recommendation ? [["recommendation", taskResult.recommendation]] : [])]),
        h("div", { id: "run-stats" }, table([["statistic", (r) => r[0]], ["value", (r) => (typeof r[1] === "number" ? num(r[1], 4) : String(r[1]))]],
          Object.entries(stats).filter(([, v]) => v !== null && typeof v !== "object")))];
      if (kind === "optimize") parts.push(...studyParts(detail));
      if (kind === "backtest") parts.push(h("p", {}, h("a", { href: `#/chart?run=${encodeURIComponent(id)}&symbol=${encodeURIComponent(detail.symbol)}&timeframe=${detail.timeframe}&strategy=${detail.strategy}&params=${encodeURIComponent(JSON.stringify(detail.params || {}))}&limit=50000` }, "Trades on the chart")));
      const report = h("div");
      parts.push(h("button", { onclick: async () => {
        const html = await call("GET", `/runs/${kind}/${id}/report`);
        // report.html runs the report's inline scripts under its own policy, in an opaque origin (no tokens).
        const frame = h("iframe", { class: "report", sandbox: "allow-scripts", src: "report.html", title: "HTML report" });
        const onReady = (e) => {
          if (e.source !== frame.contentWindow || e.data !== "report-frame-ready") return;
          removeEventListener("message", onReady);
          frame.contentWindow.postMessage(html, "*");
          frame.dataset.loaded = "1";
        };
        addEventListener("message", onReady);
        report.replaceChildren(frame);
      } }, "Show the HTML report"), report);
      result.replaceChildren(...parts);
    } catch (err) { result.replaceChildren(errorLine(err)); }
  }

  async function loadRuns() {
    const r = await get("/runs");
    runsBox.replaceChildren(table([["when", (x) => when(x.created_ms)], ["kind", (x) => x.kind], ["run", (x) => x.id],
      ["strategy", (x) => x.strategy || "–"], ["pair", (x) => `${x.symbol || ""} ${x.timeframe || ""}`],
      ["", (x) => h("button", { onclick: () => showRun(x.kind, x.id) }, "Open")]], r.runs, "no run yet"));
  }

  root.append(h("h1", {}, "Backtest / Optimise"),
    session.canWrite ? card("New run", form, taskBox) : null, card("Result", result), card("Runs", runsBox));
  await loadRuns();
  return () => clearInterval(timer);
}

// A study's overfitting statistics, recommendation, Pareto front and walk-forward folds (its summary.json).
function studyParts(d) {
  const out = [];
  const stat = (x) => (x && typeof x === "object" ? Object.entries(x).filter(([, v]) => typeof v !== "object")
    .map(([k, v]) => `${k} ${typeof v === "number" ? num(v, 4) : v}`).join(" · ") : "–");
  out.push(h("h2", {}, "Overfitting and recommendation"), h("div", { id: "study-stats" }, kv([
    ["trials", stat(d.trials)], ["deflated Sharpe (DSR)", stat(d.dsr)], ["PBO", stat(d.pbo)],
    ["recommendation", d.recommendation ? h("span", { class: `badge ${d.recommendation.deploy ? "ok" : "warn"}` },
      d.recommendation.deploy ? "deploy" : "do not deploy") : "–"],
    ["reasons", (d.recommendation?.reasons || []).join("; ") || "–"], ["data", d.data || "–"]])));
  if ((d.pareto || []).length > 1) out.push(h("h2", {}, "Pareto front"), table([["trial", (t) => t.number],
    ["values", (t) => (t.values || []).map((v) => num(v, 4)).join(" / ")], ["params", (t) => JSON.stringify(t.params)]], d.pareto));
  if (d.walk_forward) out.push(h("h2", {}, `Walk-forward (${d.walk_forward.scheme})`),
    table(Object.keys(d.walk_forward.folds[0] || {}).map((k) => [k, (r) => (typeof r[k] === "number" ? num(r[k], 4) : String(r[k] ?? "–"))]),
          d.walk_forward.folds, "no fold"),
    h("p", {}, "out-of-sample: ", stat(d.walk_forward.oos_stats)));
  return out;
}
