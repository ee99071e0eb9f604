// Config: the effective settings the server runs with (every secret and URL password masked by the API), and a
// settings file checked before use: every problem at once, or the values it gives with their sources.
import { get, post } from "../api.js";
import { h, card, table, errorLine } from "../ui.js";

export const title = "Config";

export async function render(root, session) {
  const settings = await get("/settings");
  const rows = [];
  const walk = (prefix, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    else rows.push({ key: prefix, value: Array.isArray(v) ? JSON.stringify(v) : v === null ? "–" : String(v) });
  };
  walk("", settings);
  const filter = h("input", { placeholder: "filter (e.g. risk.)", id: "config-filter", size: 24 });
  const body = h("div", { id: "config-table" });
  const draw = () => body.replaceChildren(table([["setting", (r) => r.key], ["value", (r) => r.value]],
    rows.filter((r) => r.key.includes(filter.value.trim()))));
  filter.addEventListener("input", draw);
  draw();
  const text = h("textarea", { id: "config-text", rows: 10, cols: 60, spellcheck: "false",
                               placeholder: '[risk]\nmax_positions = 3\nmax_daily_loss = "50"' });
  const fmt = h("select", { name: "format" }, h("option", { value: "toml" }, "TOML"), h("option", { value: "json" }, "JSON"));
  const verdict = h("div", { id: "config-check" });
  const checkForm = h("form", { id: "config-check-form" }, text, h("div", { class: "row" }, h("label", {}, "Format", fmt),
    h("button", { type: "submit", id: "config-validate" }, "Validate")), verdict);
  checkForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await post("/config/check", { text: text.value, format: fmt.value });
      verdict.replaceChildren(r.ok
        ? h("div", {}, h("p", {}, h("span", { class: "badge ok", id: "config-verdict" }, "valid")),
            table([["setting", (x) => x.key], ["value", (x) => x.value], ["source", (x) => x.source]],
                  r.rows.filter((x) => x.source !== "default"), "every value is a default"))
        : h("div", {}, h("p", {}, h("span", { class: "badge bad", id: "config-verdict" }, `${r.problems.length} problem(s)`)),
            h("ul", {}, r.problems.map((p) => h("li", { class: "error" }, p)))));
    } catch (err) { verdict.replaceChildren(errorLine(err)); }
  });
  root.append(h("h1", {}, "Config"),
    card(null, h("p", { class: "muted" }, "The effective settings (file, THUNES_* environment, defaults), secrets masked. ",
                 "Change them in the settings file or the environment and restart."), filter, body),
    session.canWrite && card("Check a settings file", h("p", { class: "muted" }, "Paste a settings file: it is validated with this server's ",
                 ".env and THUNES_* environment, as `thunes config check FILE` does. Nothing is written."), checkForm));
}
