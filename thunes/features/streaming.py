"""Streaming indicators: each advanced by one candle from a small saved state, equal to the batch values.

The batch functions of :mod:`thunes.features.indicators` stay the reference (backtests, features, parity).
On the live hot path, recomputing them over the whole trailing window for every candle costs O(window) per
bar; these state machines cost O(1) (recurrences) or O(n) with a small n (windowed sums), and give the value
of the newest bar only.

Shape (the same for every indicator): the state is one ``float64`` array, created by ``*_state(n)``, advanced
in place by an ``@njit`` kernel ``*_step(state, ...) -> value`` (NaN during the warm-up, exactly where the
batch function has NaN). A state array is all there is to save and restore (:meth:`Streaming.save` /
:meth:`Streaming.restore`): a restart continues bit for bit where it stopped. A gap in the candles (a bar the
exchange never sent) is simply not fed; the batch function computed on the same rows (without the missing
bar) gives the same values.

Equality with the batch values (checked on real data by ``tests/features/test_streaming.py``):

* bit for bit where the batch is a plain recurrence: EMA (SMA seed summed left to right), Wilder's RSI and ATR,
  the true range;
* within 1e-12 relative where the batch keeps running window sums (SMA, Bollinger): the batch adds the new
  value and subtracts the old one (re-summing the window now and then to stop rounding drift), the stream
  re-sums its ring buffer of n values at every step, around the newest value as the batch does at its
  re-sums. Both are sums of the same n terms; they differ by the running sum's rounding, far below 1e-12
  of the price.

The kernels hold no pandas and no orchestration: :class:`Streaming` is the thin object a strategy keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "SMA_TOLERANCE",
    "Streaming",
    "StreamingAtr",
    "StreamingBollinger",
    "StreamingEma",
    "StreamingRsi",
    "StreamingSma",
    "atr_state",
    "atr_step",
    "bollinger_state",
    "bollinger_step",
    "ema_state",
    "ema_step",
    "rsi_state",
    "rsi_step",
    "sma_state",
    "sma_step",
    "true_range_state",
    "true_range_step",
]

_kernel = njit(cache=True, error_model="numpy", nogil=True)
# TA-Lib's TA_IS_ZERO (as the batch RSI uses it): an absolute epsilon.
_TA_EPS = 1e-8
# Documented bound of |stream - batch| / |batch| for the windowed-sum indicators (SMA, Bollinger).
SMA_TOLERANCE = 1e-12

# State layout: [0] bars seen, then the indicator's own slots.
_SEEN = 0


# --------------------------------------------------------------------------------------------- windowed sums
def sma_state(n: int) -> np.ndarray:
    """[seen, ring position, n, ring of n values]."""
    st = np.zeros(3 + n)
    st[2] = n
    return st


@_kernel
def _push(st: np.ndarray, x: float) -> int:
    """Put ``x`` into the ring of a windowed state; returns how many values the window now holds (<= n)."""
    n = int(st[2])
    pos = int(st[1])
    st[3 + pos] = x
    st[1] = (pos + 1) % n
    st[_SEEN] += 1.0
    return min(int(st[_SEEN]), n)


@_kernel
def _window_sums(st: np.ndarray, ref: float) -> tuple[float, float]:
    """Sums of d and d^2 for d = value - ref over the ring, oldest first (the batch's order)."""
    n = int(st[2])
    pos = int(st[1])  # the oldest value, once the ring is full
    s1 = 0.0
    s2 = 0.0
    for j in range(n):
        d = st[3 + (pos + j) % n] - ref
        s1 += d
        s2 += d * d
    return s1, s2


@_kernel
def sma_step(st: np.ndarray, x: float) -> float:
    """Simple moving average of the last n values; NaN until n values were seen."""
    n = int(st[2])
    if _push(st, x) < n:
        return np.nan
    s1, _ = _window_sums(st, x)
    return x + s1 / n


def bollinger_state(n: int) -> np.ndarray:
    return sma_state(n)


@_kernel
def bollinger_step(st: np.ndarray, x: float, k: float) -> tuple[float, float, float]:
    """(upper, middle, lower), TA-Lib's order as :func:`~thunes.features.indicators.bollinger`'s: SMA(n) +/- k
    population standard deviations; NaN until n values were seen."""
    n = int(st[2])
    if _push(st, x) < n:
        return np.nan, np.nan, np.nan
    s1, s2 = _window_sums(st, x)
    inv_n = 1.0 / n
    mu = s1 * inv_n
    v = s2 * inv_n - mu * mu
    if v < 0.0:
        v = 0.0
    mid = x + mu
    dev = math.sqrt(v) * k
    return mid + dev, mid, mid - dev


# --------------------------------------------------------------------------------------------- recurrences
def ema_state(n: int) -> np.ndarray:
    """[seen, n, seed sum, value]."""
    return np.array([0.0, float(n), 0.0, np.nan])


@_kernel
def ema_step(st: np.ndarray, x: float) -> float:
    """EMA with k = 2/(n+1), seeded with the SMA of the first n values (TA-Lib); NaN before."""
    n = int(st[1])
    i = int(st[_SEEN])
    st[_SEEN] += 1.0
    if i < n:
        st[2] += x - 0.0  # the batch seed's exact operations: s += x[j] - ref with ref = 0
        if i == n - 1:
            st[3] = st[2] / n
            return st[3]
        return np.nan
    k = 2.0 / (n + 1)
    st[3] = st[3] * (1.0 - k) + x * k
    return st[3]


def rsi_state(n: int) -> np.ndarray:
    """[seen, n, previous value, average gain, average loss]."""
    return np.array([0.0, float(n), np.nan, 0.0, 0.0])


@_kernel
def rsi_step(st: np.ndarray, x: float) -> float:
    """Wilder's RSI (TA-Lib): first value at the (n+1)-th input; 0 where nothing moved."""
    n = int(st[1])
    i = int(st[_SEEN])
    st[_SEEN] += 1.0
    prev = st[2]
    st[2] = x
    if i == 0:
        return np.nan
    d = x - prev
    up = d if d > 0.0 else 0.0
    down = -d if d < 0.0 else 0.0
    gain = st[3]
    loss = st[4]
    if i <= n:
        gain += up
        loss += down
        if i < n:
            st[3] = gain
            st[4] = loss
            return np.nan
        gain /= n
        loss /= n
    else:
        keep = (n - 1) / n
        share = 1.0 / n
        gain = gain * keep + up * share
        loss = loss * keep + down * share
    st[3] = gain
    st[4] = loss
    tot = gain + loss
    return 100.0 * (gain / tot) if not (-_TA_EPS < tot < _TA_EPS) else 0.0


@_kernel
def _true_range(high: float, low: float, prev_close: float) -> float:
    tr = high - low
    up = abs(high - prev_close)
    down = abs(low - prev_close)
    tr = up if up > tr else tr
    return down if down > tr else tr


def atr_state(n: int) -> np.ndarray:
    """[seen, n, previous close, running value]."""
    return np.array([0.0, float(n), np.nan, 0.0])


@_kernel
def atr_step(st: np.ndarray, high: float, low: float, close: float) -> float:
    """Wilder's ATR (TA-Lib): first value at the (n+1)-th candle; ``n`` = 0 gives the true range."""
    n = int(st[1])
    i = int(st[_SEEN])
    st[_SEEN] += 1.0
    yc = st[2]
    st[2] = close
    if i == 0:
        return np.nan
    tr = _true_range(high, low, yc)
    if n == 0:
        return tr
    if i < n:
        st[3] += tr
        return np.nan
    if i == n:
        st[3] = (st[3] + tr) / n
    else:
        st[3] = st[3] * ((n - 1) / n) + tr * (1.0 / n)
    return st[3]


def true_range_state() -> np.ndarray:
    return atr_state(0)


def true_range_step(st: np.ndarray, high: float, low: float, close: float) -> float:
    return atr_step(st, high, low, close)


# --------------------------------------------------------------------------------------------- thin objects
class Streaming:
    """One streaming indicator: a state array and its step kernel. ``update`` takes the candle's fields the
    indicator reads (``close``; ATR: ``high, low, close``) and returns the newest value(s)."""

    __slots__ = ("_extra", "_step", "state")

    def __init__(self, state: np.ndarray, step: Callable[..., Any], *extra: float) -> None:
        self.state = state
        self._step = step
        self._extra = extra

    def update(self, *values: float) -> Any:
        return self._step(self.state, *values, *self._extra)

    def feed(self, *columns: np.ndarray) -> np.ndarray:
        """Advance over whole columns (the warm-up from history); returns every value, like the batch."""
        m = len(columns[0])
        first = self.update(*(float(c[0]) for c in columns)) if m else None
        width = len(first) if isinstance(first, tuple) else 0
        out = np.empty((m, width) if width else m)
        if m:
            out[0] = first
        for i in range(1, m):
            out[i] = self.update(*(float(c[i]) for c in columns))
        return out

    @property
    def seen(self) -> int:
        return int(self.state[_SEEN])

    def save(self) -> list[float]:
        """The state as plain floats (JSON-ready; NaN is written as NaN by ``json``)."""
        return self.state.tolist()

    def restore(self, saved: list[float]) -> None:
        if len(saved) != self.state.size:
            raise ValueError(f"saved state has {len(saved)} slots, this indicator needs {self.state.size}")
        self.state[:] = saved


def StreamingSma(n: int) -> Streaming:  # noqa: N802 - a constructor
    return Streaming(sma_state(n), sma_step)


def StreamingEma(n: int) -> Streaming:  # noqa: N802
    return Streaming(ema_state(n), ema_step)


def StreamingRsi(n: int = 14) -> Streaming:  # noqa: N802
    return Streaming(rsi_state(n), rsi_step)


def StreamingAtr(n: int = 14) -> Streaming:  # noqa: N802
    return Streaming(atr_state(n), atr_step)


def StreamingBollinger(n: int = 20, k: float = 2.0) -> Streaming:  # noqa: N802
    return Streaming(bollinger_state(n), bollinger_step, float(k))
