"""The market streams of the local exchange: Binance's raw and combined websocket streams.

``/ws/<stream>/<stream>...`` (raw: events as they are) and ``/stream?streams=a/b`` (combined: each event
wrapped as ``{"stream", "data"}``), plus a bare ``/ws``; streams are ``<symbol>@trade`` and
``<symbol>@kline_<interval>`` (others are accepted and stay silent). On an open socket a client sends
Binance's control messages: ``SUBSCRIBE``/``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY`` and
``GET_PROPERTY`` of ``combined``; bad ones get Binance's error frames. The hub (``_ws.py``) pings the
socket and sends the events.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

from aiohttp import web

from thunes.exchange.sim._http import ServerContext

__all__ = ["add_stream_routes"]

# The stream names Binance knows (a SUBSCRIBE to anything else is refused); always fullmatch
_STREAM = re.compile(r"[a-z0-9]+@(trade|aggTrade|kline_[0-9]+[smhdwM]|bookTicker|depth[0-9]*(@100ms)?"
                     r"|ticker|miniTicker)")


def add_stream_routes(router: web.UrlDispatcher, ctx: ServerContext) -> None:
    """Register ``/ws``, ``/ws/<streams>`` and ``/stream`` on ``router``."""
    handler = partial(market_ws, ctx)
    router.add_get("/ws", handler)
    router.add_get("/ws/{tail:.*}", handler)
    router.add_get("/stream", handler)


async def market_ws(ctx: ServerContext, request: web.Request) -> web.WebSocketResponse:
    """One market-stream connection, following the streams of its path until it closes."""
    ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    combined = request.path.startswith("/stream")
    streams: set[str] = set()
    if combined:
        streams |= {s for s in request.query.get("streams", "").split("/") if s}
    else:
        tail = request.match_info.get("tail", "")
        streams |= {s for s in tail.split("/") if "@" in s}
    state: dict[str, Any] = {"streams": streams, "combined": combined}
    hub = ctx.hub
    hub.market[ws] = state
    return await hub.serve(ws, state, partial(_control, ctx), hub.market)


async def _control(ctx: ServerContext, ws: web.WebSocketResponse, state: dict[str, Any], text: str) -> None:
    """Answer one control message (``{"method", "params", "id"}``) of a market-stream client."""
    send = partial(ctx.hub.send, ws)
    try:
        msg = json.loads(text)
        method, req_id = msg.get("method"), msg.get("id")
    except (ValueError, AttributeError):
        await send({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
        return
    params = msg.get("params") or []
    if not isinstance(params, list):
        await send({"error": {"code": 2, "msg": "Invalid request: 'params' must be a list"}, "id": req_id})
        return
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        bad = [p for p in params if not isinstance(p, str) or not _STREAM.fullmatch(p)]
        if bad:
            await send({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r}"},
                        "id": req_id})
            return
        if method == "SUBSCRIBE":
            state["streams"] |= set(params)
        else:
            state["streams"] -= set(params)
        await send({"result": None, "id": req_id})
    elif method == "LIST_SUBSCRIPTIONS":
        await send({"result": sorted(state["streams"]), "id": req_id})
    elif method == "SET_PROPERTY" and params and params[0] == "combined":
        state["combined"] = bool(params[1])
        await send({"result": None, "id": req_id})
    elif method == "GET_PROPERTY" and params and params[0] == "combined":
        await send({"result": state["combined"], "id": req_id})
    else:
        await send({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": req_id})
