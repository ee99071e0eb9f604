"""A feature set advanced one candle at a time: the newest row of :func:`compute_features`, without the window.

:class:`StreamingFeatures` keeps the last candles it needs (a tail of the longest window plus the lags) and
the recurrences' states (:mod:`thunes.features.streaming`), and :meth:`StreamingFeatures.update` returns the
feature row of the candle it is given, in the set's column order, followed by ``gap_flag``. Warm-up rows are
NaN exactly where the batch has NaN (the stream must start on the same candle as the batch frame for the
recurrences: EMA, RSI, ATR and OBV carry their whole history).

Equality with :func:`~thunes.features.feature_set.compute_features` (the reference; checked on real data by
``tests/features/test_streaming_set.py``): recurrences, per-bar values, rolling extremes, lags and the
per-window CCI, the stochastic's fresh means, MACD, ADX and the Fibonacci levels are equal bit for bit; the
windowed sums (SMA, WMA, VWAP, MFI, mean/variance and higher moments: Bollinger, z-scores, volatilities, return
skew and kurtosis, volume ratios) are re-summed over their window at each candle around the newest value, where the
batch keeps running sums. The window statistics themselves agree within 1e-12 relative (the indicators' bound,
:data:`thunes.features.streaming.SMA_TOLERANCE`); a feature that takes a difference of them (``close / SMA -
1``, Bollinger %B, a z-score) carries that error divided by its own scale (a z-score's error is the mean's
error over the standard deviation; skewness and kurtosis are differences of power sums), so the features are
held to :data:`FEATURE_TOLERANCE` relative or :data:`FEATURE_ATOL` absolute, whichever is larger (measured on
BTC/USDT 1h: at most 8e-12 absolute).

Every block kind of :mod:`thunes.features.feature_set` has a streaming form (:data:`STREAMING_KINDS`), so the
default set (69 columns) and the compact set stream whole; a kind added later without one is refused by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from thunes.core.errors import ConfigError, DataError
from thunes.features.feature_set import FeatureSet, get_feature_set
from thunes.features.gaps import gap_flags
from thunes.features.streaming import (
    _TA_EPS,
    _true_range,
    atr_state,
    atr_step,
    ema_state,
    ema_step,
    rsi_state,
    rsi_step,
)

__all__ = ["FEATURE_ATOL", "FEATURE_TOLERANCE", "STREAMING_KINDS", "StreamingFeatures"]

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


@_kernel
def _sum0(a: np.ndarray) -> float:
    """Sum left to right from 0.0, as the batch's ``_sum_from(x, lo, hi, 0.0)``."""
    s = 0.0
    for j in range(a.size):
        s += a[j] - 0.0
    return s


def _ring_in_order(ring: np.ndarray, i: int) -> np.ndarray:
    """A ring whose newest value (row ``i``) sits at slot ``i % size``, oldest first."""
    k = (i + 1) % ring.size
    return np.concatenate((ring[k:], ring[:k])) if k else ring


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


def _macd(fast: int, slow: int, signal: int) -> tuple[Any, ...]:
    """TA-Lib MACD as the batch computes it: both EMAs start at row slow-1 (the fast one seeded with the mean
    of its last ``fast`` values), the signal is seeded with the mean of the first ``signal`` lines."""
    if slow < fast:
        fast, slow = slow, fast
    start, first = slow - 1, slow - 1 + signal - 1
    kf, ks, kg = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
    st = {"i": 0, "ssum": 0.0, "ef": _NAN, "es": _NAN, "seed": 0.0, "prev": _NAN}

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        i = st["i"]
        st["i"] = i + 1
        if i <= start:
            st["ssum"] += c - 0.0  # the batch's left-to-right seed sum
            if i < start:
                return _NAN, _NAN, _NAN
            st["ef"] = _sum0(t.last("close", fast)) / fast  # type: ignore[arg-type]
            st["es"] = st["ssum"] / slow
            st["seed"] = st["ef"] - st["es"]
        else:
            st["ef"] = st["ef"] * (1.0 - kf) + c * kf
            st["es"] = st["es"] * (1.0 - ks) + c * ks
            if i <= first:
                st["seed"] += st["ef"] - st["es"]
        raw = st["ef"] - st["es"]
        if i < first:
            return _NAN, _NAN, _NAN
        if i == first:
            st["prev"] = st["seed"] / signal
        else:
            st["prev"] = st["prev"] * (1.0 - kg) + raw * kg
        prev = st["prev"]
        return raw / c * 100.0, prev / c * 100.0, (raw - prev) / c * 100.0
    return step, 1, (st,)


def _stoch(fastk: int, slowk: int, slowd: int) -> tuple[Any, ...]:
    """Slow stochastic: raw %K over ``fastk`` rows, its mean over ``slowk`` (%K), that mean over ``slowd`` (%D);
    the smoothing means are summed afresh, as the batch does."""
    raw = np.full(slowk, np.nan)  # the last slowk raw %K values (slot = row % slowk)
    ks = np.full(slowd, np.nan)
    st = {"i": 0}
    first = fastk - 1 + slowk - 1 + slowd - 1

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        i = st["i"]
        st["i"] = i + 1
        if i < fastk - 1:
            return _NAN, _NAN
        hh, ll = float(t.last("high", fastk).max()), float(t.last("low", fastk).min())  # type: ignore[union-attr]
        diff = (hh - ll) / 100.0
        raw[i % slowk] = (c - ll) / diff if diff != 0.0 else 0.0
        if i < fastk - 1 + slowk - 1:
            return _NAN, _NAN
        k = _sum0(_ring_in_order(raw, i)) / slowk
        ks[i % slowd] = k
        if i < first:
            return _NAN, _NAN
        return k, _sum0(_ring_in_order(ks, i)) / slowd
    return step, fastk, (raw, ks, st)


def _mfi(n: int) -> tuple[Any, ...]:
    """Money Flow Index: the last n up and down money flows summed afresh (50 on a window with no flow)."""
    pos = np.zeros(n)
    neg = np.zeros(n)
    st = {"i": 0, "prev_tp": _NAN}

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        i = st["i"]
        st["i"] = i + 1
        if i == 0:
            st["prev_tp"] = (h + lo + c) / 3.0
            return (_NAN,)
        tp = (h + lo + c) / 3.0
        d = tp - st["prev_tp"]
        st["prev_tp"] = tp
        flow = tp * v
        moved = abs(d) > 1e-10 * abs(tp)
        pos[i % n] = flow if (moved and d > 0.0) else 0.0
        neg[i % n] = flow if (moved and d < 0.0) else 0.0
        if i < n:
            return (_NAN,)
        sp, sn = _sum0(_ring_in_order(pos, i)), _sum0(_ring_in_order(neg, i))
        tot = sp + sn
        return (100.0 * (sp / tot) if tot > 0.0 else 50.0,)
    return step, 1, (pos, neg, st)


def _adx(n: int) -> tuple[Any, ...]:
    """ADX, +DI, -DI with TA-Lib's Wilder smoothing (a plain recurrence, as the batch)."""
    st = {"i": 0, "ph": _NAN, "pl": _NAN, "pc": _NAN, "pdm": 0.0, "mdm": 0.0, "trs": 0.0, "sum_dx": 0.0,
          "adx": 0.0}
    keep, share = (n - 1) / n, 1.0 / n

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        i = st["i"]
        st["i"] = i + 1
        ph, pl, pc = st["ph"], st["pl"], st["pc"]
        st["ph"], st["pl"], st["pc"] = h, lo, c
        if i == 0:
            return _NAN, _NAN, _NAN
        up, down = h - ph, pl - lo
        plus = up if (up > 0.0 and up > down) else 0.0
        minus = down if (down > 0.0 and up < down) else 0.0
        tr = _true_range(h, lo, pc)
        if i < n:
            st["pdm"] += plus
            st["mdm"] += minus
            st["trs"] += tr
            return _NAN, _NAN, _NAN
        st["pdm"] = st["pdm"] * keep + plus
        st["mdm"] = st["mdm"] * keep + minus
        st["trs"] = trs = st["trs"] * keep + tr
        dx_ok, dx = False, 0.0
        if not (-_TA_EPS < trs < _TA_EPS):
            scale = 100.0 / trs
            p, q = st["pdm"] * scale, st["mdm"] * scale
            tot = p + q
            if not (-_TA_EPS < tot < _TA_EPS):
                dx = 100.0 * (abs(q - p) / tot)
                dx_ok = True
        else:
            p = q = 0.0
        if i < 2 * n:
            if dx_ok:
                st["sum_dx"] += dx
            if i < 2 * n - 1:
                return _NAN, p, q
            st["adx"] = st["sum_dx"] / n
        elif dx_ok:
            st["adx"] = st["adx"] * keep + dx * share
        return st["adx"], p, q
    return step, 1, (st,)


def _root_mean_block(n: int, term: Callable[[float, float, float, float], float], scale: float) -> tuple[Any, ...]:
    """sqrt(mean of a per-bar term over n rows), 0 where rounding made the mean negative (the batch's
    ``_root_mean``)."""
    ring = np.full(n, np.nan)
    st = {"i": 0}

    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        i = st["i"]
        st["i"] = i + 1
        ring[i % n] = term(o, h, lo, c)
        if i < n - 1:
            return (_NAN,)
        m = _mean(_ring_in_order(ring, i)) * scale
        return (math.sqrt(m) if m > 0.0 else 0.0,)
    return step, 1, (ring, st)


_LN2 = math.log(2.0)
_PARK = 1.0 / (4.0 * _LN2)
_GK = 2.0 * _LN2 - 1.0


def _parkinson_term(o: float, h: float, lo: float, c: float) -> float:
    r = math.log(h / lo)
    return r * r


def _gk_term(o: float, h: float, lo: float, c: float) -> float:
    hl, co = math.log(h / lo), math.log(c / o)
    return 0.5 * hl * hl - _GK * co * co


_FIB_RETR = (0.236, 0.382, 0.5, 0.618, 0.786)
_FIB_EXT = (1.272, 1.618)


def _fib(n: int) -> tuple[Step, int]:
    """The n-row swing (highest high, lowest low, which came last; ties to the latest row) and close's
    distance to each retracement and extension level, as the batch's ``swing_1d`` + ``fib_level_dist_1d``."""
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        hi, low = t.last("high", n), t.last("low", n)
        if hi is None:
            return (_NAN,) * (1 + len(_FIB_RETR) + len(_FIB_EXT))
        ih = n - 1 - int(np.argmax(hi[::-1]))  # the latest row holding the maximum
        il = n - 1 - int(np.argmin(low[::-1]))  # type: ignore[index]
        hh, ll = float(hi[ih]), float(low[il])  # type: ignore[index]
        up = ih >= il
        span = hh - ll
        out = [1.0 if up else -1.0]
        for r in _FIB_RETR:
            level = hh - r * span if up else ll + r * span
            out.append((c - level) / c)
        for e in _FIB_EXT:
            level = ll + e * span if up else hh - e * span
            out.append((c - level) / c)
        return tuple(out)
    return step, n


@_kernel
def _skew_kurt(x: np.ndarray) -> tuple[float, float]:
    """Bias-corrected skewness and excess kurtosis of a window (the batch's formulas, its sums taken around the
    newest value as at its re-sums); 0 on a flat window."""
    n = x.size
    ref = x[n - 1]
    s1 = s2 = s3 = s4 = 0.0
    for j in range(n):
        d = x[j] - ref
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
    mu = s1 / n
    m2 = s2 / n - mu * mu
    mu2 = mu * mu
    m3 = s3 / n - 3.0 * mu * s2 / n + 2.0 * mu2 * mu
    m4 = s4 / n - 4.0 * mu * s3 / n + 6.0 * mu2 * s2 / n - 3.0 * mu2 * mu2
    if m2 <= 1e-14 * (s2 / n) or m2 <= 0.0:
        return 0.0, 0.0
    skew = math.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / (m2 ** 1.5)
    kurt = ((n * n - 1.0) * m4 / (m2 * m2) - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0))
    return skew, kurt


def _ret_moments(n: int) -> tuple[Step, int]:
    def step(t: _Tail, o: float, h: float, lo: float, c: float, v: float, ts: int) -> tuple[float, ...]:
        w = t.last("logc", n + 1)
        if w is None:
            return _NAN, _NAN
        return _skew_kurt(w[1:] - w[:-1])
    return step, n + 1


_BUILDERS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "sma_dist": _sma_dist, "ema_dist": _ema_dist, "wma_dist": _wma_dist, "rsi": _rsi, "roc": _roc,
    "natr": _natr, "tr_pct": _tr_pct, "bollinger": _bollinger, "vol_cc": _vol_cc, "logret": _logret,
    "zscore_close": lambda n: _zscore("close", n), "volume_z": lambda n: _zscore("volume", n),
    "volume_ratio": _volume_ratio, "obv_flow": _obv_flow, "vwap_dist": _vwap_dist, "candle": _candle,
    "range_dist": _range_dist, "willr": _willr, "cci": _cci_block, "calendar": _calendar, "macd": _macd,
    "stoch": _stoch, "mfi": _mfi, "adx": _adx,
    "vol_parkinson": lambda n: _root_mean_block(n, _parkinson_term, _PARK),
    "vol_gk": lambda n: _root_mean_block(n, _gk_term, 1.0), "fib": _fib, "ret_moments": _ret_moments,
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
        if tail.seen and ts_ms <= tail.ts[tail.end - 1]:
            raise DataError(f"candle at {ts_ms} is not after the last one streamed ({int(tail.ts[tail.end - 1])}): "
                            "a stream takes each closed candle once, in order")
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
