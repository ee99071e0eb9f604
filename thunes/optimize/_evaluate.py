"""The one place the optimiser touches the backtester: options to and from JSON, one run, its returns.

Why a separate module: a study's backtest options travel as JSON inside the study (workers on other
machines rebuild them), and the per-bar return convention must match ``thunes.backtest.metrics`` (the
first return is measured against the initial cash) so the DSR's per-bar Sharpe ratio is the annualised
one divided by ``sqrt(bars_per_year)``.

Why a prepared path (:class:`PreparedCandles`, :func:`run_prepared`): every trial of a study backtests
the same candles with the same options; only the strategy parameters change. :func:`run_backtest`
re-validates the candles, re-reads the timestamps, rebuilds the option vector and turns the kernel's
records into a trade DataFrame and the metrics into pandas work on every call, which cost a 58 000-bar
trial about 15 times the numba kernel (issue 8). The prepared path does the parameter-independent part
once per study and, per trial, only computes the signals, calls the kernel and derives the metrics from
the kernel's statistics and trade records with numpy, giving the same numbers bit for bit (tested
against :func:`run_backtest`). Full results (trade list, equity Series) are still built by :func:`run`
for the best parameters and the reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
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
from thunes.backtest import _kernels as K
from thunes.backtest.engine import (
    PreparedInputs,
    default_market,
    entry_gaps,
    gap_flags,
    options_vector,
    prepare_inputs,
    strategy_arrays,
    strategy_warmup,
)
from thunes.backtest.metrics import stats_from_kernel
from thunes.core.errors import ConfigError
from thunes.strategies import Strategy

__all__ = [
    "PreparedCandles",
    "QuickRun",
    "bar_returns",
    "bar_returns_array",
    "make_options",
    "metrics",
    "options_to_json",
    "prepare",
    "run",
    "run_prepared",
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


_GAP_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedCandles:
    """The parameter-independent inputs of a study's backtests, built once (:func:`prepare`).

    ``records`` is a scratch buffer for the kernel's trade records, reused by every run of this handle:
    one handle serves one thread (a study's evaluator runs its trials one after the other).
    """

    candles: pd.DataFrame
    symbol: str
    timeframe: str
    options: BacktestOptions
    inputs: PreparedInputs
    p: np.ndarray
    lean: bool | None
    records: np.ndarray
    gaps: dict[int, np.ndarray]  # gap flags by signal window length, filled as trials need them

    def gap_for(self, strategy: Strategy, arrays: Any) -> np.ndarray:
        """The kernel's ``gap`` argument for ``strategy``, exactly as :func:`run_backtest` builds it (the
        entries whose ``warmup``-bar signal window spans a hole, or that the signals veto)."""
        if not self.options.refuse_gap_entries:
            return entry_gaps(self.inputs.gap, arrays, self.options)
        window = strategy_warmup(strategy)
        flags = self.gaps.get(window)
        if flags is None:
            flags = gap_flags(self.inputs.ts, self.timeframe, window)
            if len(self.gaps) * flags.size < _GAP_CACHE_BYTES:  # bool arrays: one byte a bar
                self.gaps[window] = flags
        return entry_gaps(flags, arrays, self.options)


def prepare(candles: pd.DataFrame, options: BacktestOptions, symbol: str, timeframe: str) -> PreparedCandles:
    """Validate the candles and build the kernel inputs and option vector once, as :func:`run_backtest`
    does on every call (same default market for ``symbol``)."""
    inputs = prepare_inputs(candles, timeframe, options)  # validates; refuses fewer than 2 candles
    p = options_vector(options, default_market(symbol), timeframe)
    records = np.empty((len(inputs.close) + 1, K.N_REC), dtype=np.float64)
    return PreparedCandles(candles=candles, symbol=symbol, timeframe=timeframe, options=options,
                           inputs=inputs, p=p, lean=K.is_lean(p), records=records, gaps={})


@dataclass(frozen=True, slots=True, kw_only=True)
class QuickRun:
    """What a trial needs of one backtest: the metrics (as :func:`run_backtest`'s, without start/end),
    the equity at each bar's close as an array, and the number of trades (the open one included)."""

    stats: dict[str, Any]
    equity: np.ndarray
    n_trades: int


def run_prepared(prepared: PreparedCandles, strategy: Strategy) -> QuickRun:
    """One backtest of ``strategy`` on prepared candles: signals, the kernel, metrics from its statistics.

    The metrics equal :func:`thunes.backtest.compute_metrics` of the full run exactly: the equity sums,
    drawdowns and counts come from the kernel's statistics (the same per-bar steps ``compute_metrics``
    replays), and the sums over trades (fees, turnover, gross profit and loss, bars held) are recomputed
    from the trade records with the same numpy reductions ``compute_metrics`` applies to the trade
    DataFrame, because the kernel's running sums add them in another order (last-bit differences).
    """
    inp = prepared.inputs
    arrays = strategy_arrays(strategy, prepared.candles)
    n = len(inp.close)
    equity = np.empty(n, dtype=np.float64)
    stats = np.zeros(K.N_STATS, dtype=np.float64)
    gap = prepared.gap_for(strategy, arrays)
    n_rec = K.simulate(
        inp.open, inp.high, inp.low, inp.close, inp.volume, inp.vol, gap, inp.ts,
        arrays.entries, arrays.exits, arrays.short_entries, arrays.short_exits,
        np.ascontiguousarray(arrays.size_scale, dtype=np.float64), prepared.p, prepared.records, equity,
        stats, prepared.lean,
    )
    rec = prepared.records[:n_rec]
    if n_rec:
        is_open = rec[:, K.R_REASON] == float(K.REASON_NAMES.index("open"))
        closed = rec[~is_open]
        pnl = closed[:, K.R_PNL]
        stop = np.where(is_open, n, rec[:, K.R_EXIT_BAR].astype(np.int64))
        held = (stop - rec[:, K.R_ENTRY_BAR].astype(np.int64)).astype(np.float64)
        entry_notional = rec[:, K.R_QTY] * rec[:, K.R_ENTRY_PRICE]
        exit_notional = closed[:, K.R_QTY] * closed[:, K.R_EXIT_PRICE]
        stats[K.S_TURNOVER] = float(entry_notional.sum() + exit_notional.sum())
        stats[K.S_FEES] = float((rec[:, K.R_ENTRY_FEE] + rec[:, K.R_EXIT_FEE]).sum())
        stats[K.S_GROSS_PROFIT] = float(pnl[pnl > 0].sum())
        stats[K.S_GROSS_LOSS] = float(-pnl[pnl <= 0].sum())
        stats[K.S_EXPOSURE_BARS] = stats[K.S_HOLD_BARS] = float(held.sum())
    metrics = stats_from_kernel(stats, initial_cash=prepared.options.initial_cash,
                                timeframe=prepared.timeframe)
    return QuickRun(stats=metrics, equity=equity, n_trades=int(n_rec))


def bar_returns_array(equity: np.ndarray, initial_cash: float) -> np.ndarray:
    """:func:`bar_returns` on an array (no index; numpy, not Series.shift: this runs once per trial)."""
    out = np.empty_like(equity)
    if equity.size:
        # In place, without a shifted copy: the same two IEEE operations per bar as equity / prev - 1.
        out[0] = equity[0] / initial_cash
        np.divide(equity[1:], equity[:-1], out=out[1:])
        out -= 1.0
    return out
