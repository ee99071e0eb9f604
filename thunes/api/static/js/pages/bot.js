// Bot: state, pairs, open positions with unrealised PnL, open orders, today's PnL, risk state, the switches
// (each asks for confirmation; shown to traders only) and the live events as they arrive.
import { get, post, events } from "../api.js";
import { h, card, kv, table, num, px, signed, when, confirmAction } from "../ui.js";

export const title = "Bot";

export async function render(root, session) {
  const state = h("div", { id: "bot-state" });
  const risk = h("div", { id: "bot-risk" });
  const controls = h("div", { class: "row", id: "bot-controls" });
  const positions = h("div", { id: "bot-positions" });
  const pairs = h("div", { id: "bot-pairs" });
  const message = h("p", { class: "error", role: "alert", id: "bot-message" });  // the last refresh's error
  const actionMsg = h("p", { class: "error", role: "alert", id: "bot-action-message" });  // the last action's
  const live = h("span", { class: "badge", id: "events-state" }, "connecting");
  const log = h("div", { id: "events" });
  root.append(h("h1", {}, "Bot"), message, actionMsg,
    h("div", { class: "grid" }, card("State", state), card("Risk", risk, session.canWrite ? controls : null)),
    card("Open positions", positions), card("Pairs", pairs),
    card(h("span", {}, "Live events ", live), log));

  let last = null;
  async function refresh() {
    try {
      const [st, rk] = await Promise.all([get("/bot/status"), get("/bot/risk")]);
      last = { st, rk };
      draw(st, rk);
      message.textContent = "";
    } catch (err) { message.textContent = err.message; }
  }

  function draw(st, rk) {
    const running = st.running && st.state;
    state.replaceChildren(kv([
      ["state", h("span", { class: `badge ${st.paused ? "warn" : running === "running" ? "ok" : "bad"}`, id: "bot-state-badge" },
                  st.paused ? "paused" : (st.state || "stopped"))],
      ["bot time", when(st.now_ms)],
      ["today's PnL", signed(st.pnl_today ?? rk.daily_pnl)],
      ["realised total", signed(st.realised_total)],
      ["open orders", String(st.open_orders ?? "–")],
      ["candles / orders", `${st.candles ?? "–"} / ${st.orders ?? "–"}`],
      ["folder", h("span", { class: "muted" }, st.state_dir)],
    ]));
    risk.replaceChildren(kv([
      ["mode", h("span", { class: `badge ${rk.mode === "ACTIVE" ? "ok" : "bad"}` }, rk.mode || "–")],
      ["kill-switch", h("span", { class: `badge ${rk.kill_switch ? "bad" : "ok"}`, id: "kill-state" },
                        rk.kill_switch ? `ON: ${rk.kill_reason || ""}` : "off")],
      ["reduce-only", h("span", { class: `badge ${rk.reduce_only ? "warn" : "ok"}` }, rk.reduce_only ? "ON" : "off")],
      ["daily PnL / limit", h("span", {}, signed(rk.daily_pnl), ` / −${num(rk.max_daily_loss)}`)],
      ["unrealised", signed(rk.unrealised)],
      ["open breakers", (rk.open_breakers || []).join(", ") || "none"],
    ]));
    const pos = st.positions || [];
    positions.replaceChildren(table([
      ["symbol", (p) => p.symbol], ["qty", (p) => p.qty], ["avg price", (p) => px(p.avg_price)],
      ["mark", (p) => px(p.mark)], ["cost", (p) => num(p.cost)], ["unrealised", (p) => signed(p.unrealised)],
      ...(session.canWrite ? [["", (p) => h("button", { class: "danger write", onclick: () => act(
        `Sell the whole ${p.symbol} position now?`, "/bot/force-exit", { symbol: p.symbol }, "force exit by operator") }, "Force exit")]] : []),
    ], pos, "no open position"));
    pairs.replaceChildren(table([
      ["pair", (p) => p.symbol], ["tf", (p) => p.timeframe], ["strategy", (p) => p.strategy],
      ["params", (p) => JSON.stringify(p.params)], ["last bar", (p) => when(p.last_bar_ts)],
      ["bars", (p) => p.bars_processed], ["orders", (p) => p.orders_sent],
    ], st.pairs || [], st.running ? "no pair" : "no bot running"));
    if (session.canWrite) drawControls(st, rk);
  }

  function drawControls(st, rk) {
    const b = (id, label, fn, danger = false) => h("button", { id, class: `write${danger ? " danger" : ""}`, onclick: fn }, label);
    controls.replaceChildren(
      st.paused
        ? b("resume", "Resume", () => act("Resume opening positions?", "/bot/resume", {}, "resumed by operator"))
        : b("pause", "Pause", () => act("Pause the bot? No new entries; exits still go out.", "/bot/pause", {}, "paused by operator")),
      b("kill", rk.kill_switch ? "Kill-switch off" : "Kill-switch on",
        () => act(rk.kill_switch ? "Turn the kill-switch OFF (orders allowed again)?" : "Turn the kill-switch ON? Every new order is refused.",
                  "/bot/kill-switch", { on: !rk.kill_switch }, "operator from the dashboard", true), true),
      b("reduce", rk.reduce_only ? "Reduce-only off" : "Reduce-only on",
        () => act(`Turn reduce-only ${rk.reduce_only ? "OFF" : "ON"}?`, "/bot/reduce-only", { on: !rk.reduce_only }, "operator from the dashboard", true)),
      b("stop", "Stop", () => act("Stop the bot after its current candle?", "/bot/stop", {}, "stopped from the dashboard"), true),
    );
  }

  async function act(question, path, body, defaultReason, reasonRequired = false) {
    const reason = await confirmAction(question, defaultReason);
    if (reason === null) return;
    actionMsg.textContent = "";
    if (reasonRequired && !reason) { actionMsg.textContent = "a reason is required"; return; }
    try {
      await post(path, { ...body, reason: reason || undefined });
      await refresh();
    } catch (err) { actionMsg.textContent = err.message; }
  }

  await refresh();
  const timer = setInterval(refresh, 3000);
  let pending = null;
  const stop = events((ev) => {
    const line = h("div", { "data-kind": ev.kind }, h("span", { class: "muted" }, when(ev.ts_ms ?? ev.time_ms ?? ev.ts ?? Date.now()), " "),
                   h("b", {}, ev.kind), " ", describe(ev));
    log.prepend(line);
    while (log.children.length > 200) log.lastChild.remove();
    if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 500);
  }, (s) => { live.textContent = s; live.className = `badge ${s === "live" ? "ok" : "warn"}`; });
  return () => { clearInterval(timer); clearTimeout(pending); stop(); };
}

function describe(ev) {
  const skip = new Set(["kind", "ts_ms", "time_ms", "ts"]);
  return Object.entries(ev).filter(([k, v]) => !skip.has(k) && v !== null && v !== "" && typeof v !== "object")
    .slice(0, 8).map(([k, v]) => `${k}=${v}`).join(" ");
}
