"""Named, versioned feature sets and :func:`compute_features`.

A feature set is a list of *blocks* (an indicator kind with its parameters and the columns it
produces). From it follow a deterministic column order, the warm-up length (the row at which every
column has its first value) and a content hash. The hash is stored with every artifact computed from
the set (``DataFrame.attrs["feature_set"]``, model artifacts, backtest reports) so that a model is never
served features from a different definition. Changing a block's parameters, its formula
(``KERNEL_VERSION``) or the set's version changes the hash.

The default set's columns are scale-free (ratios, oscillators, log returns, z-scores), so a model
trained on one symbol or price era can be applied to another. Raw price-level indicators are in
:mod:`thunes.features.indicators` for strategies that want them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms, validate_candles
from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.features import _kernels as K
from thunes.features.gaps import gap_flags, infer_step_ms

__all__ = [
    "GAP_COLUMN",
    "KERNEL_VERSION",
    "FeatureBlock",
    "FeatureSet",
    "compute_features",
    "describe_column",
    "feature_set_names",
    "get_feature_set",
]

GAP_COLUMN = "gap_flag"
# Below this many rows a feature set is computed on the calling thread: starting threads costs more.
PARALLEL_MIN_ROWS = 50_000
# Bump when a kernel's formula changes so that hashes of sets using it change too.
KERNEL_VERSION = 3  # 3: MFI is 50 on a window with no money flow (TA-Lib: 0); division-free recursions


class _Ctx:
    """Validated float64 inputs for one compute, with a small cache of shared intermediates."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.open = np.ascontiguousarray(frame["open"].to_numpy(dtype="float64"))
        self.high = np.ascontiguousarray(frame["high"].to_numpy(dtype="float64"))
        self.low = np.ascontiguousarray(frame["low"].to_numpy(dtype="float64"))
        self.close = np.ascontiguousarray(frame["close"].to_numpy(dtype="float64"))
        self.volume = np.ascontiguousarray(frame["volume"].to_numpy(dtype="float64"))
        self.ts = ts_ms(frame)
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.RLock()  # blocks run on worker threads; a shared value is computed once

    def cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def log_close(self) -> np.ndarray:
        return self.cached(("log_close",), lambda: K.log_1d(self.close))

    def logret(self, lag: int) -> np.ndarray:
        """ln(close[t]) - ln(close[t-lag]): one log per row shared by every lag."""
        return self.cached(("logret", lag), lambda: K.diff_1d(self.log_close(), lag, self.column()))

    def column(self, width: int = 0) -> np.ndarray:
        """A fresh output column (or ``width`` columns, each contiguous), allocated by numpy.

        numpy advises huge pages for large arrays; an array allocated inside a numba kernel takes one
        page fault per 4 KiB on first touch, which on 1M rows cost as much as computing the features.
        """
        m = self.close.size
        return np.empty(m) if width == 0 else np.empty((m, width), order="F")

    def logret1(self) -> np.ndarray:
        return self.logret(1)


def _ratio(num: np.ndarray, den: np.ndarray, *, when_zero: float = 0.0) -> np.ndarray:
    return K.ratio_1d(np.ascontiguousarray(num), np.ascontiguousarray(den), when_zero, np.empty(num.size))


def _dist(close: np.ndarray, level: np.ndarray) -> np.ndarray:
    """close / level - 1 (level is a positive price)."""
    return K.dist_1d(close, level, np.empty(close.size))


# -------------------------------------------------------------------------------------- block kinds
@dataclass(frozen=True, slots=True)
class _Kind:
    columns: Callable[..., tuple[str, ...]]
    lookback: Callable[..., int]
    compute: Callable[..., dict[str, np.ndarray]]
    doc: str


def _sma_dist(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"sma_dist_{n}": _dist(ctx.close, K.sma_1d(ctx.close, n))}


def _ema_dist(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"ema_dist_{n}": _dist(ctx.close, K.ema_1d(ctx.close, n))}


def _wma_dist(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"wma_dist_{n}": _dist(ctx.close, K.wma_1d(ctx.close, n))}


def _macd(ctx: _Ctx, fast: int, slow: int, signal: int) -> dict[str, np.ndarray]:
    cols = {"macd_pct": ctx.column(), "macd_signal_pct": ctx.column(), "macd_hist_pct": ctx.column()}
    K.macd_1d(ctx.close, fast, slow, signal, *cols.values())
    for values in cols.values():  # in percent of close, in place
        np.divide(values, ctx.close, out=values)
        np.multiply(values, 100.0, out=values)
    return cols


def _rsi(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"rsi_{n}": K.rsi_1d(ctx.close, n)}


def _stoch(ctx: _Ctx, fastk: int, slowk: int, slowd: int) -> dict[str, np.ndarray]:
    # the *_checked kernels write numpy-allocated columns (the checksum is not needed: the frame is valid)
    k, d, _ = K.stoch_checked(ctx.high, ctx.low, ctx.close, fastk, slowk, slowd, np.empty(ctx.close.size),
                              ctx.column(), ctx.column())
    return {f"stoch_k_{fastk}": k, f"stoch_d_{fastk}": d}


def _willr(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    out, _ = K.willr_checked(ctx.high, ctx.low, ctx.close, n, ctx.column(), np.empty(ctx.close.size))
    return {f"willr_{n}": out}


def _cci(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"cci_{n}": K.cci_1d(ctx.high, ctx.low, ctx.close, n)}


def _mfi(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    out, _ = K.mfi_checked(ctx.high, ctx.low, ctx.close, ctx.volume, n, ctx.column())
    return {f"mfi_{n}": out}


def _roc(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"roc_{n}": K.roc_1d(ctx.close, n)}


def _adx(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    pdi, mdi, adx = K.adx_1d(ctx.high, ctx.low, ctx.close, n, ctx.column(), ctx.column(), ctx.column())
    return {f"adx_{n}": adx, f"plus_di_{n}": pdi, f"minus_di_{n}": mdi}


def _natr(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"natr_{n}": K.natr_1d(ctx.high, ctx.low, ctx.close, n)}


def _tr_pct(ctx: _Ctx) -> dict[str, np.ndarray]:
    return {"tr_pct": K.true_range_1d(ctx.high, ctx.low, ctx.close) / ctx.close}


def _bollinger(ctx: _Ctx, n: int, k: float) -> dict[str, np.ndarray]:
    mid, var = K.rolling_mean_var_1d(ctx.close, n)
    dev = np.sqrt(var) * k
    pctb = _ratio(ctx.close - (mid - dev), 2.0 * dev, when_zero=0.5)
    return {f"bb_pctb_{n}": pctb, f"bb_width_{n}": 2.0 * dev / mid}


def _vol_cc(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    out = np.full(ctx.close.size, np.nan)
    out[1:] = K.rolling_std_1d(ctx.logret1()[1:], n, 1)
    return {f"vol_cc_{n}": out}


def _vol_parkinson(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"vol_parkinson_{n}": K.parkinson_1d(ctx.high, ctx.low, n)}


def _vol_gk(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"vol_gk_{n}": K.garman_klass_1d(ctx.open, ctx.high, ctx.low, ctx.close, n)}


def _logret(ctx: _Ctx, lags: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {f"logret_{lag}": ctx.logret(lag) for lag in lags}


def _zscore_close(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"zscore_close_{n}": K.zscore_1d(ctx.close, n)}


def _ret_moments(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    skew = np.full(ctx.close.size, np.nan)
    kurt = np.full(ctx.close.size, np.nan)
    s, k = K.rolling_skew_kurt_1d(ctx.logret1()[1:], n)
    skew[1:] = s
    kurt[1:] = k
    return {f"ret_skew_{n}": skew, f"ret_kurt_{n}": kurt}


def _volume_z(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"volume_zscore_{n}": K.zscore_1d(ctx.volume, n)}


def _volume_ratio(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"volume_ratio_{n}": _ratio(ctx.volume, K.sma_1d(ctx.volume, n), when_zero=1.0)}


def _obv_flow(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    # OBV's change over n rows, summed over the window (resynced) rather than as the difference of two
    # cumulative values, whose rounding grows with the series.
    signed = np.sign(K.diff_1d(ctx.close, 1, np.empty(ctx.close.size))) * ctx.volume
    signed[0] = 0.0
    change = K.sma_1d(signed, n) * n
    change[:n] = np.nan
    vol_sum = K.sma_1d(ctx.volume, n) * n
    return {f"obv_flow_{n}": _ratio(change, vol_sum, when_zero=0.0)}


def _vwap_dist(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    return {f"vwap_dist_{n}": _dist(ctx.close, K.vwap_1d(ctx.high, ctx.low, ctx.close, ctx.volume, n))}


def _candle(ctx: _Ctx) -> dict[str, np.ndarray]:
    block = K.candle_1d(ctx.open, ctx.high, ctx.low, ctx.close, ctx.column(5))
    names = ("body_ratio", "upper_wick_ratio", "lower_wick_ratio", "range_pct", "open_gap_pct")
    return {name: block[:, j] for j, name in enumerate(names)}


def _range_dist(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    hh = K.rolling_max_1d(ctx.high, n)
    ll = K.rolling_min_1d(ctx.low, n)
    return {
        f"dist_high_{n}": _dist(ctx.close, hh),
        f"dist_low_{n}": _dist(ctx.close, ll),
        f"range_pos_{n}": _ratio(ctx.close - ll, hh - ll, when_zero=0.5),
    }


_FIB_RETR = (0.236, 0.382, 0.5, 0.618, 0.786)
_FIB_EXT = (1.272, 1.618)


def _fib_tag(r: float) -> str:
    return f"{int(round(r * 1000)):d}"


def _fib(ctx: _Ctx, n: int) -> dict[str, np.ndarray]:
    """Retracement/extension levels of the rolling swing and close's distance to each (÷ close).

    Up-swing (the high came after the low): retracements fall from the high, ``H - r(H-L)``, and
    extensions project from the low, ``L + e(H-L)``. Down-swing: mirrored.
    """
    hh, ll, direction = K.swing_1d(ctx.high, ctx.low, n)
    out = {f"fib_dir_{n}": direction}
    for r in _FIB_RETR:
        out[f"fib_r{_fib_tag(r)}_{n}"] = K.fib_level_dist_1d(hh, ll, direction, ctx.close, r, False,
                                                             ctx.column())
    for e in _FIB_EXT:
        out[f"fib_e{_fib_tag(e)}_{n}"] = K.fib_level_dist_1d(hh, ll, direction, ctx.close, e, True,
                                                             ctx.column())
    return out


def _calendar(ctx: _Ctx) -> dict[str, np.ndarray]:
    block = K.calendar_1d(ctx.ts, ctx.column(4))
    return {name: block[:, j] for j, name in enumerate(("hour_sin", "hour_cos", "dow_sin", "dow_cos"))}


_KINDS: dict[str, _Kind] = {
    "sma_dist": _Kind(lambda n: (f"sma_dist_{n}",), lambda n: n - 1, _sma_dist, "close / SMA(n) - 1"),
    "ema_dist": _Kind(lambda n: (f"ema_dist_{n}",), lambda n: n - 1, _ema_dist, "close / EMA(n) - 1"),
    "wma_dist": _Kind(lambda n: (f"wma_dist_{n}",), lambda n: n - 1, _wma_dist, "close / WMA(n) - 1"),
    "macd": _Kind(lambda fast, slow, signal: ("macd_pct", "macd_signal_pct", "macd_hist_pct"),
                  lambda fast, slow, signal: max(fast, slow) + signal - 2, _macd,
                  "MACD line, signal and histogram in percent of close"),
    "rsi": _Kind(lambda n: (f"rsi_{n}",), lambda n: n, _rsi, "Wilder RSI (0-100)"),
    "stoch": _Kind(lambda fastk, slowk, slowd: (f"stoch_k_{fastk}", f"stoch_d_{fastk}"),
                   lambda fastk, slowk, slowd: fastk + slowk + slowd - 3, _stoch, "slow stochastic %K, %D (0-100)"),
    "willr": _Kind(lambda n: (f"willr_{n}",), lambda n: n - 1, _willr, "Williams %R (-100-0)"),
    "cci": _Kind(lambda n: (f"cci_{n}",), lambda n: n - 1, _cci, "Commodity Channel Index"),
    "mfi": _Kind(lambda n: (f"mfi_{n}",), lambda n: n, _mfi, "Money Flow Index (0-100)"),
    "roc": _Kind(lambda n: (f"roc_{n}",), lambda n: n, _roc, "rate of change over n bars, percent"),
    "adx": _Kind(lambda n: (f"adx_{n}", f"plus_di_{n}", f"minus_di_{n}"), lambda n: 2 * n - 1, _adx,
                 "ADX, +DI, -DI (0-100)"),
    "natr": _Kind(lambda n: (f"natr_{n}",), lambda n: n, _natr, "ATR(n) in percent of close"),
    "tr_pct": _Kind(lambda: ("tr_pct",), lambda: 1, _tr_pct, "true range / close"),
    "bollinger": _Kind(lambda n, k: (f"bb_pctb_{n}", f"bb_width_{n}"), lambda n, k: n - 1, _bollinger,
                       "Bollinger %B and width (upper-lower)/middle"),
    "vol_cc": _Kind(lambda n: (f"vol_cc_{n}",), lambda n: n, _vol_cc,
                    "close-to-close volatility: sample std of n 1-bar log returns"),
    "vol_parkinson": _Kind(lambda n: (f"vol_parkinson_{n}",), lambda n: n - 1, _vol_parkinson,
                           "Parkinson high-low volatility per bar"),
    "vol_gk": _Kind(lambda n: (f"vol_gk_{n}",), lambda n: n - 1, _vol_gk, "Garman-Klass volatility per bar"),
    "logret": _Kind(lambda lags: tuple(f"logret_{lag}" for lag in lags), lambda lags: max(lags), _logret,
                    "log return over each lag"),
    "zscore_close": _Kind(lambda n: (f"zscore_close_{n}",), lambda n: n - 1, _zscore_close,
                          "z-score of close in its n-bar window"),
    "ret_moments": _Kind(lambda n: (f"ret_skew_{n}", f"ret_kurt_{n}"), lambda n: n, _ret_moments,
                         "skewness and excess kurtosis of n 1-bar log returns"),
    "volume_z": _Kind(lambda n: (f"volume_zscore_{n}",), lambda n: n - 1, _volume_z,
                      "z-score of volume in its n-bar window"),
    "volume_ratio": _Kind(lambda n: (f"volume_ratio_{n}",), lambda n: n - 1, _volume_ratio,
                          "volume / SMA(volume, n)"),
    "obv_flow": _Kind(lambda n: (f"obv_flow_{n}",), lambda n: n, _obv_flow,
                      "OBV change over n bars / volume over those bars (-1..1)"),
    "vwap_dist": _Kind(lambda n: (f"vwap_dist_{n}",), lambda n: n - 1, _vwap_dist, "close / rolling VWAP(n) - 1"),
    "candle": _Kind(lambda: ("body_ratio", "upper_wick_ratio", "lower_wick_ratio", "range_pct", "open_gap_pct"),
                    lambda: 1, _candle, "candle body and wicks / range, range / close, open / previous close - 1"),
    "range_dist": _Kind(lambda n: (f"dist_high_{n}", f"dist_low_{n}", f"range_pos_{n}"), lambda n: n - 1,
                        _range_dist, "close vs rolling high/low: distances and position in the range"),
    "fib": _Kind(lambda n: (f"fib_dir_{n}",) + tuple(f"fib_r{_fib_tag(r)}_{n}" for r in _FIB_RETR)
                 + tuple(f"fib_e{_fib_tag(e)}_{n}" for e in _FIB_EXT), lambda n: n - 1, _fib,
                 "Fibonacci retracement/extension levels of the n-bar swing: direction and (close-level)/close"),
    "calendar": _Kind(lambda: ("hour_sin", "hour_cos", "dow_sin", "dow_cos"), lambda: 0, _calendar,
                      "hour of day and day of week (UTC) on the unit circle"),
}


# ----------------------------------------------------------------------------------------- the spec
@dataclass(frozen=True, slots=True)
class FeatureBlock:
    """One indicator kind with its parameters; produces ``columns``, first complete at row ``lookback``."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"unknown feature kind {self.kind!r}{_hint(self.kind, _KINDS)}")

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def columns(self) -> tuple[str, ...]:
        return _KINDS[self.kind].columns(**self.kwargs)

    @property
    def lookback(self) -> int:
        return int(_KINDS[self.kind].lookback(**self.kwargs))

    @property
    def doc(self) -> str:
        return _KINDS[self.kind].doc

    def compute(self, ctx: _Ctx) -> dict[str, np.ndarray]:
        return _KINDS[self.kind].compute(ctx, **self.kwargs)


def block(kind: str, **params: Any) -> FeatureBlock:
    return FeatureBlock(kind, tuple(sorted(params.items())))


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """A named, versioned list of blocks. ``columns``, ``warmup`` and ``hash`` derive from it."""

    name: str
    version: int
    blocks: tuple[FeatureBlock, ...]
    description: str = ""
    _column_block: dict[str, FeatureBlock] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        mapping: dict[str, FeatureBlock] = {}
        for b in self.blocks:
            for col in b.columns:
                if col in mapping or col == GAP_COLUMN:
                    raise ConfigError(f"feature set {self.name!r}: column {col!r} is produced twice")
                mapping[col] = b
        object.__setattr__(self, "_column_block", mapping)

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature columns in their fixed order (``gap_flag`` is appended by :func:`compute_features`)."""
        return tuple(self._column_block)

    @property
    def warmup(self) -> int:
        """Rows of warm-up: the first row at which every column has a value."""
        return max((b.lookback for b in self.blocks), default=0)

    @property
    def hash(self) -> str:
        payload = {
            "name": self.name, "version": self.version, "kernels": KERNEL_VERSION,
            "blocks": [[b.kind, [[k, v] for k, v in b.params]] for b in self.blocks],
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def block_of(self, column: str) -> FeatureBlock:
        try:
            return self._column_block[column]
        except KeyError:
            raise ConfigError(
                f"feature set {self.name!r} (v{self.version}) has no column {column!r}"
                f"{_hint(column, self._column_block)}; `thunes features list --set {self.name}` lists them"
            ) from None

    def lookback_of(self, columns: Sequence[str]) -> int:
        return max((self.block_of(c).lookback for c in columns), default=0)

    def identity(self) -> dict[str, Any]:
        """What an artifact stores to say which features it used."""
        return {"name": self.name, "version": self.version, "hash": self.hash}


_SETS: dict[str, FeatureSet] = {}


def _register(fs: FeatureSet) -> FeatureSet:
    _SETS[fs.name] = fs
    return fs


DEFAULT = _register(FeatureSet(
    name="default",
    version=1,
    description="69 scale-free causal features: trend, momentum, volatility, volume, candle shape, "
                "range/Fibonacci position and calendar",
    blocks=(
        *(block("sma_dist", n=n) for n in (10, 20, 50, 100)),
        *(block("ema_dist", n=n) for n in (12, 26, 50)),
        block("wma_dist", n=20),
        block("macd", fast=12, slow=26, signal=9),
        *(block("rsi", n=n) for n in (7, 14, 28)),
        block("stoch", fastk=14, slowk=3, slowd=3),
        block("willr", n=14),
        block("cci", n=20),
        block("mfi", n=14),
        *(block("roc", n=n) for n in (10, 20)),
        block("adx", n=14),
        block("natr", n=14),
        block("tr_pct"),
        block("bollinger", n=20, k=2.0),
        *(block("vol_cc", n=n) for n in (20, 60)),
        block("vol_parkinson", n=20),
        block("vol_gk", n=20),
        block("logret", lags=(1, 2, 5, 10, 20)),
        *(block("zscore_close", n=n) for n in (20, 50)),
        block("ret_moments", n=50),
        *(block("volume_z", n=n) for n in (20, 50)),
        block("volume_ratio", n=20),
        block("obv_flow", n=20),
        block("vwap_dist", n=20),
        block("candle"),
        *(block("range_dist", n=n) for n in (20, 50)),
        block("fib", n=50),
        block("calendar"),
    ),
))

COMPACT = _register(FeatureSet(
    name="compact",
    version=1,
    description="13 core features with a short warm-up, for quick experiments and small models",
    blocks=(
        block("logret", lags=(1, 5, 20)),
        block("sma_dist", n=20),
        block("ema_dist", n=12),
        block("rsi", n=14),
        block("natr", n=14),
        block("bollinger", n=20, k=2.0),
        block("volume_z", n=20),
        block("range_dist", n=20),
    ),
))


def feature_set_names() -> tuple[str, ...]:
    return tuple(_SETS)


def get_feature_set(name: str | FeatureSet = "default") -> FeatureSet:
    """The registered feature set called ``name`` (a :class:`FeatureSet` is returned as is)."""
    if isinstance(name, FeatureSet):
        return name
    try:
        return _SETS[name]
    except KeyError:
        raise ConfigError(f"unknown feature set {name!r}{_hint(name, _SETS)}; known: {sorted(_SETS)}") from None


def describe_column(fs: FeatureSet, column: str) -> str:
    b = fs.block_of(column)
    params = ", ".join(f"{k}={v}" for k, v in b.params)
    return f"{b.doc}" + (f" [{b.kind}: {params}]" if params else f" [{b.kind}]")


def _check_positive(frame: pd.DataFrame) -> None:
    for col in ("open", "high", "low", "close"):
        values = frame[col].to_numpy(dtype="float64")
        bad = np.flatnonzero(values <= 0.0)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"non-positive price {values[i]} in column '{col}' at row {i} ({frame.index[i]})")
    vol = frame["volume"].to_numpy(dtype="float64")
    bad = np.flatnonzero(vol < 0.0)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"negative volume {vol[i]} in column 'volume' at row {i} ({frame.index[i]})")


def compute_features(
    frame: pd.DataFrame,
    feature_set: str | FeatureSet = "default",
    *,
    columns: Sequence[str] | None = None,
    timeframe_ms: int | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Compute a feature set on a canonical candle frame.

    Returns a DataFrame with the frame's index, the feature columns (the set's order, or the order of
    ``columns`` when given) and a boolean ``gap_flag`` column that is True where the warm-up window of
    the row spans missing candles. Warm-up rows are NaN. ``attrs["feature_set"]`` holds the set's name,
    version and hash.

    ``workers`` threads compute the blocks (the kernels release the GIL); ``None`` means one per CPU
    core, at most 4, on frames of at least ``PARALLEL_MIN_ROWS`` rows (a live bar's few hundred rows
    are faster on the calling thread), and 1 computes them in order on the calling thread. Every block
    is a pure function of the candles, so the values do not depend on the number of workers.

    Raises :class:`DataError` for NaN/inf, non-positive prices, unsorted or duplicate timestamps,
    :class:`InsufficientData` when there are not more rows than the warm-up, :class:`ConfigError` for
    a column the set does not produce.
    """
    fs = get_feature_set(feature_set)
    wanted = list(fs.columns if columns is None else columns)
    blocks: list[FeatureBlock] = []
    for col in wanted:
        b = fs.block_of(col)
        if b not in blocks:
            blocks.append(b)
    if len(set(wanted)) != len(wanted):
        dupes = sorted({c for c in wanted if wanted.count(c) > 1})
        raise ConfigError(f"columns requested more than once: {dupes}")
    validate_candles(frame)
    _check_positive(frame)
    warmup = max((b.lookback for b in blocks), default=0)
    if len(frame) <= warmup:
        raise InsufficientData(
            f"feature set {fs.name!r} needs more than {warmup} rows (its warm-up) for the selected columns, "
            f"got {len(frame)}"
        )
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(frame) >= PARALLEL_MIN_ROWS else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"compute_features: workers must be an integer >= 1, got {workers!r}")
    ctx = _Ctx(frame)
    produced: dict[str, np.ndarray] = {}
    if workers == 1 or len(blocks) == 1:
        for b in blocks:
            produced.update(b.compute(ctx))
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(blocks)), thread_name_prefix="features") as pool:
            for part in pool.map(lambda b: b.compute(ctx), blocks):
                produced.update(part)
    step = timeframe_ms if timeframe_ms is not None else infer_step_ms(ctx.ts)
    flags = gap_flags(ctx.ts, step, warmup + 1)
    data = {c: produced[c] for c in wanted}
    data[GAP_COLUMN] = flags
    # copy=False keeps one block per column: no consolidation copy (fresh memory is slow to touch).
    out = pd.DataFrame(data, index=frame.index, copy=False)
    out.attrs["feature_set"] = fs.identity()
    return out
