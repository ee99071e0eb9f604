"""The backtester: a numba engine that executes signals on the next bar, sweeps, metrics, reports.

Public surface: ``thunes.backtest_strategy`` (:mod:`thunes.backtest.facade`, one call for research),
:func:`run_backtest` (one symbol), :class:`PreparedBacktest` (one symbol's candles prepared once for
many strategies: what runs, sweeps and optimiser trials use), :func:`run_portfolio` (several symbols,
shared cash), :func:`run_sweep` (a parameter grid as one kernel call), :func:`compute_metrics`, and the
option objects. See docs/backtest.md.
"""

from thunes.backtest.engine import (
    RISK_PRESETS,
    BacktestOptions,
    BacktestResult,
    FixedQuote,
    FixedSlippage,
    FractionOfEquity,
    RiskLimits,
    VolatilitySlippage,
    VolTarget,
    VolumeSlippage,
    default_market,
    infer_timeframe,
    risk_preset,
)
from thunes.backtest.metrics import compute_metrics
from thunes.backtest.portfolio import run_portfolio
from thunes.backtest.prepared import PreparedBacktest, run_backtest
from thunes.backtest.sweep import run_sweep

__all__ = [
    "RISK_PRESETS",
    "BacktestOptions",
    "BacktestResult",
    "FixedQuote",
    "FixedSlippage",
    "FractionOfEquity",
    "PreparedBacktest",
    "RiskLimits",
    "VolTarget",
    "VolatilitySlippage",
    "VolumeSlippage",
    "compute_metrics",
    "default_market",
    "infer_timeframe",
    "risk_preset",
    "run_backtest",
    "run_portfolio",
    "run_sweep",
]
