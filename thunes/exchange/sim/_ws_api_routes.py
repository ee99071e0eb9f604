"""The WebSocket API of the local exchange (``/ws-api/v3``): the user data stream, as ccxt.pro uses it.

Requests are ``{"id", "method", "params"}`` frames; answers are ``{"id", "status", "result"}`` or
``{"id", "status", "error": {"code", "msg"}}`` with the REST codes. Methods served:
``userDataStream.subscribe.signature`` (signed params), ``session.logon`` then
``userDataStream.subscribe``, ``userDataStream.unsubscribe``, ``ping`` and ``time``; anything else is a
-1000. Once subscribed, the account's ``executionReport`` events arrive as
``{"subscriptionId", "event"}`` (sent by the hub, ``_ws.py``). Signed params are checked like REST ones:
API key, HMAC signature over the sorted ``key=value`` pairs, timestamp window.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from aiohttp import web

from thunes.exchange.sim import _params as P
from thunes.exchange.sim._http import ServerContext, check_signature
from thunes.exchange.sim._params import SimReject

__all__ = ["add_ws_api_routes"]


def add_ws_api_routes(router: web.UrlDispatcher, ctx: ServerContext) -> None:
    """Register ``/ws-api/v3`` on ``router``."""
    router.add_get("/ws-api/v3", partial(ws_api, ctx))


async def ws_api(ctx: ServerContext, request: web.Request) -> web.WebSocketResponse:
    """One WebSocket API connection, answering requests until it closes."""
    ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    hub = ctx.hub
    hub.user[ws] = {}
    return await hub.serve(ws, {"session_key": None}, partial(_api_request, ctx), hub.user)


async def _api_request(ctx: ServerContext, ws: web.WebSocketResponse, state: dict[str, Any],
                       text: str) -> None:
    """Answer one request frame; a frame that is not a JSON object with object params is a -1100."""
    try:
        msg = json.loads(text)
        req_id, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError("params is not an object")
    except (ValueError, AttributeError):
        await ctx.hub.send(ws, {"id": None, "status": 400,
                                "error": {"code": -1100, "msg": "Malformed request."}})
        return
    try:
        result = _call(ctx, ws, state, method, params)
        await ctx.hub.send(ws, {"id": req_id, "status": 200, "result": result})
    except SimReject as exc:
        await ctx.hub.send(ws, {"id": req_id, "status": exc.rejection.status,
                                "error": {"code": exc.rejection.code, "msg": exc.rejection.msg}})


def _call(ctx: ServerContext, ws: web.WebSocketResponse, state: dict[str, Any], method: Any,
          params: dict[str, Any]) -> dict[str, Any]:
    """The result of one WebSocket API method (``SimReject`` for Binance's refusals)."""
    hub = ctx.hub
    if method == "userDataStream.subscribe.signature":
        return {"subscriptionId": hub.subscribe_user(ws, _verified_key(ctx, params))}
    if method == "session.logon":
        state["session_key"] = _verified_key(ctx, params)
        now = ctx.auth_now()
        return {"apiKey": state["session_key"], "authorizedSince": now, "serverTime": now}
    if method == "userDataStream.subscribe":
        if not state["session_key"]:
            raise P.reject(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return {"subscriptionId": hub.subscribe_user(ws, state["session_key"])}
    if method == "userDataStream.unsubscribe":
        value = P.ws_value(params.get("subscriptionId"))
        sub = P.int_param({} if value is None else {"subscriptionId": value}, "subscriptionId")
        if sub is None:
            hub.user[ws].clear()
        else:
            hub.user[ws].pop(sub, None)
        return {}
    if method == "ping":
        return {}
    if method == "time":
        return {"serverTime": ctx.auth_now()}
    raise P.reject(-1000, f"Unsupported method {method!r} on the local exchange.")


def _verified_key(ctx: ServerContext, params: dict[str, Any]) -> str:
    """The API key of signed WebSocket API params, after the REST checks (key, signature, timestamp)."""
    key = str(params.get("apiKey", ""))
    secret = ctx.api_secret(key)
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    check_signature(secret, payload, str(params.get("signature", "")))
    # JSON values go through the REST parsers: 1e400, NaN, "abc" or a list is a -1100, never a crash
    fields = {k: v for k in ("timestamp", "recvWindow") if (v := P.ws_value(params.get(k))) is not None}
    ts, recv = P.timestamp_param(fields), P.recv_window_param(fields)
    now = ctx.auth_now()
    if ts >= now + 1000 or now - ts > recv:
        raise P.reject(-1021, "Timestamp for this request is outside of the recvWindow.")
    return key
