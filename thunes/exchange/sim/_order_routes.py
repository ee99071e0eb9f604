"""The signed REST endpoints of the local exchange: the account, its orders and its trades.

``/api/v3/account``, ``/order`` (new, test, query, cancel), ``/openOrders`` (list, cancel all),
``/allOrders`` and ``/myTrades``. Every handler first authenticates the request (``_http.authenticate``:
API key, HMAC signature, timestamp window); a new order also counts against the account's order limits and
may lose its answer under the ``lose_order_responses`` fault (executed on the exchange, the client never
hears of it). Each handler takes the :class:`ServerContext` first (bound at registration) and the request.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import partial
from typing import Any

from aiohttp import web

from thunes.exchange.sim import _params as P
from thunes.exchange.sim._http import PARAMS, ServerContext, authenticate, error_response
from thunes.exchange.sim._params import SimReject
from thunes.exchange.sim._rules import check_filters

__all__ = ["add_order_routes"]

_RESULT_FIELDS = ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
                  "side", "workingTime", "selfTradePreventionMode", "origQuoteOrderQty")


def add_order_routes(router: web.UrlDispatcher, ctx: ServerContext) -> None:
    """Register the signed account and order endpoints on ``router``."""
    router.add_get("/api/v3/account", partial(account, ctx))
    router.add_post("/api/v3/order", partial(new_order, ctx))
    router.add_post("/api/v3/order/test", partial(test_order, ctx))
    router.add_get("/api/v3/order", partial(get_order, ctx))
    router.add_delete("/api/v3/order", partial(cancel_order, ctx))
    router.add_get("/api/v3/openOrders", partial(open_orders, ctx))
    router.add_delete("/api/v3/openOrders", partial(cancel_open_orders, ctx))
    router.add_get("/api/v3/allOrders", partial(all_orders, ctx))
    router.add_get("/api/v3/myTrades", partial(my_trades, ctx))


async def account(ctx: ServerContext, request: web.Request) -> web.Response:
    key = authenticate(ctx, request)
    info = ctx.engine.account_info(key)
    if P.bool_param(request[PARAMS], "omitZeroBalances"):
        info["balances"] = [b for b in info["balances"] if Decimal(b["free"]) or Decimal(b["locked"])]
    return web.json_response(info)


async def new_order(ctx: ServerContext, request: web.Request) -> web.StreamResponse:
    """Place an order (the engine validates and fills it) and answer in the asked ``newOrderRespType``."""
    key = authenticate(ctx, request)
    params = request[PARAMS]
    resp_type = P.enum_param(params, "newOrderRespType", ("ACK", "RESULT", "FULL"), default="FULL",
                             upper=True)
    P.order_extras(params)
    rejection, headers = ctx.limiter.order(key)
    if rejection is not None:
        return error_response(rejection, headers)
    order, fills = ctx.engine.place(key, params)
    faults = ctx.faults
    if faults.applies(request.path) and faults.take("lose_order_responses"):
        if faults.state.lose_mode == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # nothing goes back: the socket is gone
        return web.Response(status=504, body=b"")
    body: dict[str, Any] = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
                            "clientOrderId": order.client_order_id, "transactTime": order.time}
    if resp_type in ("RESULT", "FULL"):
        view = order.view()
        body.update((k, view[k]) for k in _RESULT_FIELDS)
    if resp_type == "FULL":
        body["fills"] = fills
    return web.json_response(body, headers=headers)


async def test_order(ctx: ServerContext, request: web.Request) -> web.Response:
    """Validate an order as ``/order`` would (parameters, then the symbol's filters) without placing it."""
    authenticate(ctx, request)
    params = request[PARAMS]
    symbol = ctx.symbol_arg(params)
    side = P.enum_param(params, "side", ("BUY", "SELL"), required=True, upper=True, code=-1117,
                        msg="Invalid side.")
    otype = P.enum_param(params, "type", ("LIMIT", "MARKET", "LIMIT_MAKER"), required=True, upper=True,
                         code=-1116, msg="Invalid orderType.")
    P.enum_param(params, "timeInForce", ("GTC", "IOC", "FOK"), code=-1115, msg="Invalid timeInForce.")
    P.client_id_param(params, "newClientOrderId")
    P.enum_param(params, "newOrderRespType", ("ACK", "RESULT", "FULL"), upper=True)
    P.bool_param(params, "computeCommissionRates")
    P.order_extras(params)
    qty, quote_qty, price = (P.decimal_param(params, n) for n in ("quantity", "quoteOrderQty", "price"))
    assert symbol is not None and side is not None and otype is not None
    engine = ctx.engine
    with engine.lock:
        spec = engine.spec(symbol)
        rej = check_filters(spec, side=side, order_type="MARKET" if otype == "MARKET" else "LIMIT",
                            qty=qty, quote_qty=quote_qty, price=price,
                            avg_price=engine.last_price(spec.symbol), open_orders=0)
    if rej is not None:
        raise SimReject(rej)
    return web.json_response({})


async def get_order(ctx: ServerContext, request: web.Request) -> web.Response:
    key = authenticate(ctx, request)
    return web.json_response(ctx.engine.query(key, request[PARAMS]))


async def cancel_order(ctx: ServerContext, request: web.Request) -> web.Response:
    key = authenticate(ctx, request)
    return web.json_response(ctx.engine.cancel(key, request[PARAMS]))


async def open_orders(ctx: ServerContext, request: web.Request) -> web.Response:
    key = authenticate(ctx, request)
    symbol = ctx.symbol_arg(request[PARAMS], required=False)
    return web.json_response(ctx.engine.open_orders(key, symbol))


async def cancel_open_orders(ctx: ServerContext, request: web.Request) -> web.Response:
    key = authenticate(ctx, request)
    symbol = ctx.symbol_arg(request[PARAMS])
    engine = ctx.engine
    return web.json_response([engine.cancel(key, {"symbol": symbol or "", "orderId": str(o["orderId"])})
                              for o in engine.open_orders(key, symbol)])


async def all_orders(ctx: ServerContext, request: web.Request) -> web.Response:
    """The account's orders of one symbol: from ``orderId`` or ``startTime`` forward, else the latest."""
    key = authenticate(ctx, request)
    params = request[PARAMS]
    symbol = ctx.symbol_arg(params)
    limit = P.int_param(params, "limit", default=500, lo=1, hi=1000)
    from_id = P.int_param(params, "orderId")
    start, end = P.int_param(params, "startTime"), P.int_param(params, "endTime")
    assert limit is not None
    engine = ctx.engine
    with engine.lock:
        rows = [o.view() for (s, _), o in sorted(engine._orders.items()) if s == symbol and o.account == key
                and (from_id is None or o.order_id >= from_id) and (start is None or o.time >= start)
                and (end is None or o.time <= end)]
    return web.json_response(rows[:limit] if from_id is not None or start is not None else rows[-limit:])


async def my_trades(ctx: ServerContext, request: web.Request) -> web.Response:
    key = authenticate(ctx, request)
    return web.json_response(ctx.engine.my_trades(key, request[PARAMS]))
