"""Public indicator functions: validate, call the numba kernel, give back the caller's kind of object.

Every function accepts a numpy float array or a pandas ``Series`` and returns the same kind (a Series
keeps its index; its name becomes e.g. ``sma_20``). Single-input indicators also accept a 2-D array or
a ``DataFrame`` whose columns are independent series (symbols x parameter sets) and return the same
shape, so a sweep is one call.

Validation, with messages naming the input and the row:

* a *leading* run of NaN is accepted as the warm-up of an upstream indicator (``ema(rsi(close), 5)``
  works) and the output starts after it; any other NaN or an infinity raises :class:`DataError`;
* fewer rows than the indicator's warm-up plus one raises :class:`InsufficientData`;
* a period that is not a positive integer raises :class:`ConfigError`.

Outputs are NaN during the warm-up. Where TA-Lib has the same indicator the values agree with it (see
``docs/features.md`` for the few deliberate differences).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar, Union

import numpy as np
import pandas as pd

from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.features import _kernels as K

__all__ = [
    "Bands",
    "adx",
    "atr",
    "bollinger",
    "bollinger_pctb",
    "bollinger_width",
    "cci",
    "close_to_close_vol",
    "ema",
    "garman_klass_vol",
    "log_return",
    "lookback",
    "macd",
    "mfi",
    "minus_di",
    "momentum",
    "natr",
    "obv",
    "parkinson_vol",
    "plus_di",
    "roc",
    "rolling_kurt",
    "rolling_max",
    "rolling_mean",
    "rolling_min",
    "rolling_skew",
    "rolling_std",
    "rsi",
    "sma",
    "stochastic",
    "true_range",
    "vwap",
    "williams_r",
    "wma",
    "zscore",
]

Arr = TypeVar("Arr", np.ndarray, pd.Series)
ArrLike = Union[np.ndarray, pd.Series, pd.DataFrame, Sequence[float]]


# ------------------------------------------------------------------------------------------- plumbing
def _check_period(fn: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _label(x: object, i: int) -> str:
    if isinstance(x, pd.Series):
        return f"row {i} ({x.index[i]})"
    return f"row {i}"


def _input_name(x: object, default: str) -> str:
    if isinstance(x, pd.Series) and x.name is not None:
        return str(x.name)
    return default


def _to_1d(fn: str, x: object, arg: str) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        raise DataError(f"{fn}: input '{arg}' must be one series, got a DataFrame")
    arr = x.to_numpy(dtype="float64", na_value=np.nan) if isinstance(x, pd.Series) else np.asarray(x, dtype="float64")
    if arr.ndim != 1:
        raise DataError(f"{fn}: input '{arg}' must be 1-D, got shape {arr.shape}")
    return arr


def _valid_start(fn: str, x: object, arr: np.ndarray, arg: str) -> int:
    """Index of the first finite value; raise if anything non-finite follows it or is infinite."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(arr) if arr.size else 0.0
    if np.isfinite(total):
        # A finite sum proves every value finite (a NaN or an infinity makes the sum non-finite); one
        # pass without a temporary mask, the common case. An overflowing sum takes the slow path.
        return 0
    finite = np.isfinite(arr)
    if finite.all():
        return 0
    bad_inf = np.flatnonzero(np.isinf(arr))
    if bad_inf.size:
        i = int(bad_inf[0])
        raise DataError(f"{fn}: infinite value in '{_input_name(x, arg)}' at {_label(x, i)}")
    first = int(np.argmax(finite)) if finite.any() else arr.size
    holes = np.flatnonzero(~finite[first:])
    if holes.size:
        i = first + int(holes[0])
        raise DataError(
            f"{fn}: NaN in '{_input_name(x, arg)}' at {_label(x, i)} after valid data began at row {first}; "
            "only a leading warm-up run of NaN is allowed"
        )
    return first


def _run(fn: str, inputs: Sequence[tuple[str, object]], lookback: int,
         kernel: Callable[..., object], *params: object,
         checked: Callable[..., tuple] | None = None) -> tuple[list[np.ndarray], object]:
    """Validate 1-D inputs, run ``kernel(*arrays[start:], *params)``, pad outputs back to full length.

    ``checked`` is the same kernel summing its inputs in its own pass (it returns the outputs and that
    sum): a finite sum proves every input finite, and the separate check, a second read of every input,
    is skipped. Otherwise the usual path runs, which raises naming the row, starts after a leading NaN
    run, or (an overflowing sum of finite values) simply computes again.
    """
    arrays = [_to_1d(fn, x, arg) for arg, x in inputs]
    size = arrays[0].size
    for (arg, _), a in zip(inputs, arrays):
        if a.size != size:
            raise DataError(f"{fn}: input '{arg}' has {a.size} rows but '{inputs[0][0]}' has {size}")
    if checked is not None and size >= lookback + 1:
        *outs, total = checked(*(np.ascontiguousarray(a) for a in arrays), *params)
        if math.isfinite(total):
            return list(outs), inputs[0][1]
    start = max(_valid_start(fn, x, a, arg) for (arg, x), a in zip(inputs, arrays))
    need = lookback + 1
    if size - start < need:
        raise InsufficientData(
            f"{fn}: needs at least {need} valid rows of '{_input_name(inputs[0][1], inputs[0][0])}' "
            f"for its warm-up, got {size - start}"
        )
    result = kernel(*(np.ascontiguousarray(a[start:]) for a in arrays), *params)
    outs = list(result) if isinstance(result, tuple) else [result]
    if start:
        padded = []
        for o in outs:
            full = np.full(size, np.nan)
            full[start:] = o
            padded.append(full)
        outs = padded
    return outs, inputs[0][1]


def _wrap(values: np.ndarray, like: object, name: str) -> np.ndarray | pd.Series:
    if isinstance(like, pd.Series):
        return pd.Series(values, index=like.index, name=name)
    return values


def _unary(fn: str, x: ArrLike, lookback: int, kernel: Callable[..., object], *params: object,
           names: Sequence[str] | None = None,
           checked: Callable[..., tuple] | None = None):  # noqa: ANN202 - same kind as x (or a tuple)
    """Single-input indicator with 2-D support (columns are independent series)."""
    names = list(names or [fn])
    if isinstance(x, pd.DataFrame):
        per_col = [_unary(fn, x[c], lookback, kernel, *params, names=names, checked=checked)
                   for c in x.columns]
        if len(names) == 1:
            return pd.DataFrame({c: s.to_numpy() for c, s in zip(x.columns, per_col)}, index=x.index)
        return tuple(
            pd.DataFrame({c: outs[k].to_numpy() for c, outs in zip(x.columns, per_col)}, index=x.index)
            for k in range(len(names))
        )
    if isinstance(x, np.ndarray) and x.ndim == 2:
        per_col = [_unary(fn, x[:, j], lookback, kernel, *params, names=names, checked=checked)
                   for j in range(x.shape[1])]
        if len(names) == 1:
            return np.column_stack(per_col) if per_col else np.empty_like(x, dtype="float64")
        return tuple(np.column_stack([outs[k] for outs in per_col]) for k in range(len(names)))
    outs, like = _run(fn, [("x", x)], lookback, kernel, *params, checked=checked)
    wrapped = [_wrap(o, like, nm) for o, nm in zip(outs, names)]
    return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)


def _multi(fn: str, inputs: Sequence[tuple[str, object]], lookback: int, kernel: Callable[..., object],
           *params: object, names: Sequence[str] | None = None,
           checked: Callable[..., tuple] | None = None):  # noqa: ANN202
    names = list(names or [fn])
    outs, like = _run(fn, inputs, lookback, kernel, *params, checked=checked)
    wrapped = [_wrap(o, like, nm) for o, nm in zip(outs, names)]
    return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)


# ------------------------------------------------------------------------------------------- averages
def sma(x: ArrLike, n: int) -> Arr:
    """Simple moving average over ``n`` rows (TA-Lib SMA)."""
    n = _check_period("sma", "n", n)
    return _unary("sma", x, n - 1, K.sma_1d, n, names=[f"sma_{n}"],
                  checked=lambda a, p: K.sma_checked(a, p, np.empty(a.size)))


rolling_mean = sma


def ema(x: ArrLike, n: int) -> Arr:
    """Exponential moving average, alpha = 2/(n+1), seeded by the SMA of the first ``n`` rows (TA-Lib EMA)."""
    n = _check_period("ema", "n", n)
    return _unary("ema", x, n - 1, K.ema_1d, n, names=[f"ema_{n}"],
                  checked=lambda a, p: K.ema_checked(a, p, np.empty(a.size)))


def wma(x: ArrLike, n: int) -> Arr:
    """Linearly weighted moving average, weights 1..n with the newest heaviest (TA-Lib WMA)."""
    n = _check_period("wma", "n", n)
    return _unary("wma", x, n - 1, K.wma_1d, n, names=[f"wma_{n}"],
                  checked=lambda a, p: K.wma_checked(a, p, np.empty(a.size)))


# ---------------------------------------------------------------------------------------------- rolling
def rolling_std(x: ArrLike, n: int, *, ddof: int = 0) -> Arr:
    """Rolling standard deviation; ``ddof=0`` is TA-Lib STDDEV's population form, 1 the sample form."""
    n = _check_period("rolling_std", "n", n, minimum=1 + ddof)
    return _unary("rolling_std", x, n - 1, K.rolling_std_1d, n, ddof, names=[f"std_{n}"],
                  checked=K.rolling_std_checked)


def rolling_max(x: ArrLike, n: int) -> Arr:
    """Highest value over the last ``n`` rows (TA-Lib MAX)."""
    n = _check_period("rolling_max", "n", n)
    return _unary("rolling_max", x, n - 1, K.rolling_max_1d, n, names=[f"max_{n}"],
                  checked=lambda a, p: K.rolling_max_checked(a, p, np.empty(a.size)))


def rolling_min(x: ArrLike, n: int) -> Arr:
    """Lowest value over the last ``n`` rows (TA-Lib MIN)."""
    n = _check_period("rolling_min", "n", n)
    return _unary("rolling_min", x, n - 1, K.rolling_min_1d, n, names=[f"min_{n}"],
                  checked=lambda a, p: K.rolling_min_checked(a, p, np.empty(a.size)))


def zscore(x: ArrLike, n: int) -> Arr:
    """(x - rolling mean) / rolling population std over ``n`` rows; 0 where the window is flat."""
    n = _check_period("zscore", "n", n, minimum=2)
    return _unary("zscore", x, n - 1, K.zscore_1d, n, names=[f"zscore_{n}"])


def rolling_skew(x: ArrLike, n: int) -> Arr:
    """Rolling bias-corrected skewness (pandas ``rolling(n).skew()``); 0 on flat windows."""
    n = _check_period("rolling_skew", "n", n, minimum=3)
    return _unary("rolling_skew", x, n - 1, lambda a, p: K.rolling_skew_kurt_1d(a, p)[0], n,
                  names=[f"skew_{n}"])


def rolling_kurt(x: ArrLike, n: int) -> Arr:
    """Rolling bias-corrected excess kurtosis (pandas ``rolling(n).kurt()``); 0 on flat windows."""
    n = _check_period("rolling_kurt", "n", n, minimum=4)
    return _unary("rolling_kurt", x, n - 1, lambda a, p: K.rolling_skew_kurt_1d(a, p)[1], n,
                  names=[f"kurt_{n}"])


# --------------------------------------------------------------------------------------------- momentum
def rsi(close: ArrLike, n: int = 14) -> Arr:
    """Wilder's relative strength index in [0, 100] (TA-Lib RSI; first value at row ``n``)."""
    n = _check_period("rsi", "n", n)
    return _unary("rsi", close, n, K.rsi_1d, n, names=[f"rsi_{n}"],
                  checked=lambda a, p: K.rsi_checked(a, p, np.empty(a.size)))


def macd(close: ArrLike, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Arr, Arr, Arr]:
    """(macd, signal, histogram) as TA-Lib MACD: all three start at row ``slow + signal - 2``."""
    fast = _check_period("macd", "fast", fast, minimum=2)
    slow = _check_period("macd", "slow", slow, minimum=2)
    signal = _check_period("macd", "signal", signal)
    lb = max(fast, slow) + signal - 2
    return _unary("macd", close, lb, _macd_kernel, fast, slow, signal,
                  names=["macd", "macd_signal", "macd_hist"])


def _macd_kernel(a: np.ndarray, fast: int, slow: int,
                 signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return K.macd_1d(a, fast, slow, signal, np.empty(a.size), np.empty(a.size), np.empty(a.size))


def _adx_part(which: int) -> tuple[Callable[..., np.ndarray], Callable[..., tuple]]:
    """(kernel, checked kernel) computing only output ``which`` of +DI, -DI, ADX (0, 1, 2).

    The output comes from numpy (huge pages: a fresh array from the kernel faults 4 KiB at a time); the
    other two are empty arrays, which the kernel neither computes nor writes.
    """

    def checked(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> tuple[np.ndarray, float]:
        outs = [np.empty(c.size if k == which else 0) for k in range(3)]
        r = K.adx_checked(h, lo, c, n, outs[0], outs[1], outs[2], True)
        return r[which], r[3]

    return (lambda h, lo, c, n: checked(h, lo, c, n)[0]), checked


def roc(x: ArrLike, n: int = 10) -> Arr:
    """Rate of change in percent over ``n`` rows (TA-Lib ROC)."""
    n = _check_period("roc", "n", n)
    return _unary("roc", x, n, K.roc_1d, n, names=[f"roc_{n}"], checked=K.roc_checked)


def momentum(x: ArrLike, n: int = 10) -> Arr:
    """x[t] - x[t-n] (TA-Lib MOM)."""
    n = _check_period("momentum", "n", n)

    return _unary("momentum", x, n, lambda a, p: K.diff_1d(a, p, np.empty(a.size)), n, names=[f"mom_{n}"],
                  checked=lambda a, p: K.diff_checked(a, p, np.empty(a.size)))


def log_return(x: ArrLike, lag: int = 1) -> Arr:
    """ln(x[t] / x[t-lag])."""
    lag = _check_period("log_return", "lag", lag)
    return _unary("log_return", x, lag, K.log_return_1d, lag, names=[f"logret_{lag}"])


def stochastic(high: ArrLike, low: ArrLike, close: ArrLike, fastk: int = 14, slowk: int = 3,
               slowd: int = 3) -> tuple[Arr, Arr]:
    """Slow stochastic (%K, %D) with SMA smoothing (TA-Lib STOCH; both start at row fastk+slowk+slowd-3)."""
    fastk = _check_period("stochastic", "fastk", fastk)
    slowk = _check_period("stochastic", "slowk", slowk)
    slowd = _check_period("stochastic", "slowd", slowd)
    return _multi("stochastic", [("high", high), ("low", low), ("close", close)], fastk + slowk + slowd - 3,
                  K.stoch_1d, fastk, slowk, slowd, names=["stoch_k", "stoch_d"], checked=_stoch_checked)


def _stoch_checked(h: np.ndarray, lo: np.ndarray, c: np.ndarray, fastk: int, slowk: int,
                   slowd: int) -> tuple[np.ndarray, np.ndarray, float]:
    m = c.size
    return K.stoch_checked(h, lo, c, fastk, slowk, slowd, np.empty(m), np.empty(m), np.empty(m))


def williams_r(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 14) -> Arr:
    """Williams %R in [-100, 0] (TA-Lib WILLR)."""
    n = _check_period("williams_r", "n", n)
    return _multi("williams_r", [("high", high), ("low", low), ("close", close)], n - 1, K.willr_1d, n,
                  names=[f"willr_{n}"],
                  checked=lambda h, lo, c, p: K.willr_checked(h, lo, c, p, np.empty(c.size),
                                                              np.empty(c.size)))


def cci(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 20) -> Arr:
    """Commodity Channel Index (TA-Lib CCI)."""
    n = _check_period("cci", "n", n, minimum=2)
    return _multi("cci", [("high", high), ("low", low), ("close", close)], n - 1, K.cci_1d, n,
                  names=[f"cci_{n}"])


def mfi(high: ArrLike, low: ArrLike, close: ArrLike, volume: ArrLike, n: int = 14) -> Arr:
    """Money Flow Index in [0, 100] (TA-Lib MFI; 50 when the window had no money flow at all)."""
    n = _check_period("mfi", "n", n)
    return _multi("mfi", [("high", high), ("low", low), ("close", close), ("volume", volume)], n, K.mfi_1d, n,
                  names=[f"mfi_{n}"],
                  checked=lambda h, lo, c, v, p: K.mfi_checked(h, lo, c, v, p, np.empty(c.size)))


def obv(close: ArrLike, volume: ArrLike) -> Arr:
    """On-balance volume, starting from the first row's volume (TA-Lib OBV)."""
    return _multi("obv", [("close", close), ("volume", volume)], 0, K.obv_1d, names=["obv"])


# ------------------------------------------------------------------------------------------- volatility
def true_range(high: ArrLike, low: ArrLike, close: ArrLike) -> Arr:
    """max(high-low, |high-prev close|, |low-prev close|); NaN at row 0 (TA-Lib TRANGE)."""
    return _multi("true_range", [("high", high), ("low", low), ("close", close)], 1, K.true_range_1d,
                  names=["true_range"], checked=K.true_range_checked)


def atr(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 14) -> Arr:
    """Wilder's average true range (TA-Lib ATR; first value at row ``n``)."""
    n = _check_period("atr", "n", n)
    return _multi("atr", [("high", high), ("low", low), ("close", close)], n, K.atr_1d, n, names=[f"atr_{n}"],
                  checked=K.atr_checked)


def natr(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 14) -> Arr:
    """ATR as a percentage of close (TA-Lib NATR)."""
    n = _check_period("natr", "n", n)

    return _multi("natr", [("high", high), ("low", low), ("close", close)], n, K.natr_1d, n,
                  names=[f"natr_{n}"], checked=K.natr_checked)


class Bands(NamedTuple):
    """Bollinger bands in TA-Lib's order (BBANDS returns upper, middle, lower); read them by name."""

    upper: Any
    middle: Any
    lower: Any


def bollinger(close: ArrLike, n: int = 20, k: float = 2.0) -> Bands:
    """Bollinger bands ``Bands(upper, middle, lower)`` (TA-Lib's order): SMA +/- k population std
    (TA-Lib BBANDS with SMA). The one definition: the strategies use it too."""
    n = _check_period("bollinger", "n", n)
    k = float(k)

    def kernel(a: np.ndarray, p: int, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mid, upper, lower = K.bollinger_1d(a, p, width, np.empty(a.size), np.empty(a.size), np.empty(a.size))
        return upper, mid, lower

    return Bands(*_unary("bollinger", close, n - 1, kernel, n, k, names=["bb_upper", "bb_mid", "bb_lower"]))


def bollinger_pctb(close: ArrLike, n: int = 20, k: float = 2.0) -> Arr:
    """%B = (close - lower) / (upper - lower); 0.5 where the bands collapse (flat window)."""
    n = _check_period("bollinger_pctb", "n", n)

    def kernel(a: np.ndarray, p: int, width: float) -> np.ndarray:
        mid, var = K.rolling_mean_var_1d(a, p)
        dev = np.sqrt(var) * width
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dev > 0, (a - (mid - dev)) / (2 * dev), np.where(np.isnan(dev), np.nan, 0.5))

    return _unary("bollinger_pctb", close, n - 1, kernel, n, float(k), names=[f"bb_pctb_{n}"])


def bollinger_width(close: ArrLike, n: int = 20, k: float = 2.0) -> Arr:
    """Band width relative to the middle band: (upper - lower) / middle."""
    n = _check_period("bollinger_width", "n", n)

    def kernel(a: np.ndarray, p: int, width: float) -> np.ndarray:
        mid, var = K.rolling_mean_var_1d(a, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * width * np.sqrt(var) / mid

    return _unary("bollinger_width", close, n - 1, kernel, n, float(k), names=[f"bb_width_{n}"])


def adx(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 14) -> Arr:
    """Average directional index (TA-Lib ADX; first value at row ``2n-1``)."""
    n = _check_period("adx", "n", n, minimum=2)
    kernel, checked = _adx_part(2)
    return _multi("adx", [("high", high), ("low", low), ("close", close)], 2 * n - 1, kernel, n,
                  names=[f"adx_{n}"], checked=checked)


def plus_di(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 14) -> Arr:
    """+DI (TA-Lib PLUS_DI; first value at row ``n``)."""
    n = _check_period("plus_di", "n", n, minimum=2)
    kernel, checked = _adx_part(0)
    return _multi("plus_di", [("high", high), ("low", low), ("close", close)], n, kernel, n,
                  names=[f"plus_di_{n}"], checked=checked)


def minus_di(high: ArrLike, low: ArrLike, close: ArrLike, n: int = 14) -> Arr:
    """-DI (TA-Lib MINUS_DI; first value at row ``n``)."""
    n = _check_period("minus_di", "n", n, minimum=2)
    kernel, checked = _adx_part(1)
    return _multi("minus_di", [("high", high), ("low", low), ("close", close)], n, kernel, n,
                  names=[f"minus_di_{n}"], checked=checked)


def vwap(high: ArrLike, low: ArrLike, close: ArrLike, volume: ArrLike, n: int = 20) -> Arr:
    """Rolling VWAP of the typical price (h+l+c)/3 over ``n`` rows."""
    n = _check_period("vwap", "n", n)
    return _multi("vwap", [("high", high), ("low", low), ("close", close), ("volume", volume)], n - 1,
                  K.vwap_1d, n, names=[f"vwap_{n}"])


def parkinson_vol(high: ArrLike, low: ArrLike, n: int = 20) -> Arr:
    """Parkinson high-low volatility per bar (not annualised)."""
    n = _check_period("parkinson_vol", "n", n)
    return _multi("parkinson_vol", [("high", high), ("low", low)], n - 1, K.parkinson_1d, n,
                  names=[f"vol_parkinson_{n}"])


def garman_klass_vol(open_: ArrLike, high: ArrLike, low: ArrLike, close: ArrLike, n: int = 20) -> Arr:
    """Garman-Klass OHLC volatility per bar (not annualised)."""
    n = _check_period("garman_klass_vol", "n", n)
    return _multi("garman_klass_vol", [("open", open_), ("high", high), ("low", low), ("close", close)], n - 1,
                  K.garman_klass_1d, n, names=[f"vol_gk_{n}"])


def close_to_close_vol(close: ArrLike, n: int = 20) -> Arr:
    """Sample std (ddof=1) of 1-bar log returns over ``n`` returns (needs ``n+1`` closes)."""
    n = _check_period("close_to_close_vol", "n", n, minimum=2)

    def kernel(a: np.ndarray, p: int) -> np.ndarray:
        r = K.log_return_1d(a, 1)
        out = np.full(a.size, np.nan)
        out[1:] = K.rolling_std_1d(r[1:], p, 1)
        return out

    return _unary("close_to_close_vol", close, n, kernel, n, names=[f"vol_cc_{n}"])


def lookback(fn: str, **params: int) -> int:
    """Rows of warm-up an indicator needs before its first value (the first value is at this row)."""
    def window(n: int) -> int:  # the first full window of n rows ends at row n-1
        return n - 1

    table: dict[str, Callable[..., int]] = {
        "sma": window, "rolling_mean": window, "ema": window, "wma": window, "rolling_std": window,
        "rolling_max": window, "rolling_min": window, "zscore": window, "rolling_skew": window,
        "rolling_kurt": window, "rsi": lambda n=14: n,
        "macd": lambda fast=12, slow=26, signal=9: max(fast, slow) + signal - 2, "true_range": lambda: 1,
        "atr": lambda n=14: n, "natr": lambda n=14: n, "bollinger": lambda n=20, k=2.0: n - 1,
        "bollinger_pctb": lambda n=20, k=2.0: n - 1, "bollinger_width": lambda n=20, k=2.0: n - 1,
        "adx": lambda n=14: 2 * n - 1, "plus_di": lambda n=14: n, "minus_di": lambda n=14: n,
        "stochastic": lambda fastk=14, slowk=3, slowd=3: fastk + slowk + slowd - 3,
        "williams_r": lambda n=14: n - 1, "cci": lambda n=20: n - 1, "mfi": lambda n=14: n, "obv": lambda: 0,
        "roc": lambda n=10: n, "momentum": lambda n=10: n, "log_return": lambda lag=1: lag,
        "vwap": lambda n=20: n - 1, "parkinson_vol": lambda n=20: n - 1, "garman_klass_vol": lambda n=20: n - 1,
        "close_to_close_vol": lambda n=20: n,
    }
    if fn not in table:
        raise ConfigError(f"lookback: unknown indicator {fn!r}; known: {sorted(table)}")
    return table[fn](**params)
