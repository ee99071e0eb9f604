"""Incremental signals: a strategy's streamed newest-bar signals equal its batch ``signals()`` on the
trader's trailing window, bar after bar, across a gap and after a restart; and a trader running the streamed
path places exactly the orders the batch path places."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.data.samples import load_sample_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.execution.incremental import BarSignals, LastBarStrategy, StreamingSignals, streams
from thunes.live.assembly import ReplayClock, build_stack
from thunes.live.feed import Candle
from thunes.live.trader import TraderOptions
from thunes.strategies.rsi_bollinger import RsiBollinger
from thunes.strategies.sma_cross import SmaCross

OHLCV = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def candles():
    """Real BTC/USDT 1h candles when present (synthetic otherwise), with a 5-bar hole in the middle."""
    frame = load_sample_candles("BTC/USDT", "1h", limit=1500).frame
    return frame.drop(frame.index[700:705])


@pytest.mark.parametrize("short", [False, True])
def test_streamed_signals_equal_the_last_row_of_batch_signals_on_every_trailing_window(candles, btc_1h, short):
    # Arrange: the trader's view, a trailing window of 120 bars sliding one candle at a time; a restart at bar 900
    fast, slow, window = 5, 20, 120
    batch = SmaCross(fast=fast, slow=slow, short=short)
    stream = StreamingSignals(SmaCross(fast=fast, slow=slow, short=short))
    ts, values = ts_ms(candles), candles[OHLCV].to_numpy()
    crosses = 0
    for t in range(window, len(candles)):
        if t == 900:
            stream = StreamingSignals(SmaCross(fast=fast, slow=slow, short=short))  # a new process
        rows = slice(t - window + 1, t + 1)
        # Act
        got = stream.sync(ts[rows], values[rows])
        a = batch.signals(candles.iloc[rows]).arrays(candles.index[rows])
        want = BarSignals(entry=bool(a.entries[-1]), exit=bool(a.exits[-1]), short_entry=bool(a.short_entries[-1]),
                          short_exit=bool(a.short_exits[-1]), refuse_entry=bool(a.refuse_entries[-1]))
        # Assert
        assert got == want, f"bar {t}"
        crosses += got.entry + got.exit
    # The comparison covered many signals, not only quiet bars: golden count of crosses per data source.
    assert crosses == (87 if btc_1h.real else 77)
    assert stream.rebuilds == 1  # after the restart's warm-up it only advanced


def _run(frame, tmp_path: Path, strategy, warm: int, bars: int) -> list[tuple[int, str]]:
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[warm])).start()
    try:
        options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                                state_dir=tmp_path / "state", window_bars=warm)
        stack = build_stack(CcxtExchange.for_local(sim), strategy=strategy, options=options,
                            risk_settings=RiskSettings(cool_down_minutes=0), audit_path=tmp_path / "audit.jsonl",
                            ledger_path=tmp_path / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never",
                            durable=False)
        stack.trader.warm_up(frame.iloc[:warm])
        stamps, out = ts_ms(frame), []
        try:
            for i in range(warm, warm + bars):
                sim.advance_to(int(stamps[i + 1]))
                r = frame.iloc[i]
                d = stack.trader.on_candle(Candle(ts_ms=int(stamps[i]), open=float(r.open), high=float(r.high),
                                                  low=float(r.low), close=float(r.close), volume=float(r.volume)))
                out.append((d.bar_ts, d.action))
        finally:
            stack.close()
    finally:
        sim.stop()
    return out


class RewrittenSmaCross(SmaCross):
    """A subclass that rewrites signals() (here to the same thing) and not stream_advance."""

    def signals(self, candles):
        return super().signals(candles)


def test_a_trader_on_the_streamed_path_places_the_same_orders_as_on_the_batch_path(tmp_path, btc_1h):
    # Arrange: real candles, the same SMA cross once on the batch path (a subclass that rewrites signals() is
    # never streamed), once stepped from its streamed state by the trader, once through LastBarStrategy
    frame = load_sample_candles("BTC/USDT", "1h", limit=400).frame
    # Act
    batch = _run(frame, tmp_path / "batch", RewrittenSmaCross(fast=5, slow=20), warm=60, bars=300)
    stepped = _run(frame, tmp_path / "stepped", SmaCross(fast=5, slow=20), warm=60, bars=300)
    streamed = _run(frame, tmp_path / "stream", LastBarStrategy(SmaCross(fast=5, slow=20)), warm=60,
                    bars=300)
    # Assert
    assert stepped == batch and streamed == batch
    assert sum(1 for _ts, action in batch if action in ("buy", "sell")) == (21 if btc_1h.real else 17)  # golden


def test_a_strategy_without_the_protocol_is_refused_by_the_adapter():
    with pytest.raises(TypeError, match="stream_init"):
        StreamingSignals(RsiBollinger())  # type: ignore[arg-type]


def test_the_trader_streams_a_strategy_only_where_its_stream_was_written_for_its_signals():
    class BothRewritten(RewrittenSmaCross):
        def stream_advance(self, state, ts_ms, open, high, low, close, volume):
            return SmaCross.stream_advance(self, state, ts_ms, open, high, low, close, volume)

    assert streams(SmaCross())  # the built-in SMA cross is stepped from its streamed state
    assert not streams(RewrittenSmaCross())  # signals() rewritten below the stream: the batch path
    assert streams(BothRewritten())
    assert not streams(RsiBollinger())  # no protocol
