"""The public REST endpoints of the local exchange: server time, symbol rules and market data.

``/api/v3/ping``, ``/time``, ``/exchangeInfo``, ``/klines`` and ``/uiKlines`` (the replayed or synthetic
candles, at the feed's timeframe or a multiple), ``/ticker/24hr``, ``/ticker/price``, ``/ticker/bookTicker``,
``/depth`` (the engine's synthetic book) and ``/avgPrice``. Unsigned; their weights are in ``_limits.py``.
Each handler takes the :class:`ServerContext` first (bound at registration) and the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from aiohttp import web

from thunes.exchange.sim import _params as P
from thunes.exchange.sim._engine import fmt
from thunes.exchange.sim._http import PARAMS, ServerContext
from thunes.exchange.sim._payloads import interval_ms, kline_row

__all__ = ["add_market_routes"]


def add_market_routes(router: web.UrlDispatcher, ctx: ServerContext) -> None:
    """Register the public market-data endpoints on ``router``."""
    for path, handler in (("/api/v3/ping", ping), ("/api/v3/time", server_time),
                          ("/api/v3/exchangeInfo", exchange_info), ("/api/v3/klines", klines),
                          ("/api/v3/uiKlines", klines), ("/api/v3/ticker/24hr", ticker_24hr),
                          ("/api/v3/ticker/price", ticker_price), ("/api/v3/ticker/bookTicker", book_ticker),
                          ("/api/v3/depth", depth), ("/api/v3/avgPrice", avg_price)):
        router.add_get(path, partial(handler, ctx))


async def ping(ctx: ServerContext, request: web.Request) -> web.Response:
    return web.json_response({})


async def server_time(ctx: ServerContext, request: web.Request) -> web.Response:
    return web.json_response({"serverTime": ctx.auth_now()})


async def exchange_info(ctx: ServerContext, request: web.Request) -> web.Response:
    """The rules of the listed symbols (or of the asked ones) and the server's rate limits."""
    opts = ctx.options
    wanted = ctx.symbols_arg(request[PARAMS])
    P.bool_param(request[PARAMS], "showPermissionSets")
    symbols = [dict(ctx.engine.spec(name).info) for name in wanted or list(ctx.engine.specs)]
    return web.json_response({
        "timezone": "UTC", "serverTime": ctx.auth_now(), "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": opts.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": opts.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": opts.orders_per_day},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}],
        "exchangeFilters": [], "symbols": symbols})


async def klines(ctx: ServerContext, request: web.Request) -> web.Response:
    """Candles up to the market clock; an interval the feed cannot build is -1120 with the reason."""
    engine, params = ctx.engine, request[PARAMS]
    symbol = ctx.symbol_arg(params)
    interval = P.enum_param(params, "interval", P.INTERVALS, required=True, code=-1120,
                            msg="Invalid interval.")
    assert symbol is not None and interval is not None
    if interval == "1M":
        raise P.reject(-1120, "Invalid interval. (the local exchange has no calendar-month candles)")
    iv_ms = interval_ms(interval)
    feed = engine.feeds[symbol]
    if not feed.supports(iv_ms):
        raise P.reject(-1120, f"Invalid interval. (this local market replays {feed.tf_ms // 60000}m "
                              "candles; ask for a multiple of that)")
    limit = P.int_param(params, "limit", default=500, lo=1, hi=1000)
    start, end = P.int_param(params, "startTime"), P.int_param(params, "endTime")
    assert limit is not None
    with engine.lock:
        rows = feed.klines(iv_ms, engine.clock.now_ms(), start=start, end=end, limit=limit)
    return web.json_response([kline_row(r) for r in rows])


def _one_or_many(ctx: ServerContext, params: Mapping[str, str],
                 row: Callable[[ServerContext, str], dict[str, Any]]) -> web.Response:
    """Binance's ticker shape: an object for ``symbol``, a list for ``symbols`` or for all."""
    wanted = ctx.symbols_arg(params)
    if wanted is not None and params.get("symbol") is not None:
        return web.json_response(row(ctx, wanted[0]))
    return web.json_response([row(ctx, s) for s in (wanted or list(ctx.engine.specs))])


def _ticker_row(ctx: ServerContext, symbol: str) -> dict[str, Any]:
    engine = ctx.engine
    with engine.lock:
        now = engine.clock.now_ms()
        o, h, low, _last, vol = engine.feeds[symbol].day_stats(now)
        bids, asks = engine.book(symbol, 1)
        lastp = engine.last_price(symbol)
    change = float(lastp) - o
    vwap = (h + low + float(lastp)) / 3
    return {
        "symbol": symbol, "priceChange": fmt(change), "priceChangePercent": f"{100 * change / o:.3f}",
        "weightedAvgPrice": fmt(vwap), "prevClosePrice": fmt(o), "lastPrice": fmt(lastp),
        "lastQty": fmt(bids[0][1] / 100 if bids else 0), "bidPrice": fmt(bids[0][0]),
        "bidQty": fmt(bids[0][1]),
        "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1]), "openPrice": fmt(o), "highPrice": fmt(h),
        "lowPrice": fmt(low), "volume": fmt(vol), "quoteVolume": fmt(vol * vwap),
        "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 1, "count": 1}


def _price_row(ctx: ServerContext, symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "price": fmt(ctx.engine.last_price(symbol))}


def _book_row(ctx: ServerContext, symbol: str) -> dict[str, Any]:
    with ctx.engine.lock:
        bids, asks = ctx.engine.book(symbol, 1)
    return {"symbol": symbol, "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1]),
            "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1])}


async def ticker_24hr(ctx: ServerContext, request: web.Request) -> web.Response:
    P.enum_param(request[PARAMS], "type", ("FULL",), code=-1130,
                 msg="Data sent for parameter 'type' is not valid. (the local exchange serves FULL only)")
    return _one_or_many(ctx, request[PARAMS], _ticker_row)


async def ticker_price(ctx: ServerContext, request: web.Request) -> web.Response:
    return _one_or_many(ctx, request[PARAMS], _price_row)


async def book_ticker(ctx: ServerContext, request: web.Request) -> web.Response:
    return _one_or_many(ctx, request[PARAMS], _book_row)


async def depth(ctx: ServerContext, request: web.Request) -> web.Response:
    """The synthetic book around the last price; ``lastUpdateId`` is the market clock."""
    engine, params = ctx.engine, request[PARAMS]
    symbol = ctx.symbol_arg(params)
    limit = min(P.int_param(params, "limit", default=100, lo=1) or 100, 5000)  # Binance truncates at 5000
    assert symbol is not None
    with engine.lock:
        bids, asks = engine.book(symbol, limit)
        update_id = engine.clock.now_ms()
    return web.json_response({"lastUpdateId": update_id, "bids": [[fmt(p), fmt(q)] for p, q in bids],
                              "asks": [[fmt(p), fmt(q)] for p, q in asks]})


async def avg_price(ctx: ServerContext, request: web.Request) -> web.Response:
    symbol = ctx.symbol_arg(request[PARAMS])
    assert symbol is not None
    return web.json_response({"mins": 5, "price": fmt(ctx.engine.last_price(symbol)),
                              "closeTime": ctx.engine.clock.now_ms()})
