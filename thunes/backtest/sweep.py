"""Parameter sweeps: a grid of strategy parameters run as one parallel kernel call over columns.

Each (symbol, parameter set) is a column; columns run in parallel over cores (numba ``prange``) and
report only streaming statistics, no trade list or curve. Each symbol is a
:class:`~thunes.backtest.prepared.PreparedBacktest`, as in a single run: its kernel inputs, option
vector and gap-rule flags (one set per distinct signal window, shared by the columns that have it).

A strategy class whose grid's signals are crossings of shared lines says so through its
:meth:`~thunes.strategies.base.Strategy.signal_grid` hook (``sma_cross`` does: one moving average per
distinct period). Then the symbols' bars are concatenated, each line is computed once per symbol, and
the columns of every symbol go to one kernel call, each building its crossing signals in its worker's
two reused buffers, so memory stays O(bars x (lines + threads)), not O(bars x combos). Other strategies
run their ``signals()`` in Python for a chunk of columns at a time (memory O(bars x chunk)), one kernel
call per chunk and symbol. This module knows no particular strategy.

The metrics are those of :func:`thunes.backtest.metrics.stats_from_kernel` (the formulas of every run,
from the kernel's sums), so a sweep row equals the corresponding single :func:`run_backtest`, the gap
rule included: each column refuses the entries whose signal window (that parameter set's ``warmup``)
spans missing candles.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pandas as pd

from thunes.backtest import _kernels as K
from thunes.backtest.engine import BacktestOptions
from thunes.backtest.metrics import stats_from_kernel
from thunes.backtest.prepared import PreparedBacktest, prepare_symbols, signal_window
from thunes.core.errors import ConfigError, StrategyError
from thunes.core.markets import Market
from thunes.progress import progress_bar
from thunes.strategies.base import CrossGrid, Strategy

__all__ = ["expand_grid", "run_sweep"]

_CHUNK_BYTES = 256 * 1024 * 1024


def expand_grid(
    strategy_cls: type[Strategy], grid: Mapping[str, Sequence[Any]],
) -> tuple[list[dict[str, Any]], int]:
    """Valid parameter dicts of the grid's cartesian product (in grid order) and how many were invalid.

    Unknown parameter names fail at once (with "did you mean"); combinations the strategy rejects
    (e.g. fast >= slow) are skipped and counted.
    """
    if not grid:
        raise ConfigError("a sweep needs a non-empty grid, e.g. {'fast': [5, 10], 'slow': [50, 100]}")
    strategy_cls(**{k: next(iter(v)) for k, v in grid.items() if len(list(v))})  # names + first values
    keys = list(grid)
    combos, skipped = [], 0
    for values in itertools.product(*(list(grid[k]) for k in keys)):
        params = dict(zip(keys, values, strict=True))
        try:
            combos.append(strategy_cls(**params).params)
        except StrategyError:
            skipped += 1
    return combos, skipped


def run_sweep(
    candles: pd.DataFrame | Mapping[str, pd.DataFrame],
    strategy_cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    options: BacktestOptions | None = None,
    *,
    symbol: str = "BTC/USDT",
    timeframe: str | None = None,
    market: Market | Mapping[str, Market] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Metrics for every valid parameter combination (and symbol, when ``candles`` is a mapping).

    Returns one row per (symbol, combo): a ``symbol`` column, the parameters, then the metrics of
    :func:`~thunes.backtest.metrics.compute_metrics` (without start/end). ``df.attrs["skipped"]``
    counts invalid combinations. ``timeframe`` is inferred from the candles or checked against them.
    """
    options = options or BacktestOptions()
    combos, skipped = expand_grid(strategy_cls, grid)
    if not combos:
        raise ConfigError(
            f"no valid parameter combination in the grid ({skipped} rejected by {strategy_cls.name})")
    frames = dict(candles) if isinstance(candles, Mapping) else {symbol: candles}
    markets = {sym: market.get(sym) if isinstance(market, Mapping) else market for sym in frames}
    prepared = prepare_symbols(frames, options, timeframe=timeframe, markets=markets)
    timeframe = next(iter(prepared.values())).timeframe
    # One signal window per parameter set (the gap rule's), checked once.
    windows = [signal_window(strategy_cls(**c)) for c in combos]
    rows: list[dict[str, Any]] = []
    bar = progress_bar(total=len(frames) * len(combos), desc="sweep", unit="combo", enabled=progress)
    try:
        cross = strategy_cls.signal_grid(combos)
        if cross is not None:
            stats = _sweep_cross(cross, list(prepared.values()), windows, bar)
        else:
            stats = [_sweep_columns(p, strategy_cls, combos, windows, bar) for p in prepared.values()]
        for sym, table in zip(prepared, stats, strict=True):
            for params, row in zip(combos, table, strict=True):
                metrics = stats_from_kernel(row, initial_cash=options.initial_cash, timeframe=timeframe)
                rows.append({"symbol": sym, **params, **metrics})
    finally:
        bar.close()
    out = pd.DataFrame(rows)
    out.attrs["skipped"] = skipped
    out.attrs["strategy"] = strategy_cls.name
    return out


def _sweep_cross(
    grid: CrossGrid, symbols: list[PreparedBacktest], windows: list[int], bar: Any,
) -> list[np.ndarray]:
    """Every (symbol, parameter set) column of a :class:`CrossGrid` in one kernel call; returns the
    statistics rows per symbol."""
    bounds = np.zeros(len(symbols) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum([p.n_bars for p in symbols])
    bars = {name: np.concatenate([getattr(p, name) for p in symbols])
            for name in ("open", "high", "low", "close", "volume", "vol", "ts")}
    params = np.stack([p.params for p in symbols])
    table = np.empty((len(grid.lines), int(bounds[-1])), dtype=np.float64)

    def fill(job: tuple[int, int]) -> None:
        # Each line on each symbol's own closes; numba kernels release the GIL, so lines fill in parallel.
        line, s = job
        table[line, bounds[s]:bounds[s + 1]] = grid.lines[line](symbols[s].close)

    with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as pool:
        list(pool.map(fill, [(line, s) for line in range(len(grid.lines)) for s in range(len(symbols))]))
    m = len(windows)
    # The gap rule's flags, one row per distinct signal window: O(bars x windows); one all-False row
    # when the rule is off.
    if not symbols[0].options.refuse_gap_entries:
        windows = [1] * m
    row_of_window = {w: i for i, w in enumerate(sorted(set(windows)))}
    gaps = np.empty((len(row_of_window), int(bounds[-1])), dtype=np.bool_)
    for w, r in row_of_window.items():
        for s, p in enumerate(symbols):
            gaps[r, bounds[s]:bounds[s + 1]] = p.gap_flags(w)
    gap_idx = np.tile(np.array([row_of_window[w] for w in windows], dtype=np.int64), len(symbols))
    sym_idx = np.repeat(np.arange(len(symbols), dtype=np.int64), m)
    fast_idx = np.tile(np.array(grid.fast, dtype=np.int64), len(symbols))
    slow_idx = np.tile(np.array(grid.slow, dtype=np.int64), len(symbols))
    out = np.zeros((len(symbols) * m, K.N_STATS), dtype=np.float64)
    K.sweep_cross(bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"], bars["vol"],
                  gaps, bars["ts"], bounds, table, sym_idx, fast_idx, slow_idx, gap_idx, params, out,
                  numba.get_num_threads(), symbols[0].lean)
    bar.update(len(symbols) * m)
    return [out[s * m:(s + 1) * m] for s in range(len(symbols))]


def _sweep_columns(
    prepared: PreparedBacktest, strategy_cls: type[Strategy], combos: list[dict[str, Any]],
    windows: list[int], bar: Any,
) -> np.ndarray:
    """Each parameter set's ``signals()`` in Python, a chunk of columns per kernel call."""
    n, m = prepared.n_bars, len(combos)
    out = np.zeros((m, K.N_STATS), dtype=np.float64)
    chunk = max(numba.get_num_threads(), min(m, _CHUNK_BYTES // max(1, 13 * n)))
    for lo in range(0, m, chunk):
        part = combos[lo:lo + chunk]
        k = len(part)
        entries = np.empty((k, n), dtype=np.bool_)
        exits = np.empty((k, n), dtype=np.bool_)
        s_entries = np.empty((k, n), dtype=np.bool_)
        s_exits = np.empty((k, n), dtype=np.bool_)
        scale = np.empty((k, n), dtype=np.float64)
        gap = np.empty((k, n), dtype=np.bool_)
        for j, params in enumerate(part):
            a = prepared.signal_arrays(strategy_cls(**params))
            entries[j], exits[j], s_entries[j], s_exits[j], scale[j] = (
                a.entries, a.exits, a.short_entries, a.short_exits, a.size_scale)
            gap[j] = prepared.entry_gaps(a, windows[lo + j])
        K.sweep_columns(prepared.open, prepared.high, prepared.low, prepared.close, prepared.volume,
                        prepared.vol, gap, prepared.ts, entries, exits, s_entries, s_exits, scale,
                        prepared.params, out[lo:lo + k], prepared.lean)
        bar.update(k)
    return out
