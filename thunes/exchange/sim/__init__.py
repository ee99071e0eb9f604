"""The local Binance-Spot-compatible exchange: paper trading, demos and tests without the internet.

The unmodified ccxt ``binance`` client (pinned 4.5.90) trades against it over loopback::

    from thunes.exchange.sim import LocalExchange
    from thunes.exchange.ccxt_adapter import CcxtExchange

    with LocalExchange(candles={"BTC/USDT": frame}) as sim:      # replay; no candles -> synthetic market
        ex = CcxtExchange.for_local(sim)                          # or make_local_exchange_client(...)
        ex.place_order(OrderRequest(...))
        sim.step()                                                # next candle; resting orders may fill

Time: with ``speed=None`` (default) the market clock only moves when told (``advance_to``/``step`` or
``POST /admin/clock``); ``speed=N`` runs it N times faster than the wall clock in a background task, and
``speed="max"`` steps one candle per few milliseconds. Signatures are checked against the *wall* clock (plus
the ``clock_skew_ms`` fault), as ccxt signs with wall time; order and trade times are market-clock times.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from thunes.core.clock import SimulatedClock
from thunes.core.errors import ConfigError
from thunes.core.timeframes import timeframe_ms
from thunes.data.samples import find_sample_dir
from thunes.data.synthetic import generate_candles
from thunes.exchange.sim._engine import AccountSpec, Engine, EngineOptions
from thunes.exchange.sim._faults import Faults, FaultState
from thunes.exchange.sim._feed import MarketFeed
from thunes.exchange.sim._rules import SymbolSpec

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET",
    "AccountSpec",
    "EngineOptions",
    "FaultState",
    "Faults",
    "LocalExchange",
    "SimOptions",
    "derived_symbol_info",
    "load_symbol_specs",
]

DEFAULT_API_KEY = "thunes-local-api-key"
DEFAULT_SECRET = "thunes-local-secret"
_EMBEDDED = Path(__file__).with_name("exchange_info.json")
_START_PRICE = {"BTC": 40_000.0, "ETH": 2_300.0, "SOL": 100.0, "XRP": 0.6, "DOGE": 0.09, "LTC": 70.0,
                "BNB": 300.0}

Speed = float | Literal["max"] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SimOptions:
    """How the local exchange runs. Every field has a sensible default for tests."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, read it from ``sim.base_url``
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")  # synthetic markets when no candles are given
    timeframe: str = "1m"  # of the synthetic candles
    synthetic_bars: int = 20_000
    seed: int = 7
    speed: Speed = None
    start_ms: int | None = None
    history_bars: int = 500  # replay starts this many candles in, so klines have history
    accounts: tuple[AccountSpec, ...] = (
        AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                    balances={"USDT": "10000", "BTC": "0.5", "ETH": "5"}),
    )
    engine: EngineOptions = field(default_factory=EngineOptions)
    weight_limit: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    ban_after_429s: int = 3
    ban_seconds: int = 120
    ws_ping_interval_s: float = 20.0
    ws_pong_timeout_s: float = 60.0
    ws_max_lifetime_s: float = 86_400.0
    tick_s: float = 0.25  # wall seconds between clock advances when speed is set
    sample_dir: str | None = None


def load_symbol_specs(sample_dir: str | Path | None = None) -> dict[str, SymbolSpec]:
    """Symbol rules keyed by exchange symbol: the embedded table, overridden by the real recorded
    ``binance_exchange_info.json`` from the sample folder when it is present (same values, real source)."""
    embedded = json.loads(_EMBEDDED.read_text())
    specs = {s["symbol"]: SymbolSpec.from_info(s) for s in embedded["symbols"]}
    folder = find_sample_dir(sample_dir)
    if folder is not None and (folder / "binance_exchange_info.json").exists():
        recorded = json.loads((folder / "binance_exchange_info.json").read_text())
        for s in recorded.get("symbols", []):
            if s.get("quoteAsset") == "USDT":
                specs[s["symbol"]] = SymbolSpec.from_info(s)
    return specs


def derived_symbol_info(symbol: str, price: float) -> dict[str, Any]:
    """Binance-like rules for a pair the embedded table does not know, derived from its price level.

    Five significant digits of price (tick = 10^(floor(log10 price) - 4)), a lot step worth 0.05 to 0.5
    quote (step = 10^floor(log10(0.5 / price))), Binance's usual 5-quote minimum notional. Real rules,
    where known (the embedded table, the recorded exchangeInfo), always win over these.
    """
    import math

    base, _, quote = symbol.upper().partition("/")
    if not base or not quote or not (price > 0 and math.isfinite(price)):
        raise ConfigError(f"cannot derive exchange rules for {symbol!r} at price {price!r}")
    tick = Decimal(10) ** (math.floor(math.log10(price)) - 4)
    step = Decimal(10) ** math.floor(math.log10(0.5 / price))
    max_price = (Decimal(repr(price)) * 1000 // tick) * tick
    def fmt(d: Decimal | float) -> str:
        return f"{d:.8f}"

    return {
        "symbol": base + quote, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": True, "ocoAllowed": False,
        "quoteOrderQtyMarketAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(tick), "maxPrice": fmt(max_price), "tickSize": fmt(tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(step), "maxQty": "9000000.00000000", "stepSize": fmt(step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000000.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": ["SPOT"], "derived": True,
    }


class LocalExchange:
    """An in-process local exchange: ``start()`` serves it on ``base_url`` from a background thread."""

    def __init__(self, options: SimOptions | None = None, *,
                 candles: Mapping[str, pd.DataFrame] | None = None, **overrides: Any) -> None:
        opts = options or SimOptions()
        if overrides:
            try:
                opts = replace(opts, **overrides)
            except TypeError as exc:
                raise ConfigError(f"LocalExchange: {exc}") from exc
        self.options = opts
        self.faults = Faults()
        all_specs = load_symbol_specs(opts.sample_dir)
        by_unified = {s.unified: s for s in all_specs.values()}
        frames = dict(candles) if candles else self._synthetic(opts, by_unified)
        specs: dict[str, SymbolSpec] = {}
        feeds: dict[str, MarketFeed] = {}
        for unified, frame in frames.items():
            spec = by_unified.get(unified.upper())
            if spec is None and candles and len(frame):
                # Given candles of a pair with no known rules: serve it with rules derived from its price.
                spec = SymbolSpec.from_info(derived_symbol_info(unified, float(frame["close"].iloc[-1])))
            if spec is None:
                raise ConfigError(f"the local exchange has no rules for {unified!r}; "
                                  f"known symbols: {sorted(by_unified)}")
            specs[spec.symbol] = spec
            feeds[spec.symbol] = MarketFeed(frame, symbol=spec.symbol, tick=float(spec.tick))
        self.base_tf_ms = min(f.tf_ms for f in feeds.values())
        start = opts.start_ms
        if start is None:
            if isinstance(opts.speed, (int, float)) and not candles:
                start = time.time_ns() // 1_000_000
            else:
                start = max(int(f.ts[min(opts.history_bars, len(f.ts) - 1)]) for f in feeds.values())
        self.clock = SimulatedClock(start)
        self.engine = Engine(specs, feeds, self.clock, list(opts.accounts), opts.engine)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._hub: Any = None
        self._port: int | None = None
        self._stop: asyncio.Event | None = None

    @staticmethod
    def _synthetic(opts: SimOptions, specs: Mapping[str, SymbolSpec]) -> dict[str, pd.DataFrame]:
        tf_ms = timeframe_ms(opts.timeframe)
        if isinstance(opts.speed, (int, float)):
            # Live-like: history behind "now" and a horizon ahead of it.
            now = time.time_ns() // 1_000_000
            start = (now // tf_ms) * tf_ms - opts.history_bars * tf_ms
        else:
            start = 1_704_067_200_000  # 2024-01-01: reproducible by seed
        out = {}
        for sym in opts.symbols:
            spec = specs.get(sym.upper())
            if spec is None:
                raise ConfigError(f"the local exchange has no rules for {sym!r}; known symbols: {sorted(specs)}")
            exponent = spec.tick.normalize().as_tuple().exponent
            decimals = max(0, -exponent) if spec.tick > 0 and isinstance(exponent, int) else 2
            out[sym.upper()] = generate_candles(
                opts.synthetic_bars, timeframe=opts.timeframe, start=int(start),
                start_price=_START_PRICE.get(spec.base, 100.0), seed=opts.seed + sum(map(ord, sym.upper())),
                price_decimals=int(decimals))
        return out

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LocalExchange:
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="thunes-local-exchange", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            self._thread = None
            raise ConfigError(f"the local exchange could not start on {self.options.host}:{self.options.port}: "
                              f"{errors[0]}") from errors[0]
        return self

    async def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        from thunes.exchange.sim._server import build_app

        app = build_app(self)
        loop = asyncio.get_running_loop()
        def to_hub(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._hub.dispatch, event)

        self.engine.listeners.append(to_hub)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._stop = asyncio.Event()
        driver = loop.create_task(self._drive()) if self.options.speed is not None else None
        ready.set()
        await self._stop.wait()
        if driver is not None:
            driver.cancel()
        if self._hub is not None:
            for ws in list(self._hub.market) + list(self._hub.user):
                await ws.close(code=1001, message=b"server stopping")
        await self._runner.cleanup()

    async def _drive(self) -> None:
        """Move the market clock in the background (``speed`` N or ``"max"``)."""
        speed = self.options.speed
        loop = asyncio.get_running_loop()
        last = time.monotonic()
        while True:
            if speed == "max":
                await asyncio.sleep(0.002)
                target = (self.clock.now_ms() // self.base_tf_ms + 1) * self.base_tf_ms
            else:
                await asyncio.sleep(self.options.tick_s)
                now = time.monotonic()
                target = self.clock.now_ms() + int((now - last) * 1000 * float(speed))  # type: ignore[arg-type]
                last = now
            await loop.run_in_executor(None, self.engine.advance_to, target)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop, stop = self._loop, self._stop
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> LocalExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise ConfigError("the local exchange is not started; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (REST lives under ``/api/v3``)."""
        return f"http://{self.options.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Market streams base, ``ws://127.0.0.1:PORT/ws``."""
        return f"ws://{self.options.host}:{self.port}/ws"

    @property
    def ws_api_url(self) -> str:
        return f"ws://{self.options.host}:{self.port}/ws-api/v3"

    @property
    def api_key(self) -> str:
        return self.options.accounts[0].api_key

    @property
    def secret(self) -> str:
        return self.options.accounts[0].secret

    # -- the market clock ----------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def advance_to(self, ts_ms: int) -> None:
        """Move the market clock forward to ``ts_ms``; resting orders trade against the path in between."""
        self.engine.advance_to(int(ts_ms))

    def step(self, n: int = 1) -> int:
        """Advance to the n-th next candle boundary of the base timeframe; returns the new time."""
        for _ in range(max(n, 1)):
            target = (self.clock.now_ms() // self.base_tf_ms + 1) * self.base_tf_ms
            self.engine.advance_to(target)
        return self.clock.now_ms()

    def stream_counts(self) -> dict[str, int]:
        """Open websocket connections and subscriptions (tests wait on these instead of sleeping)."""
        hub = self._hub
        if hub is None:
            return {"market_connections": 0, "market_streams": 0, "user_subscriptions": 0}
        return {"market_connections": len(hub.market),
                "market_streams": sum(len(st["streams"]) for st in list(hub.market.values())),
                "user_subscriptions": sum(len(subs) for subs in list(hub.user.values()))}

    def last_price(self, symbol: str) -> Decimal:
        return self.engine.last_price(symbol.replace("/", "").upper())

    def set_balance(self, asset: str, free: Decimal | str, *, api_key: str | None = None) -> None:
        self.engine.set_balance(api_key or self.api_key, asset, Decimal(str(free)))
