"""A feature set advanced one candle at a time: the newest row of :func:`compute_features`, without the window.

:class:`StreamingFeatures` keeps the last candles it needs (a tail of the longest window plus the lags) and
the recurrences' states (:mod:`thunes.features.streaming`), and :meth:`StreamingFeatures.update` returns the
feature row of the candle it is given, in the set's column order, followed by ``gap_flag``. Warm-up rows are
NaN exactly where the batch has NaN (the stream must start on the same candle as the batch frame for the
recurrences: EMA, RSI, ATR and OBV carry their whole history).

Equality with :func:`~thunes.features.feature_set.compute_features` (the reference; checked on real data by
``tests/features/test_streaming_set.py``): recurrences, per-bar values, rolling extremes, lags and the
per-window CCI are equal bit for bit; the windowed sums (SMA, WMA, VWAP, mean/variance: Bollinger, z-scores,
volatility, volume ratios) are re-summed over their window at each candle around the newest value, where the
batch keeps running sums. The window statistics themselves agree within 1e-12 relative (the indicators' bound,
:data:`thunes.features.streaming.SMA_TOLERANCE`); a feature that takes a difference of them (``close / SMA -
1``, Bollinger %B, a z-score) carries that error divided by its own scale (a z-score's error is the mean's
error over the standard deviation), so the features are held to :data:`FEATURE_TOLERANCE` relative or
:data:`FEATURE_ATOL` absolute, whichever is larger (measured on BTC/USDT 1h: at most 8e-12 absolute).

Blocks with a streaming form: see :data:`STREAMING_KINDS`. A set using another kind is refused with the list
(MACD, stochastic, MFI, ADX, the Parkinson and Garman-Klass volatilities, return moments and the Fibonacci
levels have no streaming form yet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from thunes.core.errors import ConfigError
from thunes.features.feature_set import FeatureSet, get_feature_set
from thunes.features.gaps import gap_flags
from thunes.features.streaming import ema_step, ema_state, rsi_step, rsi_state, atr_step, atr_state

__all__ = ["StreamingFeatures", "STREAMING_KINDS", "FEATURE_TOLERANCE", "FEATURE_ATOL"]

FEATURE_TOLERANCE = 1e-12  # relative
FEATURE_ATOL = 1e-10  # absolute, for the differences of window statistics (see the module docstring)
_kernel = njit(cache=True, error_model="numpy", nogil=True)
_DAY_MS = 86_400_000
_MINUTE_MS = 60_000
_NAN = float("nan")


# ----------------------------------------------------------------------------------- window kernels
@_kernel
def _mean(a: np.ndarray) -> float:
    """Mean of a window as the batch SMA computes it at a re-sum: newest + sum(x - newest) / n, oldest first."""
    ref = a[a.size - 1]
    s = 0.0
    for j in range(a.size):
        s += a[j] - ref
    return ref + s / a.size


@_kernel
def _mean_var(a: np.ndarray) -> tuple[float, float]:
    """Mean and population variance of a window, as the batch's rolling moments at a re-sum."""
    n = a.size
    ref = a[n - 1]
    s1 = 0.0
    s2 = 0.0
    for j in range(n):
        d = a[j] - ref
        s1 += d
        s2 += d * d
    inv_n = 1.0 / n
    mu = s1 * inv_n
    v = s2 * inv_n - mu * mu
    return ref + mu, (v if v > 0.0 else 0.0)


@_kernel
def _wma(a: np.ndarray) -> float:
    n = a.size
    s = 0.0
    for j in range(n):
        s += a[j] * (j + 1)
    return s / (n * (n + 1) / 2.0)


@_kernel
def _cci(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> float:
    n = c.size
    tp = (h + lo + c) / 3.0
    avg = 0.0
    for j in range(n):
        avg += tp[j] - 0.0
    avg /= n
    dev = 0.0
    for j in range(n):
        dev += abs(tp[j] - avg)
    dev /= n
    num = tp[n - 1] - avg
    return num / (0.015 * dev) if (num != 0.0 and dev != 0.0) else 0.0


def _ratio(a: float, b: float, when_zero: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return _NAN
    return when_zero if b == 0.0 else a / b


# ----------------------------------------------------------------------------------- the tail
class _Tail:
    """The last candles, contiguous (arrays of twice the capacity, shifted down when full)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        cap = 2 * keep + 8
        self.cols = {name: np.empty(cap) for name in ("open", "high", "low", "close", "volume", "logc")}
        self.ts = np.empty(cap, dtype=np.int64)
        self.end = 0
        self.seen = 0

    def push(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        if self.end == self.ts.size:
            k = self.keep
            for arr in self.cols.values():
                arr[:k] = arr[self.end - k:self.end]
            self.ts[:k] = self.ts[self.end - k:self.end]
            self.end = k
        e = self.end
        cols = self.cols
        cols["open"][e], cols["high"][e], cols["low"][e], cols["close"][e], cols["volume"][e] = o, h, lo, c, v
        cols["logc"][e] = math.log(c)
        self.ts[e] = ts
        self.end = e + 1
        self.seen += 1

    def last(self, name: str, n: int) -> np.ndarray | None:
        """The last ``n`` values of a column, or None before ``n`` candles were seen."""
        if self.seen < n:
            return None
        return self.cols[name][self.end - n:self.end]

    def back(self, name: str, lag: int) -> float:
        """The value ``lag`` candles back (NaN before it exists)."""
        return float(self.cols[name][self.end - 1 - lag]) if self.seen > lag else _NAN


# ----------------------------------------------------------------------------------- the blocks
Step = Callable[[_Tail, float, float, float, float, float, int], tuple[float, ...]]
# What a block keeps between candles, besides the shared tail: arrays and dicts, changed in place.
State = tuple[Any, ...]


def _sma_dist(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last("close", n)
        return (_NAN,) if w is None else (c / _mean(w) - 1.0,)
    return step, n


def _ema_dist(n: int) -> tuple[Step, int]:
    st = ema_state(n)

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        return (c / ema_step(st, c) - 1.0,)
    return step, 1, (st,)


def _wma_dist(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last("close", n)
        return (_NAN,) if w is None else (c / _wma(w) - 1.0,)
    return step, n


def _rsi(n: int) -> tuple[Step, int]:
    st = rsi_state(n)

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        return (rsi_step(st, c),)
    return step, 1, (st,)


def _roc(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        prev = t.back("close", n)
        if math.isnan(prev):
            return (_NAN,)
        return (((c / prev) - 1.0) * 100.0 if prev != 0.0 else 0.0,)
    return step, n + 1


def _natr(n: int) -> tuple[Step, int]:
    st = atr_state(n)

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        a = atr_step(st, h, lo, c)
        if math.isnan(a):
            return (_NAN,)
        return (a / c * 100.0 if c != 0.0 else 0.0,)
    return step, 1, (st,)


def _tr_pct() -> tuple[Step, int]:
    st = atr_state(0)

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        return (atr_step(st, h, lo, c) / c,)
    return step, 1, (st,)


def _bollinger(n: int, k: float) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last("close", n)
        if w is None:
            return _NAN, _NAN
        mid, var = _mean_var(w)
        dev = math.sqrt(var) * k
        return _ratio(c - (mid - dev), 2.0 * dev, 0.5), 2.0 * dev / mid
    return step, n


def _vol_cc(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last("logc", n + 1)
        if w is None:
            return (_NAN,)
        _, var = _mean_var(w[1:] - w[:-1])
        return (math.sqrt(var * (n / (n - 1))),)
    return step, n + 1


def _logret(lags: tuple[int, ...]) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        now = t.back("logc", 0)
        return tuple(now - t.back("logc", lag) for lag in lags)
    return step, max(lags) + 1


def _zscore(column: str, n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last(column, n)
        if w is None:
            return (_NAN,)
        mean, var = _mean_var(w)
        sd = math.sqrt(var)
        return ((w[-1] - mean) / sd if sd > 0 else 0.0,)
    return step, n


def _volume_ratio(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last("volume", n)
        return (_NAN,) if w is None else (_ratio(v, _mean(w), 1.0),)
    return step, n


def _obv_flow(n: int) -> tuple[Step, int]:
    ring = np.full(n + 1, np.nan)  # the last n+1 OBV values
    state = {"acc": 0.0, "prev": _NAN, "i": 0}

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        i = state["i"]
        if i == 0:
            acc = v
        else:
            acc = state["acc"]
            if c > state["prev"]:
                acc += v
            elif c < state["prev"]:
                acc -= v
        state["acc"], state["prev"], state["i"] = acc, c, i + 1
        ring[i % (n + 1)] = acc
        if i < n:
            return (_NAN,)
        change = acc - ring[(i - n) % (n + 1)]
        return (_ratio(change, _mean(t.last("volume", n)) * n, 0.0),)  # type: ignore[arg-type]
    return step, n + 1, (ring, state)


def _vwap_dist(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        hi, low, cl, vol = t.last("high", n), t.last("low", n), t.last("close", n), t.last("volume", n)
        if hi is None:
            return (_NAN,)
        tp = (hi + low + cl) / 3.0
        sv = _mean(vol)
        level = _mean(tp * vol) / sv if sv > 0.0 else _mean(tp)
        return (c / level - 1.0,)
    return step, n


def _candle() -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        rng = h - lo
        top, bottom = (o if o > c else c), (o if o < c else c)
        if rng > 0.0:
            body, upper, lower = (c - o) / rng, (h - top) / rng, (bottom - lo) / rng
        else:
            body = upper = lower = 0.0
        prev = t.back("close", 1)
        return body, upper, lower, rng / c, (o / prev - 1.0 if not math.isnan(prev) else _NAN)
    return step, 2


def _range_dist(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        hi, low = t.last("high", n), t.last("low", n)
        if hi is None:
            return _NAN, _NAN, _NAN
        hh, ll = float(hi.max()), float(low.min())
        return c / hh - 1.0, c / ll - 1.0, _ratio(c - ll, hh - ll, 0.5)
    return step, n


def _willr(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        hi, low = t.last("high", n), t.last("low", n)
        if hi is None:
            return (_NAN,)
        hh, ll = float(hi.max()), float(low.min())
        diff = (hh - ll) * -0.01
        return ((hh - c) / diff if diff != 0.0 else 0.0,)
    return step, n


def _cci_block(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        hi = t.last("high", n)
        if hi is None:
            return (_NAN,)
        return (_cci(hi, t.last("low", n), t.last("close", n)),)  # type: ignore[arg-type]
    return step, n


def _calendar() -> tuple[Step, int]:
    two_pi = 2.0 * math.pi

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        ms_of_day = ts % _DAY_MS
        weekday = (ts // _DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
        if ms_of_day % _MINUTE_MS == 0:
            a = two_pi * (((ms_of_day // _MINUTE_MS) * _MINUTE_MS) / float(_DAY_MS))
        else:
            a = two_pi * (ms_of_day / float(_DAY_MS))
        b = two_pi * (weekday / 7.0)
        return math.sin(a), math.cos(a), math.sin(b), math.cos(b)
    return step, 1


_BUILDERS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "sma_dist": _sma_dist, "ema_dist": _ema_dist, "wma_dist": _wma_dist, "rsi": _rsi, "roc": _roc,
    "natr": _natr, "tr_pct": _tr_pct, "bollinger": _bollinger, "vol_cc": _vol_cc, "logret": _logret,
    "zscore_close": lambda n: _zscore("close", n), "volume_z": lambda n: _zscore("volume", n),
    "volume_ratio": _volume_ratio, "obv_flow": _obv_flow, "vwap_dist": _vwap_dist, "candle": _candle,
    "range_dist": _range_dist, "willr": _willr, "cci": _cci_block, "calendar": _calendar,
}
STREAMING_KINDS = tuple(sorted(_BUILDERS))


class StreamingFeatures:
    """The feature rows of ``feature_set``, one candle at a time (see the module docstring).

    ``timeframe_ms``: the candle spacing, for ``gap_flag`` (True when the set's warm-up window of candles,
    ending at this one, is not consecutive, as :func:`compute_features` marks it).
    """

    def __init__(self, feature_set: str | FeatureSet = "default", *, timeframe_ms: int) -> None:
        self.feature_set = get_feature_set(feature_set)
        missing = sorted({b.kind for b in self.feature_set.blocks if b.kind not in _BUILDERS})
        if missing:
            raise ConfigError(f"feature set {self.feature_set.name!r} uses kinds with no streaming form yet: "
                              f"{', '.join(missing)} (streaming: {', '.join(STREAMING_KINDS)})")
        self.timeframe_ms = int(timeframe_ms)
        self.columns = self.feature_set.columns
        self._window = self.feature_set.warmup + 1
        self._steps: list[Step] = []
        need = self._window
        self._states: list[Any] = []
        for b in self.feature_set.blocks:
            step, rows, *state = _BUILDERS[b.kind](**b.kwargs)
            self._steps.append(step)
            self._states.extend(state[0] if state else ())
            need = max(need, rows)
        self._tail = _Tail(need + 1)
        self._row = np.empty(len(self.columns) + 1)

    def update(self, ts_ms: int, open: float, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """The feature row of this candle (the set's columns, then ``gap_flag`` as 0.0/1.0). The array is
        reused by the next call: copy it to keep it."""
        tail = self._tail
        tail.push(ts_ms, open, high, low, close, volume)
        row = self._row
        k = 0
        for step in self._steps:
            for value in step(tail, open, high, low, close, volume, ts_ms):
                row[k] = value
                k += 1
        w = min(self._window, tail.seen)
        row[k] = float(gap_flags(tail.ts[tail.end - w:tail.end], self.timeframe_ms, self._window)[-1])
        return row

    def feed(self, ts: np.ndarray, ohlcv: np.ndarray) -> np.ndarray:
        """Every row for a block of candles (the warm-up from history; what the tests compare)."""
        out = np.empty((len(ts), len(self.columns) + 1))
        for i in range(len(ts)):
            o, h, lo, c, v = ohlcv[i]
            out[i] = self.update(int(ts[i]), o, h, lo, c, v)
        return out

    def save(self) -> dict[str, Any]:
        """Everything the stream carries, JSON-ready: restore it into a new :class:`StreamingFeatures` of the
        same set to continue exactly where this one stopped (a restart without replaying history)."""
        t = self._tail
        return {"set": self.feature_set.hash, "seen": t.seen,
                "tail": {name: arr[:t.end].tolist() for name, arr in t.cols.items()}, "ts": t.ts[:t.end].tolist(),
                "states": [s.tolist() if isinstance(s, np.ndarray) else dict(s) for s in self._states]}

    def restore(self, saved: dict[str, Any]) -> None:
        if saved.get("set") != self.feature_set.hash:
            raise ConfigError(f"saved stream state belongs to another feature set (hash {saved.get('set')}, "
                              f"this is {self.feature_set.hash})")
        t = self._tail
        t.end, t.seen = len(saved["ts"]), int(saved["seen"])
        for name, values in saved["tail"].items():
            t.cols[name][:t.end] = values
        t.ts[:t.end] = saved["ts"]
        for mine, theirs in zip(self._states, saved["states"], strict=True):
            if isinstance(mine, np.ndarray):
                mine[:] = theirs
            else:
                mine.update(theirs)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(b.kind for b in self.feature_set.blocks)
