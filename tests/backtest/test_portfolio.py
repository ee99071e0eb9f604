"""Multi-symbol portfolios: shared cash, position limit, and equality with the single engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from thunes.backtest import (
    BacktestOptions,
    FixedQuote,
    FixedSlippage,
    FractionOfEquity,
    RiskLimits,
    run_backtest,
)
from thunes.backtest.portfolio import run_portfolio
from thunes.core.candles import candles_frame
from thunes.data.samples import load_sample_candles
from thunes.strategies import Param, Signals, Strategy, get_strategy

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "LTC/USDT")


@pytest.mark.parametrize("options", [BacktestOptions(risk="live"), BacktestOptions(risk=None, stop_loss=0.02, take_profit=0.04,
                                                                         trailing_stop=0.03)])
def test_one_symbol_portfolio_equals_run_backtest(btc_1h, options):
    candles = btc_1h.frame.tail(5000)
    strategy = get_strategy("sma_cross")(fast=7, slow=30)
    single = run_backtest(candles, strategy, options=options)
    folio = run_portfolio({"BTC/USDT": candles}, strategy, options=options)
    pdt.assert_frame_equal(folio.trades, single.trades)
    pdt.assert_series_equal(folio.equity, single.equity)


def test_six_symbols_share_cash_and_respect_max_positions():
    samples = {s: load_sample_candles(s, "5m", limit=6000) for s in SYMBOLS}
    frames = {s: sample.frame for s, sample in samples.items()}
    limits = RiskLimits(max_positions=2, max_position_quote=4000, max_loss_per_trade=1e9, max_daily_loss=1e9)
    options = BacktestOptions(risk=limits, sizing=FractionOfEquity(fraction=0.5))
    result = run_portfolio(frames, get_strategy("sma_cross")(fast=10, slow=40), options=options, timeframe="5m")
    trades = result.trades
    assert set(trades.symbol) == set(SYMBOLS)
    # never more than 2 positions at any bar's close
    held = result.equity * 0
    for t in trades.itertuples():
        end = t.exit_ts if t.exit_reason != "open" else result.equity.index[-1] + (result.equity.index[1] - result.equity.index[0])
        held[(held.index >= t.entry_ts) & (held.index < end)] += 1
    assert held.max() == 2
    # Golden count of the entries the risk limits refused, per data source.
    assert result.stats["refused_risk"] == (355 if all(s.real for s in samples.values()) else 293)
    assert (trades.qty * trades.entry_price <= 4000 + 1e-6).all()
    assert result.stats["final_equity"] == pytest.approx(10_000 + trades.pnl.sum(), rel=1e-9)


class EnterAt(Strategy):
    """Enters on bar ``entry``, exits on bar ``exit`` (signals at those bars' closes)."""

    entry = Param(int, default=0, low=0, high=1000)
    exit = Param(int, default=1000, low=0, high=1000)

    def signals(self, candles: pd.DataFrame) -> Signals:
        bar = np.arange(len(candles))
        return Signals(entries=pd.Series(bar == self.entry, index=candles.index),
                       exits=pd.Series(bar == self.exit, index=candles.index))


def test_cash_is_shared_exits_free_it_before_entries():
    # Arrange: 1500 cash, 1000 quote per entry, no fees/slippage/filters/risk. Both symbols signal at
    # bar 0: AAA (first in order) gets 1000, BBB only the 500 left. AAA exits at bar 3's open and CCC
    # enters at that same open with the freed cash.
    idx = T0 + np.arange(6) * 3_600_000
    frames = {s: candles_frame(idx, *([np.full(6, px)] * 4), np.full(6, 10.0))
              for s, px in (("AAA/USDT", 100.0), ("BBB/USDT", 50.0), ("CCC/USDT", 20.0))}
    strategies = {"AAA/USDT": EnterAt(entry=0, exit=2), "BBB/USDT": EnterAt(entry=0), "CCC/USDT": EnterAt(entry=2)}
    options = BacktestOptions(initial_cash=1500, taker_fee_bps=0, maker_fee_bps=0, slippage=FixedSlippage(bps=0),
                              risk=None, apply_filters=False, sizing=FixedQuote(amount=1000))
    # Act
    result = run_portfolio(frames, strategies, options=options)
    # Assert
    notional = dict(zip(result.trades.symbol, result.trades.qty * result.trades.entry_price))
    assert notional == pytest.approx({"AAA/USDT": 1000.0, "BBB/USDT": 500.0, "CCC/USDT": 1000.0})
    assert list(result.trades.entry_bar) == [1, 1, 3]
    single = run_backtest(frames["BBB/USDT"], strategies["BBB/USDT"], options=options, symbol="BBB/USDT")
    assert single.trades.qty.iloc[0] * 50.0 == pytest.approx(1000.0)  # alone, BBB would get its full 1000
