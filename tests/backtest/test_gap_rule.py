"""The gap rule: no entry on a signal whose window spans missing candles, the same in the single
engine, the portfolio and both sweep paths; a strategy can veto entries with ``refuse_entries``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.backtest import BacktestOptions, FixedQuote, FixedSlippage, run_backtest, run_portfolio, run_sweep
from thunes.backtest.prepared import gap_flags
from thunes.core.candles import candles_frame, ts_ms
from thunes.core.errors import ConfigError, StrategyError
from thunes.strategies import Signals
from thunes.strategies.sma_cross import SmaCross

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

# Bars 0-9 at 00:00..09:00, then 3 missing hours: bar 10 opens at 13:00. Closes chosen so that
# SMA(2) crosses above SMA(5) on bar 11 (its window, bars 6..11, spans the hole), below on bar 13,
# and above again on bar 18, when the window (bars 13..18) and the fill (bar 19) are clear of it.
CLOSES = [110, 108, 106, 104, 102, 100, 100, 100, 100, 100,
          100, 110, 110, 85, 85, 85, 85, 85, 95, 95, 95, 95, 95]
STAMPS = T0 + np.array(list(range(10)) + [h + 3 for h in range(10, 23)]) * HOUR
BARE = BacktestOptions(taker_fee_bps=0, maker_fee_bps=0, slippage=FixedSlippage(bps=0), risk=None,
                       apply_filters=False, sizing=FixedQuote(amount=1000))
CROSS = SmaCross(fast=2, slow=5)  # warmup 6: the slow average at t and t-1


def gapped_candles() -> pd.DataFrame:
    c = np.asarray(CLOSES, dtype=float)
    return candles_frame(STAMPS, c, c * 1.001, c * 0.999, c, np.full(len(c), 10.0))


def test_gap_flags_mark_the_fill_bars_whose_window_spans_the_hole():
    ts = ts_ms(gapped_candles())
    # window 1: only the bar after the hole; window 6 (sma 2/5): fills at bars 10..15, i.e. signals
    # of bars 9..14, whose 6-bar window or step to the fill contains the hole.
    assert np.flatnonzero(gap_flags(ts, "1h")).tolist() == [10]
    assert np.flatnonzero(gap_flags(ts, "1h", 6)).tolist() == [10, 11, 12, 13, 14, 15]
    with pytest.raises(ConfigError, match="gap window must be >= 1"):
        gap_flags(ts, "1h", 0)


def test_a_cross_whose_slow_window_spans_a_hole_is_refused_and_the_next_one_is_taken():
    # Arrange
    candles = gapped_candles()
    signals = CROSS.signals(candles)
    assert np.flatnonzero(signals.entries).tolist() == [11, 18]
    assert np.flatnonzero(signals.exits).tolist() == [13]
    # Act
    guarded = run_backtest(candles, CROSS, options=BARE)
    free = run_backtest(candles, CROSS, options=BARE.replace(refuse_gap_entries=False))
    # Assert: the cross of bar 11 is refused; the cross of bar 18 fills at bar 19's open.
    assert guarded.trades.entry_bar.tolist() == [19] and guarded.stats["refused_gap"] == 1
    assert guarded.trades.entry_price.tolist() == [95.0]
    assert guarded.stats["refused_risk"] == 0
    assert free.trades.entry_bar.tolist() == [12, 19] and free.stats["refused_gap"] == 0
    assert free.trades.exit_bar.tolist()[0] == 14  # without the rule: bought at 110, sold at 85


def test_portfolio_and_both_sweep_paths_refuse_the_same_entry():
    candles = gapped_candles()
    single = run_backtest(candles, CROSS, options=BARE, symbol="BTC/USDT")
    folio = run_portfolio({"BTC/USDT": candles}, CROSS, options=BARE)
    fused = run_sweep(candles, SmaCross, {"fast": [2], "slow": [5]}, BARE).iloc[0]
    generic = run_sweep(candles, PlainCross, {"fast": [2], "slow": [5]}, BARE).iloc[0]
    assert folio.trades.entry_bar.tolist() == [19] and folio.stats["refused_gap"] == 1
    for row in (fused, generic):
        for key in ("n_trades", "refused_gap", "refused_risk", "final_equity", "turnover"):
            assert row[key] == pytest.approx(single.stats[key], rel=1e-12), key


class PlainCross(SmaCross):
    """SmaCross with its own ``signals`` (same values), so sweeps take the generic path."""

    name = "plain_cross"

    def signals(self, candles: pd.DataFrame) -> Signals:
        return SmaCross.signals(self, candles)


class VetoedCross(SmaCross):
    """SmaCross whose entries are vetoed on bars whose close is below 103 (a stand-in for a feature
    set's ``gap_flag``)."""

    name = "vetoed_cross"

    def signals(self, candles: pd.DataFrame) -> Signals:
        base = SmaCross.signals(self, candles)
        return Signals(entries=base.entries, exits=base.exits, refuse_entries=candles["close"] < 103.0)


def test_a_strategy_veto_refuses_entries_but_never_exits():
    # Arrange: no hole. Closes dip so that SMA(2)/SMA(5) cross up on bar 6 (close 104), down on
    # bar 9 (close 94: vetoed, but it is an exit) and up on bar 12 (close 102: vetoed entry).
    closes = np.array([100, 100, 100, 100, 100, 100, 104, 104, 104, 94, 94, 94, 102, 102, 102], dtype=float)
    candles = candles_frame(T0 + np.arange(len(closes)) * HOUR, closes, closes, closes, closes,
                            np.full(len(closes), 10.0))
    strategy = VetoedCross(fast=2, slow=5)
    signals = strategy.signals(candles)
    assert np.flatnonzero(signals.entries).tolist() == [6, 12]
    assert np.flatnonzero(signals.exits).tolist() == [9]
    # Act
    single = run_backtest(candles, strategy, options=BARE)
    folio = run_portfolio({"BTC/USDT": candles}, strategy, options=BARE)
    swept = run_sweep(candles, VetoedCross, {"fast": [2], "slow": [5]}, BARE).iloc[0]
    # Assert: entry of bar 6 taken, its exit on the vetoed bar 9 executed, the entry of bar 12 refused.
    assert single.trades.entry_bar.tolist() == [7] and single.trades.exit_bar.tolist() == [10]
    assert single.stats["refused_gap"] == 1
    assert folio.trades.entry_bar.tolist() == [7] and folio.stats["refused_gap"] == 1
    assert swept["refused_gap"] == 1 and swept["n_trades"] == 1
    # refuse_gap_entries=False turns the whole rule off, the strategy's veto included.
    off = run_backtest(candles, strategy, options=BARE.replace(refuse_gap_entries=False))
    assert off.trades.entry_bar.tolist() == [7, 13] and off.stats["refused_gap"] == 0


def test_refuse_entries_must_match_the_candles_and_warmup_must_be_a_bar_count():
    candles = gapped_candles()
    short = Signals(entries=pd.Series(False, index=candles.index), refuse_entries=pd.Series([True, False]))
    with pytest.raises(StrategyError, match="'refuse_entries' has 2 rows, candles have 23"):
        short.arrays(candles.index)

    class Broken(SmaCross):
        @property
        def warmup(self) -> int:
            return -3

    with pytest.raises(StrategyError, match="Broken.warmup must be a number of bars"):
        run_backtest(candles, Broken(fast=2, slow=5), options=BARE)
