"""``thunes data download`` through the real ccxt client against a local Binance-format HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from click.testing import CliRunner

from thunes.cli import root
from thunes.data.download import download_candles, make_exchange
from thunes.data.store import open_store
from thunes.data.synthetic import generate_candles

H = 3_600_000
_INFO = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance_exchange_info.json"
_FALLBACK_INFO = {
    "timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
    "symbols": [{
        "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8, "quoteAsset": "USDT",
        "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
        "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
        ],
    }],
}


class KlineServer:
    """Serves ``n_closed`` closed 1h candles plus one still-open candle; records every klines request."""

    def __init__(self, frame, server_time: int) -> None:
        self.frame = frame
        self.server_time = server_time
        self.requests: list[dict] = []
        self.fail_next = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        self.requests.append(dict(q))
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"code": -1003, "msg": "Too many requests"}, status=429,
                                     headers={"Retry-After": "0"})
        start = int(q.get("startTime", 0))
        limit = min(int(q.get("limit", 500)), 1000)
        ts = self.frame.index.asi8 // 1_000_000
        sel = np.flatnonzero((ts >= start) & (ts <= self.server_time))[:limit]
        rows = [[int(ts[i]), *(f"{self.frame.iloc[i][c]:.2f}" for c in ("open", "high", "low", "close")),
                 f"{self.frame.iloc[i]['volume']:.5f}", int(ts[i]) + H - 1, "0", 1, "0", "0", "0"] for i in sel]
        return web.json_response(rows)

    async def _time(self, _request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.server_time})

    async def _info(self, _request: web.Request) -> web.Response:
        info = json.loads(_INFO.read_text()) if _INFO.exists() else _FALLBACK_INFO
        return web.json_response(info)

    def __enter__(self) -> "KlineServer":
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_get("/api/v3/klines", self._klines)
            app.router.add_get("/api/v3/time", self._time)
            app.router.add_get("/api/v3/exchangeInfo", self._info)
            self.runner = web.AppRunner(app)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"


@pytest.fixture()
def market():
    frame = generate_candles(2_600, timeframe="1h", start="2024-01-01", seed=11)
    last_open = int(frame.index.asi8[-1] // 1_000_000)
    # The server's clock is 30 minutes into the last candle: that candle is still open.
    with KlineServer(frame, server_time=last_open + 30 * 60_000) as server:
        yield server


def test_paginated_download_stores_closed_candles_only_and_resumes(market, tmp_path):
    ex = make_exchange("binance", base_url=market.base_url)
    start = int(market.frame.index.asi8[0] // 1_000_000)
    with open_store(f"sqlite:///{tmp_path}/s.sqlite") as store:
        first = download_candles(store, ex, "BTC/USDT", "1h", since=start, until=start + 1500 * H, sleep=lambda s: None)
        assert (first.written, first.pages) == (1500, 2)
        second = download_candles(store, ex, "BTC/USDT", "1h", since=start, sleep=lambda s: None)
        assert second.resumed
        assert int(market.requests[-2]["startTime"]) == start + 1500 * H  # resumed after the last stored
        assert store.count("BTC/USDT", "1h") == 2_599  # every closed candle, never the open one
        stored = store.load("BTC/USDT", "1h")
    np.testing.assert_allclose(stored["close"].to_numpy(), market.frame["close"].to_numpy()[:-1])


def test_rate_limit_is_retried_honouring_retry_after(market, tmp_path):
    market.fail_next = 2
    waits: list[float] = []
    ex = make_exchange("binance", base_url=market.base_url)
    start = int(market.frame.index.asi8[0] // 1_000_000)
    with open_store(f"sqlite:///{tmp_path}/s.sqlite") as store:
        result = download_candles(store, ex, "BTC/USDT", "1h", since=start, until=start + 10 * H, sleep=waits.append)
    assert result.written == 10
    assert waits == [0.0, 0.0]


def test_cli_download_with_base_url(market, tmp_path):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    result = CliRunner().invoke(root, ["data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h",
                                       "--since", "2024-01-01", "--until", "2024-01-03",
                                       "--base-url", market.base_url, "--db", db], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "48 candles" in result.output
