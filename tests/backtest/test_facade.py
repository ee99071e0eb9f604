"""The research API says what it did: one call, an inferred timeframe, a named risk preset, what bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import thunes
from thunes.backtest import BacktestOptions, run_backtest
from thunes.backtest.engine import infer_timeframe
from thunes.core.candles import candles_frame
from thunes.core.errors import ConfigError, DataError, StrategyError
from thunes.data.samples import load_sample_candles
from thunes.strategies import Signals
from thunes.strategies.sma_cross import SmaCross


@pytest.fixture(scope="module")
def btc_5m():
    return load_sample_candles("BTC/USDT", "5m", limit=20_000).frame


def test_one_call_from_candles_and_a_strategy_class_to_a_result(btc_1h):
    result = thunes.backtest_strategy(btc_1h.frame.tail(5000), SmaCross, fast=10, slow=50)
    assert result.params["fast"] == 10 and result.timeframe == "1h"
    assert {"sharpe", "total_return"} <= set(result.stats)
    assert len(result.trades) == (65 if btc_1h.real else 67)  # golden count per data source
    assert len(result.equity) == 5000
    assert len(result.plot().data) == 5  # price, entry markers, exit markers, equity, drawdown
    assert "risk: research (no risk limits)" in str(result)


def test_the_research_default_caps_nothing_and_places_no_stop(btc_1h):
    """Without a named choice no position cap and no stop act: all signals trade at the chosen sizing."""
    candles = btc_1h.frame.tail(5000)
    research = run_backtest(candles, SmaCross())
    assert research.options.risk is None and set(research.trades.exit_reason) <= {"signal", "open"}
    assert (research.trades.qty * research.trades.entry_price).max() > 1000  # all-in, not 100 quote
    live = thunes.backtest_strategy(candles, SmaCross, risk="live")
    assert set(live.trades.exit_reason) <= {"signal", "open"}  # the default stop sizes; it is not placed
    assert f"capped_position_quote {len(live.trades)}x" in live.summary()
    assert "live limits: max_positions=3" in live.summary()


def test_timeframe_is_inferred_from_the_index_and_a_mismatch_raises(btc_5m):
    inferred = run_backtest(btc_5m, SmaCross())
    assert inferred.timeframe == "5m"
    assert inferred.stats["sharpe"] == run_backtest(btc_5m, SmaCross(), timeframe="5m").stats["sharpe"]
    with pytest.raises(DataError, match="timeframe='1h' but the candles are 5m apart"):
        run_backtest(btc_5m, SmaCross(), timeframe="1h")


def test_inference_ignores_holes_in_the_data():
    ts = 1_704_067_200_000 + np.array([0, 1, 2, 5, 6, 7, 8, 20, 21]) * 60_000
    frame = candles_frame(ts, *(np.full(len(ts), 100.0),) * 4, np.ones(len(ts)))
    assert infer_timeframe(frame.index) == "1m"


def test_signals_alone_need_no_strategy(btc_1h):
    candles = btc_1h.frame.tail(2000)
    signals = SmaCross(fast=5, slow=20).signals(candles)
    no_gap_rule = BacktestOptions(refuse_gap_entries=False)  # the only use of the strategy's warm-up
    alone = run_backtest(candles, signals=signals, options=no_gap_rule)
    paired = run_backtest(candles, SmaCross(fast=5, slow=20), signals=signals, options=no_gap_rule)
    assert alone.strategy == "signals" and len(alone.trades) == (66 if btc_1h.real else 61)  # golden counts
    pd.testing.assert_frame_equal(alone.trades, paired.trades)
    with pytest.raises(StrategyError, match="a strategy or signals="):
        run_backtest(candles)


def test_risk_preset_is_a_named_choice():
    assert BacktestOptions().risk_preset == "research"
    assert BacktestOptions(risk="live").risk_preset == "live"
    with pytest.raises(ConfigError, match="unknown risk preset 'liv'; choose one of research, live"):
        BacktestOptions(risk="liv")


def test_a_signal_series_run_has_the_same_summary_lines(btc_1h):
    candles = btc_1h.frame.tail(500)
    result = run_backtest(candles, signals=Signals(entries=pd.Series(False, index=candles.index)))
    assert result.summary().splitlines()[-1] == "risk: research (no risk limits)"
