// The API client: tokens (kept in sessionStorage: they end with the tab), JSON calls with one refresh on 401,
// and the live event WebSocket. The dashboard calls nothing but /api/v1.
export const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const store = {
  get access() { return sessionStorage.getItem("thunes.access"); },
  get refresh() { return sessionStorage.getItem("thunes.refresh"); },
  set(pair) {
    sessionStorage.setItem("thunes.access", pair.access_token);
    if (pair.refresh_token) sessionStorage.setItem("thunes.refresh", pair.refresh_token);
  },
  clear() { sessionStorage.removeItem("thunes.access"); sessionStorage.removeItem("thunes.refresh"); },
};

export function token() { return store.access; }
export function logout() { store.clear(); }

async function raw(method, path, body, auth = true) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && store.access) headers["Authorization"] = `Bearer ${store.access}`;
  return fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function refreshTokens() {
  if (!store.refresh) return false;
  const r = await raw("POST", "/auth/refresh", { refresh_token: store.refresh }, false);
  if (!r.ok) { store.clear(); return false; }
  store.set(await r.json());
  return true;
}

export async function call(method, path, body) {
  let r = await raw(method, path, body);
  if (r.status === 401 && (await refreshTokens())) r = await raw(method, path, body);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    if (r.status === 401) { store.clear(); window.dispatchEvent(new Event("thunes:logout")); }
    throw new ApiError(r.status, (data && data.error) || `${r.status} ${r.statusText}`);
  }
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});

export async function login(username, password) {
  const r = await raw("POST", "/auth/login", { username, password }, false);
  const data = await r.json();
  if (!r.ok) throw new ApiError(r.status, data.error || "login refused");
  store.set(data);
  return data;
}

// Live events: one JSON object per bus event; reconnects (with a fresh token) until closed by the page.
export function events(onEvent, onState) {
  let ws = null, closed = false, timer = null;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}${BASE}/events/ws?token=${encodeURIComponent(store.access || "")}`);
    ws.onopen = () => onState && onState("live");
    ws.onmessage = (m) => onEvent(JSON.parse(m.data));
    ws.onclose = async (e) => {
      if (closed) return;
      onState && onState(`disconnected (${e.code})`);
      if (e.code === 4401) await refreshTokens();
      timer = setTimeout(open, 2000);
    };
  };
  open();
  return () => { closed = true; clearTimeout(timer); if (ws) ws.close(); };
}
