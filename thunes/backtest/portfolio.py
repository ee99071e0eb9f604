"""Multi-symbol portfolios with one cash balance (e.g. the six sample symbols on 5m).

The symbols' candles are aligned on the union of their timestamps (a symbol without a candle at a
timestamp simply does not trade there); each symbol's signals come from the strategy run on that
symbol's own candles, so indicators never see the alignment holes, and the gap rule (an entry
whose signal window spans missing candles is refused) looks at each symbol's own candles too. The kernel
(:func:`thunes.backtest._kernels.simulate_portfolio`) applies the single-symbol rules plus shared
cash, exits-before-entries at each open, and the ``max_positions`` limit. With one symbol it gives
exactly the same result as :func:`run_backtest`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from thunes.backtest import _kernels as K
from thunes.backtest.engine import BacktestOptions, BacktestResult, records_to_trades, run_hash
from thunes.backtest.metrics import compute_metrics, risk_counts_from_kernel
from thunes.backtest.prepared import options_vector, prepare_symbols, signal_window
from thunes.core.errors import ConfigError
from thunes.core.markets import Market
from thunes.core.timeframes import index_ms
from thunes.strategies.base import Strategy

__all__ = ["run_portfolio"]


def _filters(market: Market | None, apply: bool) -> np.ndarray:
    out = np.zeros(4)
    if apply and market is not None:
        f = market.filters
        out[K.F_STEP] = float(f.market_step_size if f.market_step_size > 0 else f.step_size)
        out[K.F_MIN_QTY] = float(max(f.min_qty, f.market_min_qty))
        out[K.F_MIN_NOTIONAL] = float(f.min_notional) if f.apply_min_to_market else 0.0
        out[K.F_TICK] = float(f.tick_size)
    return out


def run_portfolio(
    candles: Mapping[str, pd.DataFrame],
    strategy: Strategy | Mapping[str, Strategy],
    *,
    options: BacktestOptions | None = None,
    timeframe: str | None = None,
    markets: Mapping[str, Market] | None = None,
) -> BacktestResult:
    """Backtest several symbols sharing one cash balance. ``strategy`` may differ per symbol.

    The result's ``symbol`` is ``"PORTFOLIO"``, its trades carry their ``symbol``, its equity is the
    whole account's, and ``stats["exposure"]`` is the share of bars with at least one position.
    ``timeframe`` is inferred from each symbol's candles (they must agree) or checked against them.
    """
    if not candles:
        raise ConfigError("run_portfolio needs at least one symbol")
    options = options or BacktestOptions()
    # Each symbol prepared as a single run (its own candles: its own gap rule, its own volatility).
    prepared = prepare_symbols(candles, options, timeframe=timeframe, markets=markets)
    timeframe = prepared[next(iter(prepared))].timeframe
    symbols = list(candles)
    strategies = {s: (strategy[s] if isinstance(strategy, Mapping) else strategy) for s in symbols}
    index = candles[symbols[0]].index
    for s in symbols[1:]:
        index = index.union(candles[s].index)
    n, k = len(index), len(symbols)
    shape = (n, k)
    cols = {name: np.full(shape, np.nan) for name in ("open", "high", "low", "close", "volume", "vol")}
    bools = {name: np.zeros(shape, dtype=np.bool_)
             for name in ("gap", "entries", "exits", "short_entries", "short_exits")}
    scale = np.ones(shape)
    filt = np.zeros((k, 4))
    for j, s in enumerate(symbols):
        frame = candles[s]
        rows = index.get_indexer(frame.index)
        one = prepared[s]
        for name in cols:
            cols[name][rows, j] = getattr(one, name)
        arrays = one.signal_arrays(strategies[s])
        bools["gap"][rows, j] = one.entry_gaps(arrays, signal_window(strategies[s]))
        for name in ("entries", "exits", "short_entries", "short_exits"):
            bools[name][rows, j] = getattr(arrays, name)
        scale[rows, j] = arrays.size_scale
        filt[j] = _filters(one.market, options.apply_filters)
    p = options_vector(options, None, timeframe)
    ts = index_ms(index)
    records = np.empty((n + k + 1, K.N_REC))
    equity = np.empty(n)
    stats = np.zeros(K.N_STATS)
    n_rec = K.simulate_portfolio(
        cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"], cols["vol"], bools["gap"], ts,
        bools["entries"], bools["exits"], bools["short_entries"], bools["short_exits"], scale, p, filt,
        records, equity, stats,
    )
    trades = records_to_trades(records[:n_rec], index, symbols)
    trades = trades.sort_values(["entry_ts", "symbol"], kind="stable").reset_index(drop=True)
    equity_s = pd.Series(equity, index=index, name="equity")
    metrics = compute_metrics(equity_s, trades, initial_cash=options.initial_cash, timeframe=timeframe,
                              refused_filters=int(stats[K.S_REFUSED_FILTERS]),
                              refused_risk=int(stats[K.S_REFUSED_RISK]),
                              refused_gap=int(stats[K.S_REFUSED_GAP]),
                              risk_counts=risk_counts_from_kernel(stats))
    metrics["exposure"] = float(stats[K.S_EXPOSURE_BARS]) / n
    names = sorted({st.name for st in strategies.values()})
    params = {s: strategies[s].params for s in symbols}
    payload = {"portfolio": symbols, "strategies": {s: strategies[s].name for s in symbols}, "params": params,
               "options": options.to_dict(), "timeframe": timeframe, "filters": filt.tolist(),
               "start": str(index[0]), "end": str(index[-1]), "bars": n}
    return BacktestResult(
        symbol="PORTFOLIO", timeframe=timeframe, strategy="+".join(names), params=params, options=options,
        trades=trades, equity=equity_s, stats=metrics, settings_hash=run_hash(payload),
    )
