"""The local exchange's websockets: the hub that holds every connection and fans engine events out to them.

The engine's listener (``LocalExchange._serve``) hands each event to :meth:`Hub.dispatch` on the server's
loop: a ``trade`` goes to the ``<symbol>@trade`` market streams, a ``tick`` (the market clock moved) to the
kline streams (and to ``@trade`` as synthetic market trades when ``market_trades`` is on), an ``execution``
to the user data stream subscriptions of its account. :meth:`Hub.serve` runs one connection, market stream
(``_stream_routes.py``) or WebSocket API (``_ws_api_routes.py``): Binance's server pings, the pong timeout
and the 24-hour lifetime. Faults reach here too: malformed frames, dropped sockets, ``serverShutdown``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from thunes.exchange.sim._payloads import interval_ms, kline_event, trade_event

if TYPE_CHECKING:  # pragma: no cover
    from thunes.exchange.sim import LocalExchange

__all__ = ["Hub", "TextHandler"]

# (websocket, its state, the text frame) -> None: what a route does with a client's message
TextHandler = Callable[[web.WebSocketResponse, dict[str, Any], str], Awaitable[None]]


class Hub:
    """Websocket connections and the streams each one follows; fans engine events out to them."""

    def __init__(self, sim: LocalExchange) -> None:
        self.sim = sim
        self.market: dict[web.WebSocketResponse, dict[str, Any]] = {}
        self.user: dict[web.WebSocketResponse, dict[int, str]] = {}  # ws -> {subscriptionId: api_key}
        self._sub_ids = 0
        self._fanning: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def subscribe_user(self, ws: web.WebSocketResponse, api_key: str) -> int:
        """A new user data stream subscription of ``ws`` to ``api_key``'s events; its subscription id."""
        self._sub_ids += 1
        self.user[ws][self._sub_ids] = api_key
        return self._sub_ids

    async def send(self, ws: web.WebSocketResponse, payload: Any) -> None:
        """Send ``payload`` as JSON (or a truncated frame while the ``malformed_frames`` fault is on)."""
        if ws.closed:
            return
        try:
            if self.sim.faults.take("malformed_frames"):
                await ws.send_str('{"e":"trade","E":')  # truncated JSON
                return
            await ws.send_str(json.dumps(payload))
        except (ConnectionError, RuntimeError):  # peer went away mid-send
            pass

    def dispatch(self, event: dict[str, Any]) -> None:
        """Fan one engine event out, in a task of the running loop (the engine never waits for a client)."""
        task = asyncio.get_running_loop().create_task(self._dispatch(event))
        self._fanning.add(task)
        task.add_done_callback(self._fanning.discard)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "execution":
            for ws, subs in list(self.user.items()):
                for sub_id, key in subs.items():
                    if key == event["account"]:
                        await self.send(ws, {"subscriptionId": sub_id, "event": event["payload"]})
            return
        if kind == "trade":
            symbol = event["symbol"]
            payload = trade_event(symbol, event["id"], event["price"], event["qty"], event["time"],
                                  buyer_maker=bool(event["buyer_maker"]))
            await self._publish(f"{symbol.lower()}@trade", payload)
            return
        if kind == "tick":
            await self._on_tick(event["prev"], event["time"])

    async def _publish(self, stream: str, payload: dict[str, Any]) -> None:
        for ws, state in list(self.market.items()):
            if stream in state["streams"]:
                await self.send(ws, {"stream": stream, "data": payload} if state["combined"] else payload)

    async def _on_tick(self, prev: int, now: int) -> None:
        """The market clock moved from ``prev`` to ``now``: kline updates and synthetic market trades."""
        wanted: set[str] = set()
        for state in self.market.values():
            wanted |= state["streams"]
        engine = self.sim.engine
        for stream in sorted(wanted):
            sym, _, kind = stream.partition("@")
            symbol = sym.upper()
            if symbol not in engine.feeds:
                continue
            if kind.startswith("kline_"):
                await self._publish_klines(stream, symbol, kind.removeprefix("kline_"), prev, now)
            elif kind == "trade" and engine.opts.market_trades:
                await self._publish_market_trade(stream, symbol, prev, now)

    async def _publish_klines(self, stream: str, symbol: str, interval: str, prev: int, now: int) -> None:
        engine = self.sim.engine
        feed = engine.feeds[symbol]
        try:
            iv_ms = interval_ms(interval)
        except ValueError:
            return
        if not feed.supports(iv_ms):
            return
        with engine.lock:
            rows = feed.klines(iv_ms, now, start=None, end=None, limit=2)
        for row in rows:
            closed = row[9]
            if closed and not (row[0] <= prev <= row[6]):
                continue  # closed before the previous tick: already sent
            await self._publish(stream, kline_event(symbol, interval, row, now))

    async def _publish_market_trade(self, stream: str, symbol: str, prev: int, now: int) -> None:
        """One trade for the volume traded between the two ticks (none when it rounds down to 0)."""
        engine = self.sim.engine
        feed = engine.feeds[symbol]
        with engine.lock:
            _lo, _hi, volume = feed.range_between(prev, now)
            price = engine.last_price(symbol, now)
            qty = engine._step_floor(engine.specs[symbol], Decimal(repr(float(volume))))
            trade_id = next(engine._trade_ids[symbol]) if qty > 0 else 0
        if qty > 0:
            payload = trade_event(symbol, trade_id, price, qty, now, buyer_maker=bool(now % 2))
            await self._publish(stream, payload)

    async def close_all(self, *, shutdown: bool) -> None:
        """Close every websocket: ``serverShutdown`` then 1001 when ``shutdown``, else an abrupt 1006."""
        now = self.sim.engine.clock.now_ms()
        for ws in list(self.market) + list(self.user):
            if not shutdown:
                await ws.close(code=1006, message=b"dropped")
                continue
            notice = {"e": "serverShutdown", "E": now}
            await self.send(ws, notice if ws in self.market else {"subscriptionId": 0, "event": notice})
            await ws.close(code=1001, message=b"server shutdown")

    def on_fault_action(self, action: str) -> None:
        """``Faults.drop_ws`` / ``Faults.server_shutdown``, from any thread: done on the server's loop."""
        loop = self.sim._loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self.close_all(shutdown=action == "shutdown"), loop).result(5)

    async def serve(self, ws: web.WebSocketResponse, state: dict[str, Any], on_text: TextHandler,
                    registry: dict[web.WebSocketResponse, Any]) -> web.WebSocketResponse:
        """Serve one websocket until it closes: server pings, pong bookkeeping, text frames to ``on_text``."""
        now = time.monotonic()
        state.update(last_pong=now, last_ping=now)
        pinger = asyncio.get_running_loop().create_task(self._pinger(ws, state))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    state["last_pong"] = time.monotonic()
                elif msg.type == WSMsgType.TEXT:
                    await on_text(ws, state, msg.data)
        finally:
            pinger.cancel()
            registry.pop(ws, None)
        return ws

    async def _pinger(self, ws: web.WebSocketResponse, state: dict[str, Any]) -> None:
        """Binance's side of the heartbeat: ping every interval, close on pong timeout or end of lifetime."""
        opts = self.sim.options
        interval, timeout = opts.ws_ping_interval_s, opts.ws_pong_timeout_s
        started = time.monotonic()
        while not ws.closed:
            await asyncio.sleep(min(interval, 0.5) if interval > 0.5 else interval)
            now = time.monotonic()
            if now - started > opts.ws_max_lifetime_s:
                await ws.close(code=1000, message=b"24h connection lifetime reached")
                return
            if now - state["last_ping"] >= interval:
                state["last_ping"] = now
                try:
                    await ws.ping(str(int(now * 1000)).encode())
                except (ConnectionError, RuntimeError):
                    return
            if now - state["last_pong"] > timeout:
                await ws.close(code=1008, message=b"pong timeout")
                return
