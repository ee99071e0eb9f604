// Train: the trained models with their metrics and baselines; train a new one as a background task (traders).
import { get, post } from "../api.js";
import { h, card, kv, table, num, errorLine } from "../ui.js";

export const title = "Train";

export async function render(root, session) {
  const models = h("div", { id: "models" });
  const taskBox = h("div", { id: "train-task" });
  let timer = null;
  async function load() {
    const r = await get("/models");
    models.replaceChildren(table([["model", (m) => m.name], ["type", (m) => m.model_type], ["pair", (m) => `${m.symbol || "–"} ${m.timeframe || ""}`],
      ["features", (m) => m.feature_set],
      ["metrics", (m) => Object.entries(m.metrics || {}).filter(([, v]) => typeof v === "number").slice(0, 8)
        .map(([k, v]) => `${k} ${num(v, 4)}`).join(" · ")]], r.models, "no trained model yet"));
  }
  const form = h("form", { class: "row", id: "train-form" },
    h("label", {}, "Pair", h("input", { name: "symbol", value: "BTC/USDT", size: 10 })),
    h("label", {}, "Timeframe", h("input", { name: "timeframe", value: "1h", size: 4 })),
    h("label", {}, "Model", h("select", { name: "model" }, h("option", { value: "xgb" }, "XGBoost"), h("option", { value: "lstm" }, "LSTM"))),
    h("label", {}, "Epochs", h("input", { name: "epochs", type: "number", value: 5, min: 1, max: 1000, size: 4 })),
    h("label", {}, "Since", h("input", { name: "since", placeholder: "YYYY-MM-DD", size: 10 })),
    h("label", {}, "Until", h("input", { name: "until", placeholder: "YYYY-MM-DD", size: 10 })),
    h("button", { type: "submit", class: "write" }, "Train"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      const t = await post("/tasks/train", { symbol: f.get("symbol").toUpperCase(), timeframe: f.get("timeframe"),
                                             model: f.get("model"), epochs: Number(f.get("epochs")),
                                             since: f.get("since") || null, until: f.get("until") || null });
      clearInterval(timer);
      timer = setInterval(async () => {
        const s = await get(`/tasks/${t.id}`);
        taskBox.replaceChildren(kv([["state", s.state], ["step", s.message || "–"]]), h("progress", { max: 1, value: s.progress ?? 0 }),
          s.error ? errorLine(s.error) : null, s.result ? h("pre", {}, JSON.stringify(s.result, null, 2)) : null);
        if (!["queued", "running"].includes(s.state)) { clearInterval(timer); load(); }
      }, 1000);
    } catch (err) { taskBox.replaceChildren(errorLine(err)); }
  });
  root.append(h("h1", {}, "Train"), session.canWrite ? card("Train a model", form, taskBox) : null, card("Models", models));
  await load();
  return () => clearInterval(timer);
}
