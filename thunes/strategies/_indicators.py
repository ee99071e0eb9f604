"""The indicators the built-in strategies use, from :mod:`thunes.features.indicators` (numba, TA-Lib compatible).

One definition of each indicator serves features, ML datasets and strategies, so a strategy's SMA is
the feature set's SMA to the last bit. This module only fixes the shapes the strategies want (named
Series in, Series out). Bollinger bands come as the feature module's ``Bands(upper, middle, lower)``
(TA-Lib's order), read by name.
"""

from __future__ import annotations

import pandas as pd

from thunes.features.indicators import Bands
from thunes.features.indicators import bollinger as _bollinger
from thunes.features.indicators import rsi as _rsi
from thunes.features.indicators import sma as _sma

__all__ = ["Bands", "bollinger", "rsi", "sma"]


def sma(close: pd.Series, period: int) -> pd.Series:
    """Simple moving average over ``period`` bars (NaN during the warm-up)."""
    return _sma(close, period)


def rsi(close: pd.Series, period: int) -> pd.Series:
    """Wilder's RSI (the TA-Lib definition)."""
    return _rsi(close, period)


def bollinger(close: pd.Series, period: int, k: float) -> Bands:
    """``Bands(upper, middle, lower)`` with the population standard deviation (TA-Lib's choice and order)."""
    return _bollinger(close, period, k)
