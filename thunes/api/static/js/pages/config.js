// Config: the effective settings the server runs with (every secret and URL password masked by the API).
import { get } from "../api.js";
import { h, card, table } from "../ui.js";

export const title = "Config";

export async function render(root) {
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
  root.append(h("h1", {}, "Config"),
    card(null, h("p", { class: "muted" }, "The effective settings (file, THUNES_* environment, defaults), secrets masked. ",
                 "Change them in the settings file or the environment and restart; see docs/configuration.md."), filter, body));
}
