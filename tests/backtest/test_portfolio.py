"""Multi-symbol portfolios: shared cash, position limit, and equality with the single engine."""

from __future__ import annotations

import pandas.testing as pdt
import pytest

from thunes.backtest import BacktestOptions, FractionOfEquity, RiskLimits, run_backtest
from thunes.backtest.portfolio import run_portfolio
from thunes.data.samples import load_sample_candles
from thunes.strategies import get_strategy

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "LTC/USDT")


@pytest.mark.parametrize("options", [BacktestOptions(), BacktestOptions(risk=None, stop_loss=0.02, take_profit=0.04,
                                                                         trailing_stop=0.03)])
def test_one_symbol_portfolio_equals_run_backtest(btc_1h, options):
    candles = btc_1h.frame.tail(5000)
    strategy = get_strategy("sma_cross")(fast=7, slow=30)
    single = run_backtest(candles, strategy, options=options)
    folio = run_portfolio({"BTC/USDT": candles}, strategy, options=options)
    pdt.assert_frame_equal(folio.trades, single.trades)
    pdt.assert_series_equal(folio.equity, single.equity)


def test_six_symbols_share_cash_and_respect_max_positions():
    frames = {s: load_sample_candles(s, "5m", limit=6000).frame for s in SYMBOLS}
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
    assert result.stats["refused_risk"] > 0
    assert (trades.qty * trades.entry_price <= 4000 + 1e-6).all()
    assert result.stats["final_equity"] == pytest.approx(10_000 + trades.pnl.sum(), rel=1e-9)
