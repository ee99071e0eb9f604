// The dashboard shell: sign-in, the page menu (hash routes), the signed-in user's role. Each page module exports
// `title` and `render(root, session)`, which may return a cleanup function called when the page is left.
import * as api from "./api.js";
import { h, errorLine } from "./ui.js";

const PAGES = {
  bot: () => import("./pages/bot.js"),
  chart: () => import("./pages/chart.js"),
  trades: () => import("./pages/trades.js"),
  performance: () => import("./pages/performance.js"),
  backtest: () => import("./pages/backtest.js"),
  prepare: () => import("./pages/prepare.js"),
  train: () => import("./pages/train.js"),
  forecast: () => import("./pages/forecast.js"),
  config: () => import("./pages/config.js"),
  audit: () => import("./pages/audit.js"),
};
const LABELS = { bot: "Bot", chart: "Chart", trades: "Trades", performance: "Performance", backtest: "Backtest",
                 prepare: "Prepare", train: "Train", forecast: "Forecast", config: "Config", audit: "Audit" };

let session = null;   // {name, role, canWrite}
let cleanup = null;

const $ = (id) => document.getElementById(id);

function showLogin(message = "") {
  session = null;
  $("nav").hidden = true;
  $("who").textContent = "";
  $("page").replaceChildren();
  $("login").hidden = false;
  $("login-error").textContent = message;
}

async function start() {
  if (!api.token()) return showLogin();
  try {
    const me = await api.get("/auth/me");
    session = { name: me.name, role: me.role, canWrite: me.role === "trader" };
  } catch (err) {
    api.logout();
    return showLogin(err.status === 401 ? "" : err.message);
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("nav").replaceChildren(...Object.keys(PAGES).map((k) => h("a", { href: `#/${k}`, "data-page": k }, LABELS[k])));
  $("who").replaceChildren(`${session.name} (${session.role}) `,
    h("button", { id: "logout", onclick: () => { api.logout(); location.hash = ""; showLogin(); } }, "Sign out"));
  route();
}

async function route() {
  if (!session) return;
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "bot";
  if (!PAGES[name]) { location.hash = "#/bot"; return; }
  for (const a of $("nav").children) a.classList.toggle("active", a.dataset.page === name);
  $("nav").classList.remove("open");
  if (cleanup) { try { cleanup(); } catch (_) { /* a page's cleanup must not block the next */ } cleanup = null; }
  const root = h("div", { id: `page-${name}`, "data-page": name });
  $("page").replaceChildren(root);
  document.title = `THUNES · ${LABELS[name]}`;
  try {
    const mod = await PAGES[name]();
    cleanup = (await mod.render(root, session)) || null;
    root.setAttribute("data-ready", "1");
  } catch (err) {
    root.append(errorLine(err));
    root.setAttribute("data-ready", "error");
  }
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  $("login-error").textContent = "";
  try {
    await api.login(form.get("username"), form.get("password"));
    e.target.reset();
    await start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});
$("menu").addEventListener("click", () => $("nav").classList.toggle("open"));
window.addEventListener("hashchange", route);
window.addEventListener("thunes:logout", () => showLogin("your session ended: sign in again"));
start();
