"""The prepared backtest: candles prepared once, then strategy -> signals -> gap rule -> kernel -> metrics,
the one path behind ``run_backtest``, sweeps, portfolios and optimiser trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _import_graph import import_graph

from thunes.backtest import (
    BacktestOptions,
    PreparedBacktest,
    RiskLimits,
    VolTarget,
    compute_metrics,
    run_backtest,
    run_sweep,
)
from thunes.backtest.metrics import RISK_COUNT_NAMES
from thunes.backtest.prepared import gap_flags
from thunes.core.candles import ts_ms
from thunes.strategies import CrossGrid, Param, Signals, Strategy, crossed_above, crossed_below
from thunes.strategies.rsi_bollinger import RsiBollinger
from thunes.strategies.sma_cross import SmaCross

OPTIONS = {
    "research": BacktestOptions(),
    "live limits": BacktestOptions(risk="live"),
    "shorts and stops": BacktestOptions(
        allow_short=True, stop_loss=0.03, take_profit=0.05, trailing_stop=0.04,
        risk=RiskLimits(max_position_quote=2_000.0, max_daily_loss=200.0, max_loss_per_trade=60.0)),
    "vol target, fee in base": BacktestOptions(sizing=VolTarget(annual_vol=0.3, window=72), fee_in_base=True),
}


def _holed(btc_1h) -> pd.DataFrame:  # noqa: ANN001
    frame = btc_1h.frame.tail(6000)
    return frame.drop(frame.index[1500:1512]).drop(frame.index[4000:4001])


def _same(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("label", list(OPTIONS))
def test_a_runs_metrics_equal_those_of_its_own_trade_list_and_curve(btc_1h, label):
    """A run's metrics come from the kernel's statistics and trade records; they are exactly
    ``compute_metrics`` of the run's trade list and equity curve (one definition, bit for bit)."""
    options = OPTIONS[label]
    strategy = SmaCross(fast=7, slow=30, short=options.allow_short)
    result = run_backtest(_holed(btc_1h), strategy, options=options)

    again = compute_metrics(
        result.equity, result.trades, initial_cash=options.initial_cash, timeframe=result.timeframe,
        refused_filters=result.stats["refused_filters"], refused_risk=result.stats["refused_risk"],
        refused_gap=result.stats["refused_gap"], risk_counts={k: result.stats[k] for k in RISK_COUNT_NAMES})

    assert list(result.stats) == list(again)
    assert [k for k in again if not _same(result.stats[k], again[k])] == []
    # Golden (trades, entries refused for the gap) per data source: the comparison covers both.
    golden = ({"research": (140, 1), "live limits": (140, 1), "shorts and stops": (163, 2),
               "vol target, fee in base": (140, 1)} if btc_1h.real else
              {"research": (134, 1), "live limits": (134, 1), "shorts and stops": (136, 2),
               "vol target, fee in base": (133, 1)})
    assert (result.stats["n_trades"], result.stats["refused_gap"]) == golden[label]


def test_one_prepared_handle_serves_many_strategies_in_any_order(btc_1h):
    """Strategies with different signal windows, run and quick-run on one handle (cached gap flags, one
    reused record buffer), give exactly what a fresh ``run_backtest`` of each gives."""
    candles = _holed(btc_1h)
    options = OPTIONS["live limits"]
    strategies = [SmaCross(fast=5, slow=20), RsiBollinger(), SmaCross(fast=12, slow=60),
                  SmaCross(fast=5, slow=20)]
    prepared = PreparedBacktest.from_candles(candles, options)

    runs = [prepared.run(s) for s in strategies]
    quick = [prepared.quick(s) for s in strategies]

    # Golden trade counts per data source: every strategy trades.
    assert [len(run.trades) for run in runs] == ([215, 42, 65, 215] if btc_1h.real else [187, 52, 71, 187])
    for strategy, run, fast in zip(strategies, runs, quick, strict=True):
        fresh = run_backtest(candles, strategy, options=options)
        pd.testing.assert_frame_equal(run.trades, fresh.trades, check_exact=True)
        pd.testing.assert_series_equal(run.equity, fresh.equity, check_exact=True)
        assert run.settings_hash == fresh.settings_hash
        assert [k for k in fresh.stats if not _same(run.stats[k], fresh.stats[k])] == []
        assert [k for k in fast.stats if not _same(fast.stats[k], fresh.stats[k])] == []
        np.testing.assert_array_equal(fast.equity, fresh.equity.to_numpy())
        assert fast.n_trades == len(fresh.trades)


def test_the_gap_flags_of_a_window_are_computed_once_and_follow_the_option(btc_1h):
    candles = _holed(btc_1h)
    prepared = PreparedBacktest.from_candles(candles, BacktestOptions())
    off = PreparedBacktest.from_candles(candles, BacktestOptions(refuse_gap_entries=False))

    flags = prepared.gap_flags(21)

    assert prepared.gap_flags(21) is flags
    np.testing.assert_array_equal(flags, gap_flags(ts_ms(candles), "1h", 21))
    # Each hole (before rows 1500 and 3988) flags the 21 fills whose window spans it.
    assert flags[1500:1521].all() and flags[3988:4009].all() and not flags[1521] and not flags[4009]
    assert not off.gap_flags(21).any() and prepared.timeframe == "1h" and prepared.n_bars == len(candles)


def _ema(period: int):  # noqa: ANN202
    def line(close: np.ndarray) -> np.ndarray:
        return pd.Series(close).ewm(span=period, adjust=False, min_periods=period).mean().to_numpy()
    return line


class EmaCross(Strategy):
    """A strategy the backtester does not know, offering its grid as crossings of shared lines."""

    name = "test_ema_cross"
    fast = Param(int, default=10, low=2, high=200)
    slow = Param(int, default=40, low=5, high=500)
    signal_calls = 0

    @property
    def warmup(self) -> int:
        return self.slow + 1

    def signals(self, candles: pd.DataFrame) -> Signals:
        type(self).signal_calls += 1
        close = candles["close"].to_numpy(dtype=np.float64)
        f = pd.Series(_ema(self.fast)(close), index=candles.index)
        s = pd.Series(_ema(self.slow)(close), index=candles.index)
        return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))

    @classmethod
    def signal_grid(cls, combos):  # noqa: ANN001, ANN206
        periods = sorted({c["fast"] for c in combos} | {c["slow"] for c in combos})
        row = {p: i for i, p in enumerate(periods)}
        return CrossGrid(lines=tuple(_ema(p) for p in periods), fast=tuple(row[c["fast"]] for c in combos),
                         slow=tuple(row[c["slow"]] for c in combos))


def test_a_strategy_offering_a_cross_grid_is_swept_without_calling_its_signals_per_combo(btc_1h):
    """The sweep's fused path is a hook any strategy class may offer (``signal_grid``), not a special case
    of one strategy: the rows equal single runs, and ``signals()`` is never called during the sweep."""
    candles = _holed(btc_1h)
    options = OPTIONS["live limits"]
    EmaCross.signal_calls = 0

    table = run_sweep(candles, EmaCross, {"fast": [5, 12], "slow": [30, 80]}, options)

    assert EmaCross.signal_calls == 0
    # Golden trade counts of each combo per data source: every row trades.
    n_trades = ({(5, 30): 159, (5, 80): 76, (12, 30): 100, (12, 80): 53} if btc_1h.real
                else {(5, 30): 152, (5, 80): 87, (12, 30): 107, (12, 80): 59})
    for row in table.itertuples():
        single = run_backtest(candles, EmaCross(fast=row.fast, slow=row.slow), options=options).stats
        assert single["n_trades"] == n_trades[(row.fast, row.slow)]
        for key in ("final_equity", "n_trades", "sharpe", "max_drawdown", "fees_paid", "refused_gap",
                    "refused_risk"):
            assert getattr(row, key) == pytest.approx(single[key], rel=1e-9, nan_ok=True), key


def test_sma_cross_offers_its_grid_only_for_its_own_long_only_signals():
    class Changed(SmaCross):
        name = "test_changed_cross"

        def signals(self, candles: pd.DataFrame) -> Signals:
            return SmaCross.signals(self, candles)

    combos = [SmaCross(fast=5, slow=30).params, SmaCross(fast=10, slow=30).params]
    grid = SmaCross.signal_grid(combos)

    assert grid is not None and len(grid.lines) == 3 and grid.fast == (0, 1) and grid.slow == (2, 2)
    assert Changed.signal_grid(combos) is None
    assert SmaCross.signal_grid([SmaCross(fast=5, slow=30, short=True).params]) is None
    assert RsiBollinger.signal_grid([RsiBollinger().params]) is None


def test_the_backtester_imports_no_particular_strategy():
    """Runs, sweeps and trials know strategies only through the Strategy API (thunes.strategies.base)."""
    graph = import_graph()
    for module in ("thunes.backtest.sweep", "thunes.backtest.prepared", "thunes.backtest.engine",
                   "thunes.optimize._evaluate", "thunes.optimize.evaluator"):
        named = sorted(m for m in graph[module]
                       if m.startswith("thunes.strategies.") and m != "thunes.strategies.base")
        assert named == [], module
