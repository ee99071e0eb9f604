"""Parameter sweeps: a grid of strategy parameters run as one parallel kernel call over columns.

Each (symbol, parameter set) is a column; columns run in parallel over cores (numba ``prange``) and
report only streaming statistics, no trade list or curve. Moving-average crossover strategies
(``sma_cross``) take a fused path: the symbols' bars are concatenated, one moving average per
*distinct* period and symbol is computed once, and the columns of every symbol go to one kernel
call, each building its crossing signals in its worker's two reused buffers, so memory stays
O(bars x (periods + threads)), not O(bars x combos). Other strategies run their ``signals()`` in
Python for a chunk of columns at a time (memory O(bars x chunk)), one kernel call per chunk and symbol.

The metrics are those of :func:`thunes.backtest.metrics.compute_metrics` (same formulas, from the
kernel's sums), so a sweep row equals the corresponding single :func:`run_backtest`, the gap rule
included: each column refuses the entries whose signal window (that parameter set's ``warmup``)
spans missing candles; the fused path keeps one flag row per distinct window length and symbol.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import numba
import numpy as np
import pandas as pd

from thunes.backtest import _kernels as K
from thunes.backtest.engine import (
    BacktestOptions, default_market, entry_gaps, gap_flags, options_vector, prepare_inputs, strategy_arrays,
    strategy_warmup,
)
from thunes.backtest.portfolio import _one_timeframe
from thunes.backtest.metrics import stats_from_kernel
from thunes.core.errors import ConfigError, StrategyError
from thunes.core.markets import Market
from thunes.progress import progress_bar
from thunes.strategies.base import Strategy
from thunes.strategies.sma_cross import SmaCross

__all__ = ["run_sweep", "expand_grid"]

_CHUNK_BYTES = 256 * 1024 * 1024


def expand_grid(strategy_cls: type[Strategy], grid: Mapping[str, Sequence[Any]]) -> tuple[list[dict[str, Any]], int]:
    """Valid parameter dicts of the grid's cartesian product (in grid order) and how many were invalid.

    Unknown parameter names fail at once (with "did you mean"); combinations the strategy rejects
    (e.g. fast >= slow) are skipped and counted.
    """
    if not grid:
        raise ConfigError("a sweep needs a non-empty grid, e.g. {'fast': [5, 10], 'slow': [50, 100]}")
    strategy_cls(**{k: list(v)[0] for k, v in grid.items() if len(list(v))})  # names + first values
    keys = list(grid)
    combos, skipped = [], 0
    for values in itertools.product(*(list(grid[k]) for k in keys)):
        params = dict(zip(keys, values))
        try:
            combos.append(strategy_cls(**params).params)
        except StrategyError:
            skipped += 1
    return combos, skipped


def _fused_ma_cross(strategy_cls: type[Strategy], combos: list[dict[str, Any]]) -> bool:
    return issubclass(strategy_cls, SmaCross) and strategy_cls.signals is SmaCross.signals and not any(
        c["short"] for c in combos
    )


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
        raise ConfigError(f"no valid parameter combination in the grid ({skipped} rejected by {strategy_cls.name})")
    frames = dict(candles) if isinstance(candles, Mapping) else {symbol: candles}
    timeframe = _one_timeframe(frames, timeframe)
    markets: dict[str, Market | None] = {}
    for sym in frames:
        mkt = market.get(sym) if isinstance(market, Mapping) else market
        markets[sym] = mkt if mkt is not None else default_market(sym)
    rows: list[dict[str, Any]] = []
    bar = progress_bar(total=len(frames) * len(combos), desc="sweep", unit="combo", enabled=progress)
    try:
        if _fused_ma_cross(strategy_cls, combos):
            stats = _sweep_ma_cross(strategy_cls, frames, combos, options, timeframe, markets, bar)
        else:
            stats = {sym: _sweep_one(frame, strategy_cls, combos, options, timeframe, markets[sym], bar)
                     for sym, frame in frames.items()}
        for sym in frames:
            for params, row in zip(combos, stats[sym]):
                metrics = stats_from_kernel(row, initial_cash=options.initial_cash, timeframe=timeframe)
                rows.append({"symbol": sym, **params, **metrics})
    finally:
        bar.close()
    out = pd.DataFrame(rows)
    out.attrs["skipped"] = skipped
    out.attrs["strategy"] = strategy_cls.name
    return out


def _sweep_ma_cross(
    strategy_cls: type[Strategy], frames: Mapping[str, pd.DataFrame], combos: list[dict[str, Any]],
    options: BacktestOptions, timeframe: str, markets: Mapping[str, Market | None], bar: Any,
) -> dict[str, np.ndarray]:
    """Every (symbol, fast, slow) column in one kernel call; returns the statistics rows per symbol."""
    from thunes.strategies._indicators import sma

    symbols = list(frames)
    inputs = [prepare_inputs(frames[sym], timeframe, options) for sym in symbols]
    bounds = np.zeros(len(symbols) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum([len(x.close) for x in inputs])
    bars = {name: np.concatenate([getattr(x, name) for x in inputs])
            for name in ("open", "high", "low", "close", "volume", "vol", "ts")}
    p = np.stack([options_vector(options, markets[sym], timeframe) for sym in symbols])
    periods = sorted({c["fast"] for c in combos} | {c["slow"] for c in combos})
    row_of = {period: i for i, period in enumerate(periods)}
    table = np.empty((len(periods), int(bounds[-1])), dtype=np.float64)

    def fill(job: tuple[int, int]) -> None:
        # The same SMA as SmaCross.signals (so rows equal single runs), on each symbol's bare closes
        # (the Series wrapper cost 3x the kernel on 1M bars); its kernel releases the GIL.
        period, s = job
        table[row_of[period], bounds[s]:bounds[s + 1]] = sma(inputs[s].close, period)

    with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as pool:
        list(pool.map(fill, [(period, s) for period in periods for s in range(len(symbols))]))
    m = len(combos)
    # The gap rule's flags, one row per distinct signal window (SmaCross: slow + 1): O(bars x windows).
    windows = [strategy_warmup(strategy_cls(**c)) for c in combos] if options.refuse_gap_entries else [1] * m
    row_of_window = {w: i for i, w in enumerate(sorted(set(windows)))}
    gaps = np.zeros((len(row_of_window), int(bounds[-1])), dtype=np.bool_)
    if options.refuse_gap_entries:
        for w, r in row_of_window.items():
            for s, x in enumerate(inputs):
                gaps[r, bounds[s]:bounds[s + 1]] = gap_flags(x.ts, timeframe, w)
    gap_idx = np.tile(np.array([row_of_window[w] for w in windows], dtype=np.int64), len(symbols))
    sym_idx = np.repeat(np.arange(len(symbols), dtype=np.int64), m)
    fast_idx = np.tile(np.array([row_of[c["fast"]] for c in combos], dtype=np.int64), len(symbols))
    slow_idx = np.tile(np.array([row_of[c["slow"]] for c in combos], dtype=np.int64), len(symbols))
    out = np.zeros((len(symbols) * m, K.N_STATS), dtype=np.float64)
    K.sweep_ma_cross(bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"], bars["vol"],
                     gaps, bars["ts"], bounds, table, sym_idx, fast_idx, slow_idx, gap_idx, p, out,
                     numba.get_num_threads(), K.is_lean(p[0]))
    bar.update(len(symbols) * m)
    return {sym: out[s * m:(s + 1) * m] for s, sym in enumerate(symbols)}


def _sweep_one(
    candles: pd.DataFrame, strategy_cls: type[Strategy], combos: list[dict[str, Any]], options: BacktestOptions,
    timeframe: str, market: Market | None, bar: Any,
) -> np.ndarray:
    inputs = prepare_inputs(candles, timeframe, options)
    p = options_vector(options, market, timeframe)
    n, m = len(inputs.close), len(combos)
    out = np.zeros((m, K.N_STATS), dtype=np.float64)
    chunk = max(numba.get_num_threads(), min(m, _CHUNK_BYTES // max(1, 13 * n)))
    window_gaps: dict[int, np.ndarray] = {}
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
            strategy = strategy_cls(**params)
            a = strategy_arrays(strategy, candles)
            entries[j], exits[j], s_entries[j], s_exits[j], scale[j] = (
                a.entries, a.exits, a.short_entries, a.short_exits, a.size_scale)
            w = strategy_warmup(strategy)
            if w not in window_gaps:
                window_gaps[w] = gap_flags(inputs.ts, timeframe, w)
            gap[j] = entry_gaps(window_gaps[w], a, options)
        K.sweep_columns(inputs.open, inputs.high, inputs.low, inputs.close, inputs.volume, inputs.vol, gap,
                        inputs.ts, entries, exits, s_entries, s_exits, scale, p, out[lo:lo + k], K.is_lean(p))
        bar.update(k)
    return out
