"""Indicators the built-in strategies use, taken from :mod:`thunes.features.indicators`.

Temporary fallback: until the features layer lands its indicators, tiny causal pandas versions
live here. Delete the fallback once ``thunes.features.indicators`` provides sma/rsi/bollinger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["sma", "rsi", "bollinger"]

try:  # the features layer's numba indicators (TA-Lib compatible)
    from thunes.features.indicators import bollinger as _f_bollinger
    from thunes.features.indicators import rsi as _f_rsi
    from thunes.features.indicators import sma as _f_sma
except ImportError:  # pragma: no cover - only before the features layer is installed
    _f_sma = _f_rsi = _f_bollinger = None


def sma(close: pd.Series, period: int) -> pd.Series:
    if _f_sma is not None:
        return _f_sma(close, period)
    return close.rolling(period, min_periods=period).mean()


def rsi(close: pd.Series, period: int) -> pd.Series:
    """Wilder's RSI (the TA-Lib definition: seeded with the simple mean of the first ``period`` moves)."""
    if _f_rsi is not None:
        return _f_rsi(close, period)
    values = close.to_numpy(dtype=np.float64)
    out = np.full(values.shape, np.nan)
    if values.size > period:
        diff = np.diff(values)
        gain = np.clip(diff, 0, None)
        loss = np.clip(-diff, 0, None)
        avg_g, avg_l = gain[:period].mean(), loss[:period].mean()
        out[period] = 100.0 if avg_l == 0 else 100.0 - 100.0 / (1.0 + avg_g / avg_l)
        for i in range(period + 1, values.size):
            avg_g = (avg_g * (period - 1) + gain[i - 1]) / period
            avg_l = (avg_l * (period - 1) + loss[i - 1]) / period
            out[i] = 100.0 if avg_l == 0 else 100.0 - 100.0 / (1.0 + avg_g / avg_l)
    return pd.Series(out, index=close.index, name=f"rsi_{period}")


def bollinger(close: pd.Series, period: int, k: float) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(lower, middle, upper) bands with the population standard deviation (TA-Lib's choice)."""
    if _f_bollinger is not None:
        mid_, upper_, lower_ = _f_bollinger(close, period, k)
        return lower_, mid_, upper_
    mid = close.rolling(period, min_periods=period).mean()
    sd = close.rolling(period, min_periods=period).std(ddof=0)
    return mid - k * sd, mid, mid + k * sd
