"""A tiny Binance-style kline stream server for the feed tests (a real websocket server on 127.0.0.1).

It serves ``/ws``: a client sends ``SUBSCRIBE``, gets the ``{"result": null, "id": n}`` ack, then every
kline pushed by the test. The test drives it bar by bar and injects the faults the feed must survive:
dropped connections, muted (lost) messages and stalls (connection open, nothing sent).
"""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pandas as pd
from aiohttp import WSMsgType, web

from thunes.core.candles import ts_ms


class KlineServer:
    def __init__(self, frame: pd.DataFrame, *, symbol: str = "BTCUSDT", interval: str = "1h") -> None:
        self.frame = frame
        self.ts = ts_ms(frame)
        self.symbol = symbol
        self.interval = interval
        self.tf_ms = int(self.ts[1] - self.ts[0])
        self.cursor = -1  # index of the bar currently open (closed bars: < cursor)
        self.mute = False  # messages are lost on the way
        self.connections = 0
        self._clients: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- lifecycle --
    def start(self) -> KlineServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.connections += 1
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("method") == "SUBSCRIBE":
                    await ws.send_str(json.dumps({"result": None, "id": data["id"]}))
                    self._clients.add(ws)
        self._clients.discard(ws)
        return ws

    # -- driving --
    def kline(self, i: int, closed: bool) -> dict:
        row = self.frame.iloc[i]
        t = int(self.ts[i])
        return {
            "e": "kline", "E": t, "s": self.symbol,
            "k": {"t": t, "T": t + self.tf_ms - 1, "s": self.symbol, "i": self.interval, "o": str(row.open),
                  "c": str(row.close), "h": str(row.high), "l": str(row.low), "v": str(row.volume),
                  "x": closed},
        }

    def _send_all(self, payloads: list[dict]) -> None:
        async def send() -> None:
            for ws in list(self._clients):
                for p in payloads:
                    await ws.send_str(json.dumps(p))

        if not self.mute:
            asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    def advance(self) -> None:
        """Close the open bar and open the next one, streaming both events."""
        payloads = []
        if self.cursor >= 0:
            payloads.append(self.kline(self.cursor, True))
        self.cursor += 1
        payloads.append(self.kline(self.cursor, False))
        self._send_all(payloads)

    def send_raw(self, text: str) -> None:
        async def send() -> None:
            for ws in list(self._clients):
                await ws.send_str(text)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    def drop_all(self) -> None:
        async def close() -> None:
            for ws in list(self._clients):
                await ws.close(code=1001)
            self._clients.clear()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)

    def fetch(self, since: int, limit: int) -> pd.DataFrame:
        """REST klines: bars from ``since`` up to and including the open one."""
        visible = self.frame.iloc[: self.cursor + 1]
        out = visible[ts_ms(visible) >= since]
        return out.iloc[:limit]

    def closed_ts(self) -> np.ndarray:
        return self.ts[: self.cursor]
