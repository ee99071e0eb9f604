"""The canonical candle frame that every layer exchanges.

A candle frame is a ``pandas.DataFrame`` indexed by a UTC ``DatetimeIndex`` named ``ts`` (the candle's
*open* time) with float64 columns ``open, high, low, close, volume``, sorted and unique. Numeric
kernels take the columns as float64 arrays and the index as int64 epoch milliseconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from thunes.core.errors import DataError
from thunes.core.timeframes import index_ms

__all__ = ["OHLCV", "candles_frame", "ts_ms", "validate_candles"]

OHLCV = ("open", "high", "low", "close", "volume")


def candles_frame(ts: npt.ArrayLike, open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike,
                  close: npt.ArrayLike, volume: npt.ArrayLike) -> pd.DataFrame:
    """Build the canonical frame from epoch-ms timestamps and five float arrays.

    The index is ``datetime64[ns, UTC]`` on every pandas version (pandas 3 would otherwise pick
    microseconds): one canonical unit, and :func:`ts_ms` for every conversion back to milliseconds.
    """
    stamps = pd.to_datetime(np.asarray(ts, dtype="int64"), unit="ms", utc=True)
    index = pd.DatetimeIndex(stamps, name="ts").as_unit("ns")
    return pd.DataFrame(
        {
            "open": np.asarray(open_, dtype="float64"),
            "high": np.asarray(high, dtype="float64"),
            "low": np.asarray(low, dtype="float64"),
            "close": np.asarray(close, dtype="float64"),
            "volume": np.asarray(volume, dtype="float64"),
        },
        index=index,
    )


def ts_ms(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """Epoch milliseconds of a candle frame's index as int64."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("candle frame must be indexed by a DatetimeIndex named 'ts'")
    return index_ms(index)


def validate_candles(frame: pd.DataFrame, *, require_finite: bool = True) -> None:
    """Raise ``DataError`` naming the column and row for the first problem found."""
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataError(f"candle frame lacks column(s) {missing}; expected {list(OHLCV)}")
    ts = ts_ms(frame)
    if len(ts) > 1:
        diffs = np.diff(ts)
        bad = np.flatnonzero(diffs <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            kind = "duplicate" if diffs[bad[0]] == 0 else "unsorted"
            raise DataError(f"{kind} timestamp at row {i}: {frame.index[i]} follows {frame.index[i - 1]}")
    if require_finite:
        for col in OHLCV:
            values = frame[col].to_numpy(dtype="float64")
            nonfinite = np.flatnonzero(~np.isfinite(values))
            if nonfinite.size:
                i = int(nonfinite[0])
                raise DataError(f"non-finite value {values[i]} in column '{col}' at row {i} "
                                f"({frame.index[i]})")
