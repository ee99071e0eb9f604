"""Numba kernels for the indicators: float64 arrays in, float64 arrays out, no pandas, no validation.

Every kernel walks its input once from left to right and writes the value at ``t`` from inputs at
``<= t`` only, so it is causal by construction (the prefix-invariance test checks it anyway). Warm-up
positions are NaN. Where TA-Lib has the indicator, the kernel reproduces TA-Lib's seeding and update
formulas so that the values agree to rounding error; the public wrappers in
:mod:`thunes.features.indicators` validate inputs and restore pandas indexes.

Recursive smoothers (EMA, Wilder) are written ``prev * (1 - k) + x * k`` rather than TA-Lib's
``(x - prev) * k + prev`` or ``(prev * (n - 1) + x) / n``: the same value to ~1e-15 relative, but the
loop-carried chain is one multiply and one add instead of a division (13+ cycles) per row, which is
what made RSI and ATR 3-4x slower than TA-Lib. Per-row maxima (true range, directional movement) are
written as selects so that they compile without branches; real prices mispredict half of them.

Rolling sums are kept *relative to a reference value* and recomputed exactly every ``_RESYNC`` steps
(and whenever the variance is swamped by cancellation): a plain running sum over a million bars drifts
by ~sqrt(N)*eps*|sum| and a raw ``E[x^2]-E[x]^2`` loses every digit on a flat window. The resync
schedule depends only on the absolute row number, so prefixes still give bit-identical values.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_RESYNC = 1024
# error_model="numpy": a float division is plain IEEE. Numba's default ("python") tests every divisor
# for zero to raise ZeroDivisionError, a branch per division that also blocks vectorisation (it made
# Williams %R 10x slower than TA-Lib). Every kernel guards its own zero denominators explicitly.
# nogil: kernels touch no Python object, so a feature set computes its blocks on several threads.
_kernel = njit(cache=True, error_model="numpy", nogil=True)
# TA-Lib's TA_IS_ZERO: an absolute epsilon, reproduced where TA-Lib uses it.
_TA_EPS = 1e-8


@_kernel
def _ta_is_zero(v: float) -> bool:
    return -_TA_EPS < v < _TA_EPS


@_kernel
def _nan_fill(out: np.ndarray, k: int) -> np.ndarray:
    """``out`` with its first ``k`` entries set to NaN (the warm-up); the rest is left to the caller."""
    for i in range(min(k, out.size)):
        out[i] = np.nan
    return out


@_kernel
def _nan_head(m: int, k: int) -> np.ndarray:
    """An uninitialised float array whose first ``k`` entries are NaN (the warm-up)."""
    out = np.empty(m)
    for i in range(min(k, m)):
        out[i] = np.nan
    return out


@_kernel
def _sum_from(x: np.ndarray, lo: int, hi: int, ref: float) -> float:
    """Sum of ``x[lo:hi] - ref``, left to right (a window sum, exact up to its own rounding)."""
    s = 0.0
    for j in range(lo, hi):
        s += x[j] - ref
    return s


# --------------------------------------------------------------------------------------------- averages
@_kernel
def sma_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average; NaN for the first ``n-1`` rows (TA-Lib SMA)."""
    return _sma(x, n, False, np.empty(x.size))[0]


@_kernel
def sma_checked(x: np.ndarray, n: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``sma_1d`` into ``out`` and the checksum of its input (see ``rolling_max_checked``)."""
    return _sma(x, n, True, out)


@_kernel
def _sma(x: np.ndarray, n: int, check: bool, out: np.ndarray) -> tuple[np.ndarray, float]:
    m = x.size
    _nan_fill(out, n - 1)
    if m < n:
        return out, np.nan
    ref = x[n - 1]
    s = _sum_from(x, 0, n, ref)
    total = _sum_from(x, 0, n, 0.0) if check else 0.0
    out[n - 1] = ref + s / n
    since = 0
    for i in range(n, m):
        xi = x[i]
        if check:
            total += xi
        since += 1
        if since >= _RESYNC:
            ref = xi
            s = _sum_from(x, i - n + 1, i + 1, ref)
            since = 0
        else:
            s += (xi - ref) - (x[i - n] - ref)
        out[i] = ref + s / n
    return out, total


@_kernel
def ema_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first ``n`` values (TA-Lib)."""
    return _ema(x, n, False, np.empty(x.size))[0]


@_kernel
def ema_checked(x: np.ndarray, n: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``ema_1d`` into ``out`` and the checksum of its input (see ``rolling_max_checked``)."""
    return _ema(x, n, True, out)


@_kernel
def _ema(x: np.ndarray, n: int, check: bool, out: np.ndarray) -> tuple[np.ndarray, float]:
    m = x.size
    _nan_fill(out, n - 1)
    if m < n:
        return out, np.nan
    k = 2.0 / (n + 1)
    keep = 1.0 - k
    seed = _sum_from(x, 0, n, 0.0)
    total = seed if check else 0.0
    prev = seed / n
    out[n - 1] = prev
    for i in range(n, m):
        xi = x[i]
        if check:
            total += xi
        prev = prev * keep + xi * k
        out[i] = prev
    return out, total


@_kernel
def wma_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted moving average (weights 1..n, newest heaviest), TA-Lib's running-sum form,
    with both sums recomputed from the window every ``_RESYNC`` rows (the running form alone drifted
    to 8e-5 on 480k BTC 1m rows)."""
    return _wma(x, n, False, np.empty(x.size))[0]


@_kernel
def wma_checked(x: np.ndarray, n: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``wma_1d`` into ``out`` and the checksum of its input (see ``rolling_max_checked``)."""
    return _wma(x, n, True, out)


@_kernel
def _wma(x: np.ndarray, n: int, check: bool, out: np.ndarray) -> tuple[np.ndarray, float]:
    m = x.size
    _nan_fill(out, n - 1)
    if m < n:
        return out, np.nan
    divider = n * (n + 1) / 2.0
    # The sums are of x - ref (small numbers: rounding scales with them, not with the price level).
    ref = x[n - 1]
    psum = 0.0
    psub = 0.0
    total = 0.0
    for j in range(n - 1):
        d = x[j] - ref
        psub += d
        psum += d * (j + 1)
        if check:
            total += x[j]
    trailing = 0.0
    since = 0
    for i in range(n - 1, m):
        v = x[i]
        if check:
            total += v
        since += 1
        if since >= _RESYNC:  # on the absolute row number: prefixes give the same bits
            ref = v
            psub = 0.0
            psum = 0.0
            lo = i - n + 1
            for j in range(lo, i + 1):
                d = x[j] - ref
                psub += d
                psum += d * (j - lo + 1)
            since = 0
        else:
            d = v - ref
            psub += d - trailing
            psum += d * n
        trailing = x[i - n + 1] - ref
        out[i] = ref + psum / divider
        psum -= psub
    return out, total


# ------------------------------------------------------------------------------------ rolling moments
@_kernel
def _power_sums(x: np.ndarray, lo: int, hi: int, ref: float) -> tuple[float, float, float, float]:
    """Sums of d, d^2, d^3, d^4 for d = x[lo:hi] - ref (the exact recompute of the rolling moments)."""
    s1 = s2 = s3 = s4 = 0.0
    for j in range(lo, hi):
        d = x[j] - ref
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
    return s1, s2, s3, s4


@_kernel
def _mean_var_into(x: np.ndarray, n: int, mean: np.ndarray, var: np.ndarray, check: bool) -> float:
    """Rolling mean and population variance into the arrays; with ``check``, returns the sum of ``x``
    (finite only if every value is: the public wrappers' input check, in this pass)."""
    m = x.size
    inv_n = 1.0 / n
    ref = x[n - 1]
    s1, s2, _, _ = _power_sums(x, 0, n - 1, ref)
    total = _sum_from(x, 0, n - 1, 0.0) if check else 0.0
    since = 0
    peak = s2  # largest s2 since the last exact recompute: its rounding residue is ~eps * peak
    for i in range(n - 1, m):
        if check:
            total += x[i]
        d = x[i] - ref
        s1 += d
        s2 += d * d
        if s2 > peak:
            peak = s2
        since += 1
        mu = s1 * inv_n
        e2 = s2 * inv_n
        v = e2 - mu * mu
        # Recompute exactly on schedule, or when cancellation ate the variance (flat or drifted window).
        if since >= _RESYNC or v <= 1e-7 * e2 or v * n <= 1e-9 * peak:
            ref = x[i]
            s1, s2, _, _ = _power_sums(x, i - n + 1, i + 1, ref)
            since = 0
            peak = s2
            mu = s1 * inv_n
            v = s2 * inv_n - mu * mu
        if v < 0.0:
            v = 0.0
        if mean.size:  # an empty ``mean`` asks for the variance alone
            mean[i] = ref + mu
        var[i] = v
        d = x[i - n + 1] - ref
        s1 -= d
        s2 -= d * d
    return total


@_kernel
def rolling_mean_var_1d(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and *population* variance over ``n`` rows (NaN for the first ``n-1``)."""
    m = x.size
    mean = _nan_head(m, n - 1)
    var = _nan_head(m, n - 1)
    if m >= n:
        _mean_var_into(x, n, mean, var, False)
    return mean, var


@_kernel
def bollinger_1d(x: np.ndarray, n: int, k: float, mid: np.ndarray, upper: np.ndarray,
                 lower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands into the given arrays: SMA(n) and SMA -/+ k population std (TA-Lib BBANDS)."""
    m = x.size
    for i in range(min(n - 1, m)):
        mid[i] = np.nan
        upper[i] = np.nan
        lower[i] = np.nan
    if m >= n:
        _mean_var_into(x, n, mid, upper, False)  # the variance, turned into the upper band below
        for i in range(n - 1, m):
            dev = math.sqrt(upper[i]) * k
            upper[i] = mid[i] + dev
            lower[i] = mid[i] - dev
    return mid, upper, lower


@_kernel
def rolling_std_1d(x: np.ndarray, n: int, ddof: int) -> np.ndarray:
    """Rolling standard deviation with ``ddof`` (0: population, as TA-Lib STDDEV/BBANDS; 1: sample)."""
    return _rolling_std(x, n, ddof, False)[0]


@_kernel
def rolling_std_checked(x: np.ndarray, n: int, ddof: int) -> tuple[np.ndarray, float]:
    """``rolling_std_1d`` and the checksum of its input (a sum: finite only if every value is)."""
    return _rolling_std(x, n, ddof, True)


@_kernel
def _rolling_std(x: np.ndarray, n: int, ddof: int, check: bool) -> tuple[np.ndarray, float]:
    m = x.size
    out = _nan_head(m, n - 1)
    total = np.nan  # too short to check here: the wrapper's own check decides
    if m >= n:
        total = _mean_var_into(x, n, np.empty(0), out, check)  # the variance, turned into the std in place
    scale = n / (n - ddof)
    for i in range(n - 1, m):
        out[i] = math.sqrt(out[i] * scale)
    return out, total


@_kernel
def zscore_1d(x: np.ndarray, n: int) -> np.ndarray:
    """(x - rolling mean) / rolling population std over ``n`` rows; 0 where the window is flat."""
    m = x.size
    mean, out = rolling_mean_var_1d(x, n)  # the variance becomes the z-score in place
    for i in range(n - 1, m):
        sd = math.sqrt(out[i])
        out[i] = (x[i] - mean[i]) / sd if sd > 0.0 else 0.0
    return out


@_kernel
def rolling_skew_kurt_1d(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling bias-corrected skewness and excess kurtosis (pandas' definitions); 0 on flat windows."""
    m = x.size
    skew = np.full(m, np.nan)
    kurt = np.full(m, np.nan)
    if m < n:
        return skew, kurt
    ref = x[n - 1]
    s1, s2, s3, s4 = _power_sums(x, 0, n - 1, ref)
    since = 0
    peak = s2
    for i in range(n - 1, m):
        d = x[i] - ref
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
        if s2 > peak:
            peak = s2
        since += 1
        mu = s1 / n
        m2 = s2 / n - mu * mu
        if since >= _RESYNC or m2 <= 1e-7 * (s2 / n) or m2 * n <= 1e-9 * peak:
            ref = x[i]
            s1, s2, s3, s4 = _power_sums(x, i - n + 1, i + 1, ref)
            since = 0
            peak = s2
            mu = s1 / n
            m2 = s2 / n - mu * mu
        mu2 = mu * mu
        m3 = s3 / n - 3.0 * mu * s2 / n + 2.0 * mu2 * mu
        m4 = s4 / n - 4.0 * mu * s3 / n + 6.0 * mu2 * s2 / n - 3.0 * mu2 * mu2
        if m2 <= 1e-14 * (s2 / n) or m2 <= 0.0:
            skew[i] = 0.0
            kurt[i] = 0.0
        else:
            skew[i] = math.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / (m2 ** 1.5)
            kurt[i] = ((n * n - 1.0) * m4 / (m2 * m2) - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0))
        d = x[i - n + 1] - ref
        d2 = d * d
        s1 -= d
        s2 -= d2
        s3 -= d2 * d
        s4 -= d2 * d2
    return skew, kurt


@_kernel
def _rolling_extreme(x: np.ndarray, n: int, is_max: bool, track: bool, check: bool,
                     val: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Rolling maximum (``is_max``) or minimum over ``n`` rows, the row where it sits (if ``track``) and,
    if ``check``, the sum of the inputs: finite only if every input is (see ``_run`` in indicators).

    Van Herk / Gil-Werman: rows are cut into blocks of ``n``; a window ending at row ``i`` is the
    suffix of the previous block from its start row plus the prefix of ``i``'s block, so each value is
    one comparison of a running prefix extreme with a stored suffix extreme. Unlike TA-Lib's rescan
    (cheap on noise, ~10x slower on trending prices, where the extreme keeps leaving the window), the
    work per row is constant and the comparisons compile to branch-free selects. Ties go to the latest
    row. The suffix of a block is read only by windows that contain that whole suffix, so the value at
    ``t`` depends on rows ``<= t`` alone; block boundaries depend on the absolute row number.
    """
    m = x.size
    _nan_fill(val, n - 1)
    idx = np.empty(m if track else 0, dtype=np.int64)
    suf = np.empty(n + 1)
    suf_i = np.empty(n + 1, dtype=np.int64)
    suf[n] = -np.inf if is_max else np.inf  # the window that is exactly one block has no suffix part
    suf_i[n] = -1
    total = 0.0
    for s in range(0, m, n):
        e = min(s + n, m)
        pv = x[s]
        pi = s
        for i in range(s, e):
            xi = x[i]
            if check:
                total += xi
            take = (xi >= pv) if is_max else (xi <= pv)
            pv = xi if take else pv
            k = i + 1 - s  # the window starts at row i-n+1, offset k in the previous block
            sv = suf[k]
            prefix = (pv >= sv) if is_max else (pv <= sv)
            if i >= n - 1:
                val[i] = pv if prefix else sv
            if track:
                pi = i if take else pi
                idx[i] = pi if prefix else suf_i[k]
        if e < m:
            sv = x[e - 1]
            si = e - 1
            suf[e - 1 - s] = sv
            suf_i[e - 1 - s] = si
            for j in range(e - 2, s - 1, -1):
                xj = x[j]
                take = (xj > sv) if is_max else (xj < sv)  # strict: on a tie keep the later row
                sv = xj if take else sv
                suf[j - s] = sv
                if track:
                    si = j if take else si
                    suf_i[j - s] = si
    return val, idx, total


@_kernel
def rolling_max_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling maximum over ``n`` rows (TA-Lib MAX); NaN for the first ``n-1``."""
    return _rolling_extreme(x, n, True, False, False, np.empty(x.size))[0]


@_kernel
def rolling_min_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling minimum over ``n`` rows (TA-Lib MIN); NaN for the first ``n-1``."""
    return _rolling_extreme(x, n, False, False, False, np.empty(x.size))[0]


@_kernel
def rolling_max_checked(x: np.ndarray, n: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``rolling_max_1d`` into ``out`` and the checksum of its inputs (a sum: finite only if every input is).

    The ``*_checked`` kernels serve the public wrappers, which allocate the outputs with numpy (huge
    pages: an 8 MB array allocated in a kernel takes 2,048 page faults on first touch).
    """
    val, _, total = _rolling_extreme(x, n, True, False, True, out)
    return val, total


@_kernel
def rolling_min_checked(x: np.ndarray, n: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``rolling_min_1d`` into ``out`` and the checksum of its inputs (see ``rolling_max_checked``)."""
    val, _, total = _rolling_extreme(x, n, False, False, True, out)
    return val, total


@_kernel
def swing_1d(high: np.ndarray, low: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling swing over ``n`` rows: highest high, lowest low and direction.

    Direction is +1 when the high came after the low (an up-swing), -1 otherwise; ties take the most
    recent extreme.
    """
    hh, ih, _ = _rolling_extreme(high, n, True, True, False, np.empty(high.size))
    ll, il, _ = _rolling_extreme(low, n, False, True, False, np.empty(low.size))
    direction = _nan_head(high.size, n - 1)
    for i in range(n - 1, high.size):
        direction[i] = 1.0 if ih[i] >= il[i] else -1.0
    return hh, ll, direction


# --------------------------------------------------------------------------------------------- momentum
@_kernel
def rsi_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's RSI (TA-Lib RSI): first value at row ``n``; 0 where nothing moved (as TA-Lib)."""
    return _rsi(x, n, False, np.empty(x.size))[0]


@_kernel
def rsi_checked(x: np.ndarray, n: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``rsi_1d`` into ``out`` and the checksum of its input (see ``rolling_max_checked``)."""
    return _rsi(x, n, True, out)


@_kernel
def _rsi(x: np.ndarray, n: int, check: bool, out: np.ndarray) -> tuple[np.ndarray, float]:
    m = x.size
    _nan_fill(out, n)
    if m <= n:
        return out, np.nan
    keep = (n - 1) / n
    share = 1.0 / n
    gain = 0.0
    loss = 0.0
    total = x[0] if check else 0.0
    for i in range(1, m):
        xi = x[i]
        if check:
            total += xi
        d = xi - x[i - 1]
        up = d if d > 0.0 else 0.0
        down = -d if d < 0.0 else 0.0
        if i <= n:  # the seed: plain averages of the first n moves
            gain += up
            loss += down
            if i < n:
                continue
            gain /= n
            loss /= n
        else:
            gain = gain * keep + up * share
            loss = loss * keep + down * share
        tot = gain + loss
        out[i] = 100.0 * (gain / tot) if not _ta_is_zero(tot) else 0.0
    return out, total


@_kernel
def macd_1d(x: np.ndarray, fast: int, slow: int, signal: int, line: np.ndarray, sig: np.ndarray,
            hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal and histogram as TA-Lib MACD computes them, written into the given arrays.

    Both EMAs start at row ``slow-1`` (the fast one seeded with the SMA of its last ``fast`` values);
    the signal is an EMA of the line seeded with its first ``signal`` values, and all three outputs
    start at row ``slow+signal-2``. Multi-output kernels take their outputs from the caller, who allocates
    them with numpy (huge pages; see ``feature_set._Ctx.column``).
    """
    if slow < fast:
        fast, slow = slow, fast
    m = x.size
    start = slow - 1
    first = start + signal - 1
    for i in range(min(first, m)):
        line[i] = np.nan
        sig[i] = np.nan
        hist[i] = np.nan
    if m <= first:
        return line, sig, hist
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    ef = _sum_from(x, start - fast + 1, start + 1, 0.0) / fast
    es = _sum_from(x, 0, start + 1, 0.0) / slow
    seed = ef - es
    kf1 = 1.0 - kf
    ks1 = 1.0 - ks
    kg1 = 1.0 - kg
    for i in range(start + 1, first + 1):
        ef = ef * kf1 + x[i] * kf
        es = es * ks1 + x[i] * ks
        seed += ef - es
    prev = seed / signal
    raw = ef - es
    line[first] = raw
    sig[first] = prev
    hist[first] = raw - prev
    for i in range(first + 1, m):
        v = x[i]
        ef = ef * kf1 + v * kf
        es = es * ks1 + v * ks
        raw = ef - es
        prev = prev * kg1 + raw * kg
        line[i] = raw
        sig[i] = prev
        hist[i] = raw - prev
    return line, sig, hist


@_kernel
def roc_1d(x: np.ndarray, n: int) -> np.ndarray:
    """Rate of change in percent, ((x/x[t-n]) - 1) * 100 (TA-Lib ROC; 0 where x[t-n] is 0)."""
    return _roc(x, n, False)[0]


@_kernel
def roc_checked(x: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """``roc_1d`` and the checksum of its input (a sum: finite only if every value is)."""
    return _roc(x, n, True)


@_kernel
def _roc(x: np.ndarray, n: int, check: bool) -> tuple[np.ndarray, float]:
    m = x.size
    out = _nan_head(m, n)
    total = _sum_from(x, 0, min(n, m), 0.0) if check else 0.0
    for i in range(n, m):
        xi = x[i]
        if check:
            total += xi
        prev = x[i - n]
        out[i] = ((xi / prev) - 1.0) * 100.0 if prev != 0.0 else 0.0
    return out, total


@_kernel
def log_return_1d(x: np.ndarray, lag: int) -> np.ndarray:
    """ln(x[t] / x[t-lag])."""
    m = x.size
    out = np.full(m, np.nan)
    for i in range(lag, m):
        out[i] = math.log(x[i] / x[i - lag])
    return out


@_kernel
def stoch_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, fastk: int, slowk: int,
             slowd: int) -> tuple[np.ndarray, np.ndarray]:
    """Slow stochastic %K and %D with SMA smoothing (TA-Lib STOCH, both outputs start together)."""
    m = close.size
    k, d, _ = _stoch(high, low, close, fastk, slowk, slowd, False, np.empty(m), np.empty(m), np.empty(m))
    return k, d


@_kernel
def stoch_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, fastk: int, slowk: int, slowd: int,
                  raw: np.ndarray, k_out: np.ndarray,
                  d_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``stoch_1d`` into the given arrays (``raw`` is scratch) and the checksum of its inputs."""
    return _stoch(high, low, close, fastk, slowk, slowd, True, raw, k_out, d_out)


@_kernel
def _stoch(high: np.ndarray, low: np.ndarray, close: np.ndarray, fastk: int, slowk: int, slowd: int,
           check: bool, raw: np.ndarray, k_out: np.ndarray,
           d_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The stochastic in three arrays: the rolling high becomes the raw %K in place, the rolling low (no
    longer needed) becomes %K. The smoothing windows are short, so each mean is summed afresh (no drift).
    """
    m = close.size
    first = fastk - 1 + slowk - 1 + slowd - 1
    _, _, total = _rolling_extreme(high, fastk, True, False, check, raw)
    _, _, total_low = _rolling_extreme(low, fastk, False, False, check, k_out)
    total += total_low
    _nan_fill(d_out, first)
    if m <= first:
        return _nan_fill(k_out, m), d_out, np.nan
    if check:
        total += _sum_from(close, 0, fastk - 1, 0.0)
    for i in range(fastk - 1, m):
        ll = k_out[i]
        c = close[i]
        if check:
            total += c
        diff = (raw[i] - ll) / 100.0
        raw[i] = (c - ll) / diff if diff != 0.0 else 0.0
    for i in range(fastk - 1 + slowk - 1, m):
        k_out[i] = _sum_from(raw, i - slowk + 1, i + 1, 0.0) / slowk
    for i in range(first, m):
        d_out[i] = _sum_from(k_out, i - slowd + 1, i + 1, 0.0) / slowd
    for i in range(first):
        k_out[i] = np.nan
    return k_out, d_out, total


@_kernel
def willr_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Williams %R in [-100, 0] (TA-Lib WILLR; 0 on a flat window)."""
    return _willr(high, low, close, n, False, np.empty(close.size), np.empty(close.size))[0]


@_kernel
def willr_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray,
                  scratch: np.ndarray) -> tuple[np.ndarray, float]:
    """``willr_1d`` into ``out`` and the checksum of its inputs (a sum: finite only if every input is)."""
    return _willr(high, low, close, n, True, out, scratch)


@_kernel
def _willr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, check: bool, out: np.ndarray,
           ll: np.ndarray) -> tuple[np.ndarray, float]:
    m = close.size
    _, _, total = _rolling_extreme(high, n, True, False, check, out)  # the highest high, turned into %R
    _, _, total_low = _rolling_extreme(low, n, False, False, check, ll)
    total += total_low
    if check:
        total += _sum_from(close, 0, min(n - 1, m), 0.0)
    for i in range(n - 1, m):
        hh = out[i]
        c = close[i]
        if check:
            total += c
        diff = (hh - ll[i]) * -0.01
        out[i] = (hh - c) / diff if diff != 0.0 else 0.0
    return out, total


@_kernel
def cci_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Commodity Channel Index (TA-Lib CCI): (tp - SMA(tp)) / (0.015 * mean absolute deviation)."""
    m = close.size
    out = np.full(m, np.nan)
    tp = (high + low + close) / 3.0
    for i in range(n - 1, m):
        avg = _sum_from(tp, i - n + 1, i + 1, 0.0) / n
        dev = 0.0
        for j in range(i - n + 1, i + 1):
            dev += abs(tp[j] - avg)
        dev /= n
        num = tp[i] - avg
        out[i] = num / (0.015 * dev) if (num != 0.0 and dev != 0.0) else 0.0
    return out


@_kernel
def mfi_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """Money Flow Index over ``n`` rows (TA-Lib MFI); 50 where no money flowed at all.

    TA-Lib returns 0 whenever the window's money flow is below 1.0 (quote units); we return 50 only for
    an exactly empty window, which matters for thin markets and changes nothing on liquid ones.
    """
    return _mfi(high, low, close, volume, n, False, np.empty(close.size))[0]


@_kernel
def mfi_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int,
                out: np.ndarray) -> tuple[np.ndarray, float]:
    """``mfi_1d`` into ``out`` and the checksum of its inputs (a sum: finite only if every input is)."""
    return _mfi(high, low, close, volume, n, True, out)


@_kernel
def _mfi(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int, check: bool,
         out: np.ndarray) -> tuple[np.ndarray, float]:
    m = close.size
    _nan_fill(out, n)
    if m <= n:
        return out, np.nan
    total = ((high[0] + low[0]) + close[0]) + volume[0] if check else 0.0
    # The last n flows sit in two rings (slot = row % n): one pass, no full-length temporaries.
    pos_ring = np.zeros(n)
    neg_ring = np.zeros(n)
    sp = 0.0
    sn = 0.0
    # How many rows of the window flowed each way: a side with none is exactly 0, whatever residue the
    # running sum kept (on BTC 1m a flat hour after one down-tick left 3% of phantom inflow).
    n_pos = 0
    n_neg = 0
    prev_tp = (high[0] + low[0] + close[0]) / 3.0
    for i in range(1, m):
        tp3 = high[i] + low[i] + close[i]
        vol = volume[i]
        if check:
            total += tp3 + vol
        tp = tp3 / 3.0
        d = tp - prev_tp
        prev_tp = tp
        flow = tp * vol
        # (h+l+c)/3 of two identical-in-decimal candles can differ by an ulp; that is no change.
        moved = abs(d) > 1e-10 * abs(tp)
        p = flow if (moved and d > 0.0) else 0.0
        q = flow if (moved and d < 0.0) else 0.0
        slot = i % n
        if i > n:  # row i-n leaves the window; it sat in this slot
            sp += p - pos_ring[slot]
            sn += q - neg_ring[slot]
            n_pos -= 1 if pos_ring[slot] > 0.0 else 0
            n_neg -= 1 if neg_ring[slot] > 0.0 else 0
        else:
            sp += p
            sn += q
        pos_ring[slot] = p
        neg_ring[slot] = q
        n_pos += 1 if p > 0.0 else 0
        n_neg += 1 if q > 0.0 else 0
        if i < n:
            continue
        if i > n and (i - n) % _RESYNC == 0:
            sp = 0.0
            sn = 0.0
            for j in range(n):
                sp += pos_ring[j]
                sn += neg_ring[j]
        if sp < 0.0 or n_pos == 0:  # rounding residue of the running sums
            sp = 0.0
        if sn < 0.0 or n_neg == 0:
            sn = 0.0
        tot = sp + sn
        out[i] = 100.0 * (sp / tot) if tot > 0.0 else 50.0
    return out, total


@_kernel
def obv_1d(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """On-balance volume starting from the first row's volume (TA-Lib OBV)."""
    m = close.size
    out = np.empty(m)
    if m == 0:
        return out
    acc = volume[0]
    prev = close[0]
    out[0] = acc
    for i in range(1, m):
        if close[i] > prev:
            acc += volume[i]
        elif close[i] < prev:
            acc -= volume[i]
        out[i] = acc
        prev = close[i]
    return out


# ------------------------------------------------------------------------------------------- volatility
@_kernel
def _true_range(high: float, low: float, prev_close: float) -> float:
    """max(h-l, |h-c[t-1]|, |l-c[t-1]|) as two selects (TA-Lib TRANGE's order of comparisons)."""
    tr = high - low
    up = abs(high - prev_close)
    down = abs(low - prev_close)
    tr = up if up > tr else tr
    return down if down > tr else tr


@_kernel
def _directional_move(high: float, low: float, prev_high: float, prev_low: float) -> tuple[float, float]:
    """(+DM, -DM) of one bar as TA-Lib defines them: the larger move, if positive; the other is 0."""
    up = high - prev_high
    down = prev_low - low
    plus = up if (up > 0.0 and up > down) else 0.0
    minus = down if (down > 0.0 and up < down) else 0.0
    return plus, minus


@_kernel
def _true_range_into(high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray,
                     check: bool) -> tuple[np.ndarray, float]:
    """True range into ``out`` (NaN at row 0) over zero-based views (no wrap-around checks, so it
    vectorises); with ``check`` also the sum of every input (finite only if every input is)."""
    m = close.size
    total = 0.0
    if m == 0:
        return out, total
    out[0] = np.nan
    hs, ls, prev, dest = high[1:], low[1:], close[:m - 1], out[1:]
    if check:
        total = (high[0] + low[0]) + close[m - 1]  # the inputs no true range reads
        for i in range(dest.size):
            h, lo, p = hs[i], ls[i], prev[i]
            dest[i] = _true_range(h, lo, p)
            total += (h + lo) + p
    else:
        for i in range(dest.size):
            dest[i] = _true_range(hs[i], ls[i], prev[i])
    return out, total


@_kernel
def true_range_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(h-l, |h-c[t-1]|, |l-c[t-1]|); NaN at row 0 (TA-Lib TRANGE)."""
    return _true_range_into(high, low, close, np.empty(close.size), False)[0]


@_kernel
def true_range_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, float]:
    """``true_range_1d`` and the checksum of its inputs (a sum: finite only if every input is)."""
    return _true_range_into(high, low, close, np.empty(close.size), True)


@_kernel
def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, percent: bool,
         check: bool) -> tuple[np.ndarray, float]:
    """Wilder's ATR (the mean of the first ``n`` true ranges, then Wilder), or ``percent`` of close; ``n``
    = 0 gives the true range itself (NaN at row 0). With ``check``, also the sum of every input: a NaN or
    an infinity makes it non-finite, so the public wrappers check their inputs in this pass instead of
    reading them twice. The sum is an independent chain beside the Wilder recursion: free.
    """
    m = close.size
    out = _nan_head(m, max(n, 1))
    keep = (n - 1) / n if n > 0 else 0.0
    share = 1.0 / n if n > 0 else 1.0
    prev = 0.0
    total = 0.0
    if check and m > 0:
        total = (high[0] + low[0]) + close[m - 1]  # the inputs no true range reads
    for i in range(1, m):
        h = high[i]
        lo = low[i]
        yc = close[i - 1]
        if check:
            total += (h + lo) + yc
        tr = _true_range(h, lo, yc)
        if n == 0:
            out[i] = tr
            continue
        if i < n:
            prev += tr
            continue
        prev = (prev + tr) / n if i == n else prev * keep + tr * share
        if percent:
            c = close[i]
            out[i] = prev / c * 100.0 if c != 0.0 else 0.0
        else:
            out[i] = prev
    return out, total


@_kernel
def atr_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Wilder's average true range (TA-Lib ATR; first value at row ``n``)."""
    return _atr(high, low, close, n, False, False)[0]


@_kernel
def atr_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """``atr_1d`` and the checksum of its inputs (a sum: finite only if every input is)."""
    return _atr(high, low, close, n, False, True)


@_kernel
def natr_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """ATR(n) in percent of close (TA-Lib NATR; 0 where close is 0), in the same pass."""
    return _atr(high, low, close, n, True, False)[0]


@_kernel
def natr_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """``natr_1d`` and the checksum of its inputs (a sum: finite only if every input is)."""
    return _atr(high, low, close, n, True, True)


@_kernel
def adx_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, pdi: np.ndarray, mdi: np.ndarray,
           adx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """+DI, -DI and ADX written into the given arrays (see ``adx_checked``)."""
    r = adx_checked(high, low, close, n, pdi, mdi, adx, False)
    return r[0], r[1], r[2]


@_kernel
def adx_checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, pdi: np.ndarray,
                mdi: np.ndarray, adx: np.ndarray,
                check: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """+DI, -DI (first at row ``n``) and ADX (first at row ``2n-1``), TA-Lib's Wilder smoothing, written
    into the given arrays, and (``check``) the sum of the inputs: finite only if every input is.

    The directional movements and true ranges of rows ``1..n-1`` are summed; from row ``n`` on each sum
    decays by ``(n-1)/n`` before the new value is added. ADX is seeded with the mean DX of rows
    ``n..2n-1`` and then smoothed the same way. An empty output array is neither computed nor written
    (``ind.plus_di`` asks for +DI alone, ``ind.adx`` for the ADX alone).
    """
    m = close.size
    with_adx = adx.size > 0
    with_pdi = pdi.size > 0  # an empty output array is not computed
    with_mdi = mdi.size > 0
    for i in range(min(2 * n - 1 if with_adx else n, m)):
        if i < n and with_pdi:
            pdi[i] = np.nan
        if i < n and with_mdi:
            mdi[i] = np.nan
        if with_adx:
            adx[i] = np.nan
    keep = (n - 1) / n
    share = 1.0 / n
    pdm = 0.0
    mdm = 0.0
    trs = 0.0
    sum_dx = 0.0
    prev_adx = 0.0
    total = (high[0] + low[0]) + close[m - 1] if (check and m > 0) else 0.0
    for i in range(1, m):
        if check:
            total += (high[i] + low[i]) + close[i - 1]
        plus, minus = _directional_move(high[i], low[i], high[i - 1], low[i - 1])
        tr = _true_range(high[i], low[i], close[i - 1])
        if i < n:
            pdm += plus
            mdm += minus
            trs += tr
            continue
        pdm = pdm * keep + plus
        mdm = mdm * keep + minus
        trs = trs * keep + tr
        dx_ok = False
        dx = 0.0
        if not _ta_is_zero(trs):
            scale = 100.0 / trs  # one division for both DIs (TA-Lib divides twice; same to ~1e-16)
            p = pdm * scale
            q = mdm * scale
            if with_pdi:
                pdi[i] = p
            if with_mdi:
                mdi[i] = q
            tot = p + q
            if with_adx and not _ta_is_zero(tot):
                dx = 100.0 * (abs(q - p) / tot)
                dx_ok = True
        else:
            if with_pdi:
                pdi[i] = 0.0
            if with_mdi:
                mdi[i] = 0.0
        if not with_adx:
            continue
        if i < 2 * n:
            if dx_ok:
                sum_dx += dx
            if i == 2 * n - 1:
                prev_adx = sum_dx / n
                adx[i] = prev_adx
        else:
            if dx_ok:
                prev_adx = prev_adx * keep + dx * share
            adx[i] = prev_adx
    return pdi, mdi, adx, total


@_kernel
def _root_mean(term: np.ndarray, n: int, scale: float) -> np.ndarray:
    """sqrt(scale * SMA(term, n)), 0 where rounding made the mean negative; the term becomes the output."""
    mean = sma_1d(term, n)
    for i in range(term.size):
        v = mean[i] * scale
        term[i] = math.sqrt(v) if v > 0.0 else (0.0 if i >= n - 1 else np.nan)
    return term


@_kernel
def parkinson_1d(high: np.ndarray, low: np.ndarray, n: int) -> np.ndarray:
    """Parkinson volatility per bar: sqrt(mean(ln(H/L)^2) / (4 ln 2)) over ``n`` rows."""
    hl = np.empty(high.size)
    for i in range(high.size):
        r = math.log(high[i] / low[i])
        hl[i] = r * r
    return _root_mean(hl, n, 1.0 / (4.0 * math.log(2.0)))


@_kernel
def garman_klass_1d(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                    n: int) -> np.ndarray:
    """Garman-Klass volatility per bar: sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2)), floored at 0."""
    term = np.empty(close.size)
    c = 2.0 * math.log(2.0) - 1.0
    for i in range(close.size):
        hl = math.log(high[i] / low[i])
        co = math.log(close[i] / open_[i])
        term[i] = 0.5 * hl * hl - c * co * co
    return _root_mean(term, n, 1.0)


@_kernel
def vwap_1d(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """Rolling VWAP of the typical price over ``n`` rows; the plain mean typical price if no volume."""
    m = close.size
    tp = (high + low + close) / 3.0
    pv = tp * volume
    spv = sma_1d(pv, n)
    sv = sma_1d(volume, n)
    stp = sma_1d(tp, n)
    out = np.full(m, np.nan)
    for i in range(n - 1, m):
        out[i] = spv[i] / sv[i] if sv[i] > 0.0 else stp[i]
    return out


# ------------------------------------------------------------------------------------------------- gaps
@_kernel
def gap_flags_1d(ts: np.ndarray, step: int, window: int) -> np.ndarray:
    """True at row t when rows ``t-window+1 .. t`` are not all consecutive candles (a gap inside)."""
    m = ts.size
    out = np.zeros(m, dtype=np.bool_)
    last_gap = -1  # index j of the latest row whose predecessor is missing (ts[j] - ts[j-1] > step)
    for i in range(1, m):
        if ts[i] - ts[i - 1] != step:
            last_gap = i
        if last_gap >= 0 and last_gap >= i - window + 2:
            out[i] = True
    return out


# ------------------------------------------------------------------------- element-wise feature helpers
# These write the feature set's final columns into ``out`` arrays that the caller allocates with numpy:
# numpy asks the kernel for huge pages on large arrays, so a fresh 8 MB column costs a few page faults
# instead of 2,048 (first-touch faults were half the time of the default set on 1M bars).
@_kernel
def ratio_1d(num: np.ndarray, den: np.ndarray, when_zero: float, out: np.ndarray) -> np.ndarray:
    """num / den, ``when_zero`` where den is 0 (NaN stays NaN)."""
    for i in range(num.size):
        a = num[i]
        b = den[i]
        if math.isnan(a) or math.isnan(b):
            out[i] = np.nan
        elif b == 0.0:
            out[i] = when_zero
        else:
            out[i] = a / b
    return out


@_kernel
def dist_1d(close: np.ndarray, level: np.ndarray, out: np.ndarray) -> np.ndarray:
    """close / level - 1."""
    for i in range(close.size):
        out[i] = close[i] / level[i] - 1.0
    return out


@_kernel
def candle_1d(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
              out: np.ndarray) -> np.ndarray:
    """Columns of ``out`` (m x 5): body/range, upper wick/range, lower wick/range (0 on a flat candle),
    range/close, open/previous close - 1."""
    for i in range(close.size):
        o = open_[i]
        c = close[i]
        rng = high[i] - low[i]
        top = o if o > c else c
        bottom = o if o < c else c
        if rng > 0.0:
            out[i, 0] = (c - o) / rng
            out[i, 1] = (high[i] - top) / rng
            out[i, 2] = (bottom - low[i]) / rng
        else:
            out[i, 0] = 0.0
            out[i, 1] = 0.0
            out[i, 2] = 0.0
        out[i, 3] = rng / c
        out[i, 4] = o / close[i - 1] - 1.0 if i > 0 else np.nan
    return out


@_kernel
def fib_level_dist_1d(hh: np.ndarray, ll: np.ndarray, direction: np.ndarray, close: np.ndarray, ratio: float,
                      extension: bool, out: np.ndarray) -> np.ndarray:
    """(close - level) / close for one Fibonacci ratio of the swing (see ``swing_1d``).

    Up-swing: a retracement level is ``H - r(H-L)``, an extension ``L + e(H-L)``; down-swing mirrored.
    """
    for i in range(close.size):
        span = hh[i] - ll[i]
        up = direction[i] > 0
        if extension:
            level = ll[i] + ratio * span if up else hh[i] - ratio * span
        else:
            level = hh[i] - ratio * span if up else ll[i] + ratio * span
        out[i] = (close[i] - level) / close[i]
    return out


_DAY_MS = 86_400_000
_MINUTE_MS = 60_000


@_kernel
def calendar_1d(ts: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Columns of ``out`` (m x 4): sin/cos of the time of day and of the weekday (Monday = 0), UTC.

    Candles open on whole minutes, so the sines and cosines come from a table of the 1,440 minutes of a
    day and the 7 weekdays, built with the same formula (identical values, no trigonometry per row); a
    timestamp off the minute is computed directly.
    """
    two_pi = 2.0 * math.pi
    day_sin = np.empty(1440)
    day_cos = np.empty(1440)
    for k in range(1440):
        a = two_pi * ((k * _MINUTE_MS) / float(_DAY_MS))
        day_sin[k] = math.sin(a)
        day_cos[k] = math.cos(a)
    week_sin = np.empty(7)
    week_cos = np.empty(7)
    for k in range(7):
        b = two_pi * (k / 7.0)
        week_sin[k] = math.sin(b)
        week_cos[k] = math.cos(b)
    for i in range(ts.size):
        ms_of_day = ts[i] % _DAY_MS
        weekday = (ts[i] // _DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
        if ms_of_day % _MINUTE_MS == 0:
            k = ms_of_day // _MINUTE_MS
            out[i, 0] = day_sin[k]
            out[i, 1] = day_cos[k]
        else:
            a = two_pi * (ms_of_day / float(_DAY_MS))
            out[i, 0] = math.sin(a)
            out[i, 1] = math.cos(a)
        out[i, 2] = week_sin[weekday]
        out[i, 3] = week_cos[weekday]
    return out


@_kernel
def log_1d(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = math.log(x[i])
    return out


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})
def diff_checked(x: np.ndarray, lag: int, out: np.ndarray) -> tuple[np.ndarray, float]:
    """``diff_1d`` and the checksum of its input. ``reassoc`` lets the checksum (a sum whose finiteness
    is all that matters) be vectorised; the differences themselves are single operations, unaffected."""
    n = x.size
    head = min(lag, n)
    total = 0.0
    for i in range(head):
        out[i] = np.nan
        total += x[i]
    later, earlier, dest = x[head:], x[:n - head], out[head:]
    for i in range(later.size):
        xi = later[i]
        dest[i] = xi - earlier[i]
        total += xi
    return out, total


@_kernel
def diff_1d(x: np.ndarray, lag: int, out: np.ndarray) -> np.ndarray:
    """x[t] - x[t-lag] (NaN for the first ``lag`` rows).

    The loop runs over zero-based views: indexing ``x[i - lag]`` makes numba check every index for a
    negative wrap-around, which blocks vectorisation (2.6x slower on 1M rows).
    """
    n = x.size
    head = min(lag, n)
    for i in range(head):
        out[i] = np.nan
    later, earlier, dest = x[head:], x[:n - head], out[head:]
    for i in range(later.size):
        dest[i] = later[i] - earlier[i]
    return out
