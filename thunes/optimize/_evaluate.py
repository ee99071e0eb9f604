"""The one place the optimiser touches the backtester: options to and from JSON, one run, its returns.

Why a separate module: a study's backtest options travel as JSON inside the study (workers on other
machines rebuild them), and the per-bar return convention must match ``thunes.backtest.metrics`` (the
first return is measured against the initial cash) so the DSR's per-bar Sharpe ratio is the annualised
one divided by ``sqrt(bars_per_year)``.

Trials run through the backtester's own prepared path (:class:`thunes.backtest.PreparedBacktest`, built
once per evaluator: every trial backtests the same candles with the same options, only the strategy
parameters change; :meth:`~thunes.backtest.PreparedBacktest.quick` gives the metrics of
:func:`run_backtest` bit for bit without building the trade DataFrame and the equity Series, which
would cost a trial more than its backtest).
Full results (trade list, equity Series) are built by :func:`run` for the best parameters and reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from thunes.backtest import (
    BacktestOptions,
    FixedQuote,
    FixedSlippage,
    FractionOfEquity,
    RiskLimits,
    VolatilitySlippage,
    VolTarget,
    VolumeSlippage,
    compute_metrics,
    run_backtest,
)
from thunes.core.errors import ConfigError
from thunes.strategies import Strategy

__all__ = [
    "bar_returns",
    "bar_returns_array",
    "make_options",
    "metrics",
    "options_to_json",
    "run",
]

_SIZING = {"fixed_quote": FixedQuote, "fraction": FractionOfEquity, "vol_target": VolTarget}
_SLIPPAGE = {"fixed": FixedSlippage, "volatility": VolatilitySlippage, "volume": VolumeSlippage}


def options_to_json(options: BacktestOptions) -> dict[str, Any]:
    """The options as plain JSON values (nested option objects carry their ``kind``)."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.to_dict().items()}


def _build(kinds: Mapping[str, type], value: Any, what: str) -> Any:
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    kind = data.pop("kind", None)
    if kind not in kinds:
        raise ConfigError(f"backtest option {what}: unknown kind {kind!r} (known: {', '.join(kinds)})")
    return kinds[kind](**data)


def make_options(data: Mapping[str, Any] | None) -> BacktestOptions:
    """Rebuild :class:`BacktestOptions` from :func:`options_to_json` output (missing keys: defaults)."""
    data = dict(data or {})
    known = {f.name for f in fields(BacktestOptions)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown backtest option(s) {unknown}; known: {sorted(known)}")
    if "sizing" in data:
        data["sizing"] = _build(_SIZING, data["sizing"], "sizing")
    if "slippage" in data:
        data["slippage"] = _build(_SLIPPAGE, data["slippage"], "slippage")
    if isinstance(data.get("risk"), Mapping):
        data["risk"] = RiskLimits(**data["risk"])
    return BacktestOptions(**data)


def run(candles: pd.DataFrame, strategy: Strategy, options: BacktestOptions, symbol: str, timeframe: str
        ) -> tuple[dict[str, Any], pd.Series, pd.DataFrame]:
    """One backtest: (stats, equity at each bar's close, trades)."""
    result = run_backtest(candles, strategy, options=options, symbol=symbol, timeframe=timeframe)
    return result.stats, result.equity, result.trades


def bar_returns(equity: pd.Series, initial_cash: float) -> pd.Series:
    """Simple per-bar returns, the first against the initial cash (the metrics module's convention)."""
    return pd.Series(bar_returns_array(equity.to_numpy(dtype="float64"), initial_cash), index=equity.index,
                     name="return")


def metrics(equity: pd.Series, trades: pd.DataFrame, initial_cash: float, timeframe: str) -> dict[str, Any]:
    """The backtester's metrics of an equity curve (e.g. stitched out-of-sample windows)."""
    return compute_metrics(equity, trades, initial_cash=initial_cash, timeframe=timeframe)


def bar_returns_array(equity: np.ndarray, initial_cash: float) -> np.ndarray:
    """:func:`bar_returns` on an array (no index; numpy, not Series.shift: this runs once per trial)."""
    out = np.empty_like(equity)
    if equity.size:
        # In place, without a shifted copy: the same two IEEE operations per bar as equity / prev - 1.
        out[0] = equity[0] / initial_cash
        np.divide(equity[1:], equity[:-1], out=out[1:])
        out -= 1.0
    return out
