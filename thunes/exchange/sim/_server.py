"""The HTTP and websocket face of the local exchange (aiohttp), speaking Binance Spot as ccxt uses it.

:func:`build_app` assembles it from one module per area, each registering its routes with the shared
:class:`~thunes.exchange.sim._http.ServerContext`:

==========================  ================================================================================
``_http.py``                the context, Binance's JSON errors, signatures, the REST middleware (faults,
                            parameters, weights, errors) and the 404 for anything else
``_limits.py``              request weights, per-IP weight per minute and per-account order counts (429, 418)
``_market_routes.py``       public REST under ``/api/v3``: time, exchangeInfo, klines, tickers, depth
``_order_routes.py``        signed REST under ``/api/v3``: account, orders, open orders, trades
``_admin_routes.py``        ``/admin/faults`` and ``/admin/clock`` (the local exchange's own)
``_stream_routes.py``       market streams under ``/ws``, ``/ws/<streams>`` and ``/stream?streams=``
``_ws_api_routes.py``       the WebSocket API under ``/ws-api/v3`` (user data stream, ``executionReport``)
``_ws.py``                  the hub: every websocket, server pings, engine events fanned out to streams
``_payloads.py``            Binance's JSON shapes of klines and trades, shared by REST and streams
==========================  ================================================================================

See ``docs/exchange.md`` for the list of endpoints and ``../shared/docs/binance-spot-api.md`` for the
reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from thunes.exchange.sim._admin_routes import add_admin_routes
from thunes.exchange.sim._http import ServerContext, exchange_middleware, not_found, sign
from thunes.exchange.sim._limits import RateLimiter
from thunes.exchange.sim._market_routes import add_market_routes
from thunes.exchange.sim._order_routes import add_order_routes
from thunes.exchange.sim._stream_routes import add_stream_routes
from thunes.exchange.sim._ws import Hub
from thunes.exchange.sim._ws_api_routes import add_ws_api_routes

if TYPE_CHECKING:  # pragma: no cover
    from thunes.exchange.sim import LocalExchange

__all__ = ["build_app", "sign"]


def build_app(sim: LocalExchange) -> web.Application:
    """The aiohttp application of ``sim``; its hub is left on ``sim._hub`` for the engine's events."""
    opts = sim.options
    limiter = RateLimiter(opts.weight_limit, opts.orders_per_10s, opts.orders_per_day, opts.ban_after_429s,
                          opts.ban_seconds)
    hub = Hub(sim)
    sim._hub = hub
    ctx = ServerContext(sim=sim, engine=sim.engine, options=opts, faults=sim.faults, limiter=limiter, hub=hub)
    app = web.Application(middlewares=[exchange_middleware(ctx)])
    # Order matters only for the catch-all 404, which must come last
    for add_routes in (add_market_routes, add_order_routes, add_admin_routes, add_stream_routes,
                       add_ws_api_routes):
        add_routes(app.router, ctx)
    app.router.add_route("*", "/{tail:.*}", not_found)
    sim.faults.on_ws_action(hub.on_fault_action)
    return app
