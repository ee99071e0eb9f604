"""The admin surface of the local exchange (not Binance's): faults and the market clock over HTTP.

``/admin/faults``: GET the current faults, POST JSON fields of :class:`FaultState` to switch some (plus an
optional ``"action"``: ``"drop_ws"`` or ``"server_shutdown"``), DELETE to clear them all; every answer is
the fault state. ``/admin/clock``: GET the market time and speed, POST ``{"to": ms}`` or ``{"steps": n}``
to move it. Bad input is a 400 with ``{"error": ...}``. The REST middleware lets these paths through
untouched (no faults, no weight). Each handler takes the :class:`ServerContext` first and the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
from functools import partial

from aiohttp import web

from thunes.exchange.sim._http import ServerContext

__all__ = ["add_admin_routes"]


def add_admin_routes(router: web.UrlDispatcher, ctx: ServerContext) -> None:
    """Register ``/admin/faults`` and ``/admin/clock`` (any method) on ``router``."""
    router.add_route("*", "/admin/faults", partial(admin_faults, ctx))
    router.add_route("*", "/admin/clock", partial(admin_clock, ctx))


async def admin_faults(ctx: ServerContext, request: web.Request) -> web.Response:
    faults = ctx.faults
    if request.method == "DELETE":
        faults.clear()
    elif request.method == "POST":
        payload = await request.json()
        action = payload.pop("action", None)
        if payload:
            try:
                faults.set(**payload)
            except Exception as exc:  # noqa: BLE001 - report to the caller
                return web.json_response({"error": str(exc)}, status=400)
        if action == "drop_ws":
            await ctx.hub.close_all(shutdown=False)
        elif action == "server_shutdown":
            await ctx.hub.close_all(shutdown=True)
        elif action is not None:
            return web.json_response({"error": f"unknown action {action!r}"}, status=400)
    return web.json_response(dataclasses.asdict(faults.state))


async def admin_clock(ctx: ServerContext, request: web.Request) -> web.Response:
    if request.method == "POST":
        try:
            payload = await request.json()
            to, steps = payload.get("to"), payload.get("steps")
            if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (to, steps)):
                raise ValueError
        except (ValueError, AttributeError):
            return web.json_response({"error": "expected a JSON object {\"to\": ms} or {\"steps\": n}"},
                                     status=400)
        loop = asyncio.get_running_loop()
        if to is not None:
            await loop.run_in_executor(None, ctx.sim.advance_to, to)
        elif steps is not None:
            await loop.run_in_executor(None, ctx.sim.step, steps)
    return web.json_response({"now": ctx.engine.clock.now_ms(), "speed": ctx.options.speed})
