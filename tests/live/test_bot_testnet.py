"""The bot in testnet mode: websockets (one feed per pair, merged) and REST through the configured URLs.

The local exchange stands in for the Spot Testnet (reached exactly as the testnet would be, ccxt sandbox
mode), replaying synthetic 1m candles that start at the wall clock's minute, 1200x faster.
"""

from __future__ import annotations

import time
from decimal import Decimal

from thunes.config import Settings
from thunes.core.candles import ts_ms
from thunes.core.events import CandleClosed, OrderFilled
from thunes.data.synthetic import generate_candles
from thunes.exchange.sim import LocalExchange
from thunes.live.config import BotSettings, JobSettings
from thunes.services.bot import BotRunRequest, events, run_bot

HISTORY = 300


def test_a_testnet_bot_trades_several_pairs_from_merged_websocket_feeds(tmp_path):
    minute = int(time.time() // 60 * 60_000)
    frames = {sym: generate_candles(HISTORY + 3000, timeframe="1m", start=minute - HISTORY * 60_000, seed=seed,
                                    start_price=price)
              for sym, seed, price in (("BTC/USDT", 5, 40_000.0), ("ETH/USDT", 6, 2_300.0), ("SOL/USDT", 7, 100.0))}
    with LocalExchange(candles=frames, start_ms=int(ts_ms(frames["BTC/USDT"])[HISTORY]), speed=1200,
                       tick_s=0.02) as sim:
        app = Settings(exchange={"base_url": sim.base_url, "ws_url": sim.ws_url, "api_key": sim.api_key,
                                 "api_secret": sim.secret},
                       data={"url": f"sqlite:///{tmp_path / 'candles.sqlite'}"}, audit={"fsync": "never"},
                       risk={"cool_down_minutes": 0})
        settings = BotSettings(exchange="testnet", pairs=list(frames), params={"fast": 3, "slow": 8},
                               timeframe="1m", quote_per_trade=Decimal("100"), state_dir=tmp_path / "bot",
                               jobs=JobSettings(reconcile_minutes=60))
        result = run_bot(BotRunRequest(settings=settings, max_candles=240, duration_s=90, control=False), app)
    r = result.report
    assert r.stop_reason == "240 candles processed", r.stop_reason
    log = events(result.state_dir)
    candles = [e for e in log if isinstance(e, CandleClosed)]
    assert {e.symbol for e in candles} == set(frames)
    assert {e.source for e in candles} <= {"stream", "backfill"}
    for sym in frames:  # each pair's candles in order, none twice
        bars = [e.bar_ts for e in candles if e.symbol == sym]
        assert bars == sorted(bars) and len(bars) == len(set(bars))
    assert len({e.symbol for e in log if isinstance(e, OrderFilled)}) >= 2
    assert result.status.risk["kill_switch"] is False
