"""Incremental signals on the live path: a strategy may also give its newest bar's signals from a small state.

The batch path stays the reference: every strategy is written once, as ``signals(candles)`` over a frame, and
that is what the backtest, the parity checks and the default trader run. Recomputing it over the whole trailing
window costs the trader most of its candle -> order time; a strategy that also implements
:class:`IncrementalStrategy` (two extra methods, built from :mod:`thunes.features.streaming`) lets the trader
advance a state by one candle instead.

* :class:`IncrementalStrategy`: the optional protocol. ``stream_init()`` returns a fresh state;
  ``stream_advance(state, ts_ms, open, high, low, close, volume)`` advances it by one closed candle and returns
  that bar's :class:`BarSignals`, equal to the last row of ``signals()`` over the same candles.
* :class:`StreamingSignals`: the adapter a trader calls. ``sync(ts, ohlcv)`` takes the trader's own trailing
  window (arrays) and feeds the state the rows it has not seen yet (normally one); a window that moved past
  the state (first call, a long outage) rebuilds it from the whole window, so the stream never depends on a
  candle the trader does not hold.
* :class:`LastBarStrategy`: the adapter dressed as a strategy, for a :class:`~thunes.live.trader.Trader`
  that does not know the protocol: its ``signals(window)`` answers the newest bar only (arrays of length 1; the
  trader reads ``[-1]``).
* :func:`streams`: whether a trader steps a strategy incrementally: it implements the protocol, and no subclass
  changed ``signals()`` below the class that wrote ``stream_advance`` (a subclass of
  :class:`~thunes.strategies.sma_cross.SmaCross`, which implements it, that rewrites its signals runs on the
  batch path until it writes its own ``stream_advance``).

What "equal" means: a moving average over n bars (SMA, Bollinger) is the same, within 1e-12 relative, whether
it is streamed or recomputed on the trailing window. A recurrence (EMA, RSI, ATR) streamed since the warm-up
is exactly the batch value over *all the candles since the warm-up*, which is the backtest's value; the
batch over a trailing window restarts the recurrence at the window's start instead, so it differs from both by
the window's truncation (tiny with a window several times the period, as the trader's default).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from thunes.core.timeframes import index_ms
from thunes.strategies.base import BarSignals, SignalArrays

__all__ = ["BarSignals", "IncrementalStrategy", "LastBarStrategy", "StreamingSignals", "streams"]

_OHLCV = ["open", "high", "low", "close", "volume"]


@runtime_checkable
class IncrementalStrategy(Protocol):
    """A strategy that can also advance its signals one candle at a time (optional; see the module docstring)."""

    def stream_init(self) -> Any: ...

    def stream_advance(self, state: Any, ts_ms: int, open: float, high: float, low: float, close: float,
                       volume: float) -> BarSignals: ...


class StreamingSignals:
    """Feeds an :class:`IncrementalStrategy` from a trader's trailing window and keeps its newest bar."""

    def __init__(self, strategy: IncrementalStrategy) -> None:
        if not isinstance(strategy, IncrementalStrategy):
            raise TypeError(f"{type(strategy).__name__} does not implement stream_init/stream_advance")
        self.strategy = strategy
        self.state: Any = None
        self.last_ts: int | None = None
        self.last = BarSignals()
        self.rebuilds = 0  # how often the window had moved past the state (1 = the warm-up)

    def sync(self, ts: npt.NDArray[np.int64], ohlcv: npt.NDArray[np.float64]) -> BarSignals:
        """Advance over the rows of the window (``ts`` in ms, ``ohlcv`` n x 5) newer than the last one seen."""
        if len(ts) == 0:
            return self.last
        if self.last_ts is None or int(ts[0]) > self.last_ts:
            self.state, start = self.strategy.stream_init(), 0
            self.rebuilds += 1
        else:
            start = int(np.searchsorted(ts, self.last_ts, side="right"))
        advance, state = self.strategy.stream_advance, self.state
        for i in range(start, len(ts)):
            o, h, lo, c, v = ohlcv[i]
            self.last = advance(state, int(ts[i]), o, h, lo, c, v)
        self.last_ts = int(ts[-1])
        return self.last


class _LastBar:
    """What :meth:`LastBarStrategy.signals` returns: the newest bar's signals as length-1 arrays."""

    __slots__ = ("bar",)

    def __init__(self, bar: BarSignals) -> None:
        self.bar = bar

    def arrays(self, index: pd.Index) -> SignalArrays:
        b = self.bar
        return SignalArrays(np.array([b.entry]), np.array([b.exit]), np.array([b.short_entry]),
                            np.array([b.short_exit]), np.ones(1), np.array([b.refuse_entry]))


class LastBarStrategy:
    """An :class:`IncrementalStrategy` seen by a trader as a strategy whose ``signals(window)`` is computed for
    the newest bar only, from the streamed state. Everything else (name, params, warmup) is the strategy's."""

    def __init__(self, strategy: IncrementalStrategy) -> None:
        self.inner = strategy
        self.stream = StreamingSignals(strategy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def signals(self, candles: pd.DataFrame) -> _LastBar:
        ts = index_ms(candles.index)
        return _LastBar(self.stream.sync(ts, candles[_OHLCV].to_numpy(dtype="float64")))


def streams(strategy: object) -> bool:
    """True when the trader may step ``strategy`` from its streamed state: it implements
    :class:`IncrementalStrategy` and its ``stream_advance`` was written for its ``signals()`` (the class that
    defines ``stream_advance`` is the one that defines ``signals``, or below it)."""
    if not isinstance(strategy, IncrementalStrategy):
        return False
    mro = type(strategy).__mro__

    def owner(name: str) -> type | None:
        return next((c for c in mro if name in c.__dict__), None)

    signals, stream = owner("signals"), owner("stream_advance")
    return signals is None or (stream is not None and issubclass(stream, signals))
