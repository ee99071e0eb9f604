"""Sweeps: one kernel call over parameter columns, rows equal to the single runs."""

from __future__ import annotations

import pytest

from thunes.backtest import BacktestOptions, run_backtest
from thunes.backtest.sweep import expand_grid, run_sweep
from thunes.core.errors import StrategyError
from thunes.strategies import get_strategy

KEYS = ("final_equity", "n_trades", "sharpe", "sortino", "max_drawdown", "win_rate", "fees_paid", "exposure",
        "turnover", "refused_risk", "refused_filters", "refused_gap")


@pytest.mark.parametrize("options", [BacktestOptions(risk="live"), BacktestOptions(risk=None, stop_loss=0.03, trailing_stop=0.05)])
def test_fused_sma_sweep_rows_equal_single_runs(btc_1h, options):
    candles = btc_1h.frame.tail(6000)
    cls = get_strategy("sma_cross")
    table = run_sweep(candles, cls, {"fast": [5, 12], "slow": [30, 80]}, options)
    assert list(zip(table.fast, table.slow)) == [(5, 30), (5, 80), (12, 30), (12, 80)]
    for row in table.itertuples():
        single = run_backtest(candles, cls(fast=row.fast, slow=row.slow), options=options).stats
        for key in KEYS:
            assert getattr(row, key) == pytest.approx(single[key], rel=1e-9, nan_ok=True), key


def test_generic_sweep_rows_equal_single_runs(btc_1h):
    candles = btc_1h.frame.tail(4000)
    cls = get_strategy("rsi_bollinger")
    options = BacktestOptions(risk=None)
    table = run_sweep(candles, cls, {"rsi_period": [7, 14], "bb_k": [1.5]}, options)
    for row in table.itertuples():
        single = run_backtest(candles, cls(rsi_period=row.rsi_period, bb_k=row.bb_k), options=options).stats
        for key in KEYS:
            assert getattr(row, key) == pytest.approx(single[key], rel=1e-9, nan_ok=True), key


def test_invalid_combinations_are_skipped_and_unknown_names_fail():
    combos, skipped = expand_grid(get_strategy("sma_cross"), {"fast": [10, 60], "slow": [50]})
    assert [c["fast"] for c in combos] == [10] and skipped == 1
    with pytest.raises(StrategyError, match="did you mean 'slow'"):
        expand_grid(get_strategy("sma_cross"), {"slwo": [50]})


def test_multi_symbol_sweep_has_a_row_per_symbol_and_combo():
    from thunes.data.samples import load_sample_candles

    # Both symbols' columns run in one kernel call on concatenated bars (of different lengths); each
    # row must still be that symbol's own single run, with its own exchange filters.
    samples = {"BTC/USDT": load_sample_candles("BTC/USDT", "1h", limit=2000),
               "ETH/USDT": load_sample_candles("ETH/USDT", "1h", limit=1500)}
    frames = {symbol: sample.frame for symbol, sample in samples.items()}
    real = all(sample.real for sample in samples.values())
    # Golden trade counts of each (symbol, fast) row, per data source: the rows are not vacuous.
    n_trades = ({("BTC/USDT", 5): 41, ("BTC/USDT", 10): 37, ("ETH/USDT", 5): 31, ("ETH/USDT", 10): 23} if real
                else {("BTC/USDT", 5): 39, ("BTC/USDT", 10): 26, ("ETH/USDT", 5): 27, ("ETH/USDT", 10): 23})
    cls = get_strategy("sma_cross")
    table = run_sweep(frames, cls, {"fast": [5, 10], "slow": [40]})
    assert list(table.symbol) == ["BTC/USDT", "BTC/USDT", "ETH/USDT", "ETH/USDT"]
    for row in table.itertuples():
        single = run_backtest(frames[row.symbol], cls(fast=row.fast, slow=row.slow), symbol=row.symbol).stats
        assert single["n_trades"] == n_trades[(row.symbol, row.fast)]
        for key in KEYS:
            assert getattr(row, key) == pytest.approx(single[key], rel=1e-12, nan_ok=True), (row.symbol, key)


def test_sweep_shows_a_progress_bar_only_when_asked_and_on_a_terminal(btc_1h, capsys, monkeypatch):
    import io
    import sys

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    candles = btc_1h.frame.tail(1000)
    grid = {"fast": [5, 10], "slow": [40]}
    run_sweep(candles, get_strategy("sma_cross"), grid, progress=True)
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: no bar
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    run_sweep(candles, get_strategy("sma_cross"), grid, progress=True)
    # tqdm draws the bar with its total at once; later redraws depend on timing, so only that is asserted.
    assert "sweep:" in tty.getvalue() and "0/2" in tty.getvalue() and "combo" in tty.getvalue()
    quiet = Tty()
    monkeypatch.setattr(sys, "stderr", quiet)
    run_sweep(candles, get_strategy("sma_cross"), grid, progress=False)
    assert quiet.getvalue() == ""
