"""A prepared backtest: the one path from candles to the numba kernel and its metrics.

Every backtest of one symbol goes through :class:`PreparedBacktest`: a single run
(:func:`run_backtest`), each column of a parameter sweep (:mod:`thunes.backtest.sweep`), each trial of
a study (:mod:`thunes.optimize`), each symbol of a portfolio (:mod:`thunes.backtest.portfolio`).

:meth:`PreparedBacktest.from_candles` does the parameter-independent work once: the timeframe checked
(or inferred), the candles validated and turned into contiguous float64 arrays, the volatility the
sizing or slippage model needs, the kernel's option vector (:func:`options_vector`). Per strategy it
then computes the signal arrays, the gap rule's flags for the strategy's signal window
(:meth:`~PreparedBacktest.entry_gaps`; cached by window length, so the trials and sweep columns that
share a window share them), calls :func:`thunes.backtest._kernels.simulate`, and takes the metrics
from the kernel's statistics and trade records with :func:`thunes.backtest.metrics.stats_from_kernel`
(the same numbers, bit for bit, as :func:`~thunes.backtest.metrics.compute_metrics` of the trade list
and equity curve, which it no longer builds just to measure them).

The gap rule (:func:`gap_flags`, :func:`entry_gaps`) and a strategy's signal window
(:func:`signal_window`) are defined here, once, for every caller. The kernels stay pure array code in
:mod:`thunes.backtest._kernels`; this module only orchestrates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from thunes.backtest import _kernels as K
from thunes.backtest.engine import (
    BacktestOptions,
    BacktestResult,
    VolatilitySlippage,
    VolTarget,
    default_market,
    records_to_trades,
    resolve_timeframe,
    run_hash,
)
from thunes.backtest.metrics import METRIC_NAMES, bars_per_year, stats_from_kernel
from thunes.core.candles import OHLCV, ts_ms, validate_candles
from thunes.core.errors import ConfigError, DataError, InsufficientData, StrategyError
from thunes.core.markets import Market
from thunes.core.timeframes import parse_timeframe
from thunes.strategies.base import SignalArrays, Signals, Strategy

__all__ = [
    "KernelRun",
    "PreparedBacktest",
    "QuickRun",
    "entry_gaps",
    "gap_flags",
    "options_vector",
    "prepare_symbols",
    "run_backtest",
    "signal_window",
    "strategy_arrays",
]

# Gap flags are one byte a bar; a study trying many windows keeps at most this much of them.
_GAP_CACHE_BYTES = 64 * 1024 * 1024


# ------------------------------------------------------------------------------------------------
# The gap rule and the signal window
# ------------------------------------------------------------------------------------------------
def signal_window(strategy: Strategy) -> int:
    """The strategy's signal window in bars (its ``warmup``, at least the signal bar itself), checked:
    the gap rule depends on it."""
    w = strategy.warmup
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
        raise StrategyError(
            f"{type(strategy).__name__}.warmup must be a number of bars (int >= 0), got {w!r}")
    return max(1, int(w))


def gap_flags(ts: np.ndarray, timeframe: str, window: int = 1) -> np.ndarray:
    """True on bar i when bars i-window .. i are not consecutive candles (a hole lies among them).

    ``window=1``: bar i follows a hole. With a strategy's :func:`signal_window` as ``window``, bar i is
    flagged when an entry filled at its open would act on a signal (computed at bar i-1 from bars
    i-warmup .. i-1) whose window, or whose step to the fill, spans missing candles. Near the start
    the window is cut at bar 0. O(bars): on sorted, unique candles bars lo..i are consecutive
    exactly when ``ts[i] - ts[lo] == (i - lo) * timeframe``.
    """
    if window < 1:
        raise ConfigError(f"gap window must be >= 1 bar, got {window}")
    return K.window_gap_flags(np.ascontiguousarray(ts, dtype=np.int64), int(window),
                              int(parse_timeframe(timeframe).ms))


def entry_gaps(gap: np.ndarray, arrays: SignalArrays, options: BacktestOptions) -> np.ndarray:
    """The kernel's ``gap`` argument: entries refused at bar i (the window rule of :func:`gap_flags`,
    or bar i-1's ``refuse_entries`` veto). All False when ``options.refuse_gap_entries`` is off."""
    if not options.refuse_gap_entries:
        return np.zeros(gap.shape[0], dtype=np.bool_)
    if arrays.refuse_entries is None or not arrays.refuse_entries.any():
        return gap
    out = gap.copy()
    out[1:] |= arrays.refuse_entries[:-1]
    return out


def strategy_arrays(strategy: Strategy, candles: pd.DataFrame) -> SignalArrays:
    """The strategy's signals on ``candles`` as the kernel's arrays (``signals()`` must return Signals)."""
    signals = strategy.signals(candles)
    if not isinstance(signals, Signals):
        raise StrategyError(
            f"{type(strategy).__name__}.signals() must return Signals, got {type(signals).__name__}")
    return signals.arrays(candles.index)


# ------------------------------------------------------------------------------------------------
# The kernel's options
# ------------------------------------------------------------------------------------------------
def options_vector(options: BacktestOptions, market: Market | None, timeframe: str) -> np.ndarray:
    """The kernel's float64 parameter vector (indices ``P_*`` in ``_kernels``)."""
    p = np.zeros(K.N_PARAMS, dtype=np.float64)
    p[K.P_INIT_CASH] = options.initial_cash
    p[K.P_TAKER] = options.taker_fee_bps / 1e4
    p[K.P_MAKER] = options.maker_fee_bps / 1e4
    slip = options.slippage
    p[K.P_SLIP_KIND] = {"fixed": 0, "volatility": 1, "volume": 2}[slip.kind]
    p[K.P_SLIP_BASE] = slip.bps / 1e4
    p[K.P_SLIP_K] = getattr(slip, "k", 0.0)
    sizing = options.sizing
    p[K.P_SIZE_KIND] = {"fixed_quote": 0, "fraction": 1, "vol_target": 2}[sizing.kind]
    p[K.P_SIZE_VALUE] = {"fixed_quote": getattr(sizing, "amount", 0),
                         "fraction": getattr(sizing, "fraction", 0),
                         "vol_target": getattr(sizing, "annual_vol", 0)}[sizing.kind]
    p[K.P_SL] = options.stop_loss or 0.0
    p[K.P_TP] = options.take_profit or 0.0
    p[K.P_TSL] = options.trailing_stop or 0.0
    p[K.P_ALLOW_SHORT] = float(options.allow_short)
    risk = options.risk
    if risk is not None:
        p[K.P_RISK_ON] = 1.0
        p[K.P_MAX_POS_QUOTE] = risk.max_position_quote
        p[K.P_MAX_DAILY_LOSS] = risk.max_daily_loss
        p[K.P_MAX_LOSS_TRADE] = risk.max_loss_per_trade
        p[K.P_COOLDOWN_MS] = risk.cool_down_minutes * 60_000.0
        p[K.P_MAX_POSITIONS] = risk.max_positions
        p[K.P_RISK_STOP] = options.sizing_stop or 0.0
    if options.apply_filters and market is not None:
        f = market.filters
        step = f.market_step_size if f.market_step_size > 0 else f.step_size
        p[K.P_STEP] = float(step)
        p[K.P_MIN_QTY] = float(max(f.min_qty, f.market_min_qty))
        p[K.P_MIN_NOTIONAL] = float(f.min_notional) if f.apply_min_to_market else 0.0
        p[K.P_TICK] = float(f.tick_size)
    p[K.P_GAP_REFUSE] = float(options.refuse_gap_entries)
    p[K.P_FEE_IN_BASE] = float(options.fee_in_base)
    p[K.P_BARS_PER_YEAR] = bars_per_year(timeframe)
    p[K.P_TF_MS] = float(parse_timeframe(timeframe).ms)
    return p


# ------------------------------------------------------------------------------------------------
# The prepared backtest
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KernelRun:
    """What one kernel call produced: its statistics row (``S_*``), the equity at each bar's close and
    the trade records (``R_*``, the open trade included)."""

    stats: np.ndarray
    equity: np.ndarray
    records: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class QuickRun:
    """What a trial needs of one backtest: the metrics (as :func:`run_backtest`'s, without start/end),
    the equity at each bar's close as an array, and the number of trades (the open one included)."""

    stats: dict[str, Any]
    equity: np.ndarray
    n_trades: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PreparedBacktest:
    """One symbol's candles and options, prepared for any number of strategies (:meth:`from_candles`).

    The arrays are the kernel's inputs (contiguous float64; ``ts`` int64 epoch ms; ``vol`` the rolling
    return volatility, NaN when no option uses it) and ``params`` its option vector. Gap flags are
    computed per signal window on first use and kept. :meth:`quick` reuses one scratch buffer for the
    trade records: a handle serves one thread at a time (a study's evaluator runs its trials one after
    the other; :meth:`run` and :meth:`simulate` allocate their own).
    """

    candles: pd.DataFrame = field(repr=False)
    symbol: str
    timeframe: str
    options: BacktestOptions
    market: Market | None
    open: np.ndarray = field(repr=False)
    high: np.ndarray = field(repr=False)
    low: np.ndarray = field(repr=False)
    close: np.ndarray = field(repr=False)
    volume: np.ndarray = field(repr=False)
    vol: np.ndarray = field(repr=False)
    ts: np.ndarray = field(repr=False)
    params: np.ndarray = field(repr=False)
    lean: bool | None = field(repr=False)
    _gaps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _scratch: list[np.ndarray] = field(default_factory=list, repr=False)

    @classmethod
    def from_candles(
        cls,
        candles: pd.DataFrame,
        options: BacktestOptions | None = None,
        *,
        symbol: str = "BTC/USDT",
        timeframe: str | None = None,
        market: Market | None = None,
    ) -> PreparedBacktest:
        """Check the timeframe (inferred from the index when None, :func:`resolve_timeframe`), validate the
        candles (at least 2) and build the kernel inputs. ``options`` default to ``BacktestOptions()``;
        ``market`` to :func:`default_market` of ``symbol`` (an unknown symbol: no filter rounding)."""
        options = options or BacktestOptions()
        timeframe = resolve_timeframe(candles, timeframe)
        market = market if market is not None else default_market(symbol)
        validate_candles(candles)
        if len(candles) < 2:
            raise InsufficientData(f"a backtest needs at least 2 candles, got {len(candles)}")
        cols = {c: np.ascontiguousarray(candles[c].to_numpy(dtype=np.float64)) for c in OHLCV}
        ts = ts_ms(candles)
        needs_vol = isinstance(options.sizing, VolTarget) or isinstance(options.slippage, VolatilitySlippage)
        vol = (K.rolling_return_std(cols["close"], options.vol_window) if needs_vol
               else np.full(len(ts), np.nan))
        p = options_vector(options, market, timeframe)
        return cls(candles=candles, symbol=symbol, timeframe=timeframe, options=options, market=market,
                   open=cols["open"], high=cols["high"], low=cols["low"], close=cols["close"],
                   volume=cols["volume"], vol=vol, ts=ts, params=p, lean=K.is_lean(p))

    @property
    def n_bars(self) -> int:
        return len(self.close)

    # -- per strategy ---------------------------------------------------------------------------
    def signal_arrays(self, strategy: Strategy) -> SignalArrays:
        """``strategy``'s signals on these candles, as the kernel's arrays."""
        return strategy_arrays(strategy, self.candles)

    def gap_flags(self, window: int) -> np.ndarray:
        """:func:`gap_flags` of these candles for a ``window``-bar signal window (all False when
        ``options.refuse_gap_entries`` is off); cached by window. Callers must not write into it."""
        flags = self._gaps.get(window)
        if flags is None:
            if not self.options.refuse_gap_entries:
                flags = np.zeros(self.n_bars, dtype=np.bool_)
            else:
                flags = gap_flags(self.ts, self.timeframe, window)
            if len(self._gaps) * flags.size < _GAP_CACHE_BYTES:
                self._gaps[window] = flags
        return flags

    def entry_gaps(self, arrays: SignalArrays, window: int = 1) -> np.ndarray:
        """The kernel's ``gap`` argument for signals with a ``window``-bar signal window: the gap rule
        plus the signals' own ``refuse_entries`` veto (:func:`entry_gaps`)."""
        return entry_gaps(self.gap_flags(window), arrays, self.options)

    def simulate(self, arrays: SignalArrays, window: int = 1, *,
                 records: np.ndarray | None = None) -> KernelRun:
        """One kernel call on ``arrays`` (signals at bar t's close fill at bar t+1's open). ``records``:
        a scratch buffer of at least ``n_bars + 1`` rows (default: a new one)."""
        n = self.n_bars
        if records is None:
            records = np.empty((n + 1, K.N_REC), dtype=np.float64)
        equity = np.empty(n, dtype=np.float64)
        stats = np.zeros(K.N_STATS, dtype=np.float64)
        gap = self.entry_gaps(arrays, window)
        n_rec = K.simulate(
            self.open, self.high, self.low, self.close, self.volume, self.vol, gap, self.ts,
            arrays.entries, arrays.exits, arrays.short_entries, arrays.short_exits,
            np.ascontiguousarray(arrays.size_scale, dtype=np.float64), self.params, records, equity, stats,
            self.lean,
        )
        return KernelRun(stats=stats, equity=equity, records=records[:n_rec])

    def metrics(self, run: KernelRun) -> dict[str, Any]:
        """The run's metrics without start/end (:func:`~thunes.backtest.metrics.stats_from_kernel`)."""
        return stats_from_kernel(run.stats, records=run.records, initial_cash=self.options.initial_cash,
                                 timeframe=self.timeframe)

    def quick(self, strategy: Strategy) -> QuickRun:
        """One backtest of ``strategy`` reduced to what a trial needs: metrics, equity array, trade count
        (no trade DataFrame, no Series; the same numbers as :meth:`run`)."""
        if not self._scratch:
            self._scratch.append(np.empty((self.n_bars + 1, K.N_REC), dtype=np.float64))
        run = self.simulate(self.signal_arrays(strategy), signal_window(strategy), records=self._scratch[0])
        return QuickRun(stats=self.metrics(run), equity=run.equity, n_trades=int(run.records.shape[0]))

    def run(self, strategy: Strategy | None = None, *, signals: Signals | None = None) -> BacktestResult:
        """The full result of ``strategy`` (or of precomputed ``signals``: with a strategy they must come
        from it on these candles; without one they are all the run needs, with a one-bar signal window)."""
        window = _run_window(strategy, signals)
        index = self.candles.index
        arrays = signals.arrays(index) if signals is not None else self.signal_arrays(strategy)
        run = self.simulate(arrays, window)
        stats = self.metrics(run)
        stats.update(start=index[0], end=index[-1])
        name, params = (strategy.name, strategy.params) if strategy is not None else ("signals", {})
        market = self.market
        payload = {
            "strategy": name, "params": params, "options": self.options.to_dict(), "symbol": self.symbol,
            "timeframe": self.timeframe, "market": repr(market.filters) if market is not None else None,
            "start": str(index[0]), "end": str(index[-1]), "bars": self.n_bars,
        }
        return BacktestResult(
            symbol=self.symbol, timeframe=self.timeframe, strategy=name, params=params, options=self.options,
            trades=records_to_trades(run.records, index, [self.symbol]),
            equity=pd.Series(run.equity, index=index, name="equity"),
            stats={k: stats[k] for k in METRIC_NAMES}, settings_hash=run_hash(payload), market=market,
            candles=self.candles,
        )


def _run_window(strategy: Strategy | None, signals: Signals | None) -> int:
    """The signal window of a run of ``strategy`` or of bare ``signals`` (one bar), the arguments checked."""
    if strategy is None and signals is None:
        raise StrategyError("run_backtest needs a strategy or signals=")
    if strategy is None:
        return 1
    if not isinstance(strategy, Strategy):
        raise StrategyError(f"run_backtest needs a Strategy instance, got {strategy!r}")
    return signal_window(strategy)


def prepare_symbols(
    candles: Mapping[str, pd.DataFrame],
    options: BacktestOptions | None = None,
    *,
    timeframe: str | None = None,
    markets: Mapping[str, Market | None] | None = None,
) -> dict[str, PreparedBacktest]:
    """Each symbol's candles prepared (:meth:`PreparedBacktest.from_candles`, its market from
    ``markets`` or the default), all of one timeframe: inferred from each symbol's candles (they must
    agree) or checked against them."""
    prepared = {sym: PreparedBacktest.from_candles(frame, options, symbol=sym, timeframe=timeframe,
                                                   market=(markets or {}).get(sym))
                for sym, frame in candles.items()}
    found = {sym: p.timeframe for sym, p in prepared.items()}
    if len(set(found.values())) > 1:
        raise DataError(f"the symbols' candles have different timeframes: {found}")
    return prepared


def run_backtest(
    candles: pd.DataFrame,
    strategy: Strategy | None = None,
    *,
    options: BacktestOptions | None = None,
    symbol: str = "BTC/USDT",
    timeframe: str | None = None,
    market: Market | None = None,
    signals: Signals | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` on one symbol's candles; signals at bar t's close fill at bar t+1's open.

    ``timeframe`` is inferred from the candles' index when left out, and checked against it when given
    (:func:`resolve_timeframe`). ``options`` default to ``BacktestOptions()``: the research preset, no
    risk limits (``risk="live"`` for the live risk manager's). ``market`` supplies the exchange filters
    (default: :func:`default_market` of ``symbol``; an unknown symbol runs without filter rounding).
    ``signals`` are precomputed signals: with a ``strategy`` they must come from it on these candles;
    without one they are all the run needs (a one-bar signal window for the gap rule). Entries whose
    signal window (``strategy.warmup`` bars) or fill spans a hole in the candles are refused
    (``refused_gap``). The same as ``PreparedBacktest.from_candles(...).run(strategy)``.
    """
    _run_window(strategy, signals)  # the arguments are refused before any work
    prepared = PreparedBacktest.from_candles(candles, options, symbol=symbol, timeframe=timeframe,
                                             market=market)
    return prepared.run(strategy, signals=signals)
