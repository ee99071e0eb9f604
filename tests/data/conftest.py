"""Fixtures for the data tests: a store URL per backend (SQLite file, fresh PostgreSQL database)."""

from __future__ import annotations

import pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    """A URL to an empty candle store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/candles.sqlite"
    return request.getfixturevalue("postgres_url")


# --------------------------------------------------------------------------- a Binance-format kline server
import asyncio  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from aiohttp import web  # noqa: E402

from thunes.core.candles import ts_ms  # noqa: E402
from thunes.data.synthetic import generate_candles  # noqa: E402

KLINE_START = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR = 3_600_000


def _exchange_info(sample_dir: Path | None) -> dict:
    """The real exchangeInfo sample when present, else a minimal one with the fields ccxt reads."""
    if sample_dir is not None and (sample_dir / "binance_exchange_info.json").exists():
        return json.loads((sample_dir / "binance_exchange_info.json").read_text())
    symbols = []
    for base in ("BTC", "ETH"):
        symbols.append({
            "symbol": f"{base}USDT", "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False, "permissions": ["SPOT"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
                 "tickSize": "0.01000000"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                 "stepSize": "0.00001000"},
                {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000", "applyToMarket": True,
                 "avgPriceMins": 5},
            ],
        })
    return {"timezone": "UTC", "serverTime": KLINE_START, "rateLimits": [], "exchangeFilters": [],
            "symbols": symbols}


class KlineServer:
    """Serves /api/v3/{exchangeInfo,time,klines} like Binance spot, for 1h BTCUSDT candles.

    ``now`` is the server clock (ms); candles exist from KLINE_START up to the one containing ``now``,
    which is still open. ``fail_next`` answers that many kline requests with HTTP 429 first.
    """

    def __init__(self, info: dict, rows: int = 3000) -> None:
        self.frame = generate_candles(rows, timeframe="1h", start=KLINE_START, seed=5)
        self.ts = ts_ms(self.frame)
        self.info = info
        self.now = KLINE_START + 1500 * HOUR + 30 * 60_000  # 30 minutes into candle #1500
        self.requests: list[dict] = []
        self.fail_next = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    async def _klines(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.requests.append(q)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"code": -1003, "msg": "Too many requests"}, status=429,
                                     headers={"Retry-After": "2"})
        limit = min(int(q.get("limit", 500)), 1000)
        start = int(q.get("startTime", KLINE_START))
        mask = (self.ts >= start) & (self.ts <= self.now)
        if "endTime" in q:
            mask &= self.ts <= int(q["endTime"])
        idx = mask.nonzero()[0][:limit]
        f = self.frame
        body = [[int(self.ts[i]), f"{f.open.iloc[i]:.2f}", f"{f.high.iloc[i]:.2f}", f"{f.low.iloc[i]:.2f}",
                 f"{f.close.iloc[i]:.2f}", f"{f.volume.iloc[i]:.5f}", int(self.ts[i]) + HOUR - 1, "0", 10, "0", "0",
                 "0"] for i in idx]
        return web.json_response(body)

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now})

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info)

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._info)

        async def boot() -> None:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"


@pytest.fixture()
def kline_server(sample_dir):  # noqa: ANN001, ANN201
    server = KlineServer(_exchange_info(sample_dir))
    server.start()
    yield server
    server.stop()
