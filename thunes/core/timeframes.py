"""Timeframes: parse and format ``1s … 1M``, convert to seconds/ms, align timestamps, resample candles.

A month (``1M``) has no fixed length; it is handled by calendar arithmetic in :func:`align_ms` and
:func:`resample`, and :func:`timeframe_seconds` returns 30 days for it (useful only for estimates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from thunes.core.errors import DataError

__all__ = [
    "Timeframe",
    "align_ms",
    "index_ms",
    "parse_timeframe",
    "resample",
    "timeframe_ms",
    "timeframe_seconds",
]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000}
_PATTERN = re.compile(r"^(\d+)([smhdwM])$")
_PANDAS_UNIT = {"s": "s", "m": "min", "h": "h", "d": "D"}


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A candle duration such as ``5m`` or ``1h``."""

    count: int
    unit: str

    @property
    def seconds(self) -> int:
        return self.count * _UNIT_SECONDS[self.unit]

    @property
    def ms(self) -> int:
        return self.seconds * 1000

    @property
    def is_calendar(self) -> bool:
        """True for months, whose length varies."""
        return self.unit == "M"

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_timeframe(text: str | Timeframe) -> Timeframe:
    """Parse ``"1m"``, ``"4h"``, ``"1M"`` … into a :class:`Timeframe`; ``DataError`` on anything else."""
    if isinstance(text, Timeframe):
        return text
    match = _PATTERN.match(str(text).strip())
    if not match or int(match.group(1)) <= 0:
        raise DataError(
            f"invalid timeframe {text!r}: expected a positive count and a unit among s, m, h, d, w, M "
            "(e.g. 1m, 5m, 1h, 1d, 1M)"
        )
    return Timeframe(int(match.group(1)), match.group(2))


def timeframe_seconds(text: str | Timeframe) -> int:
    return parse_timeframe(text).seconds


def timeframe_ms(text: str | Timeframe) -> int:
    return parse_timeframe(text).ms


def index_ms(index: pd.Index) -> npt.NDArray[np.int64]:
    """Epoch milliseconds of a DatetimeIndex as int64, whatever its unit (ns, us, ms, s) and time zone.

    pandas 3 builds indexes in microseconds where pandas 2 used nanoseconds, so ``index.asi8`` has no
    fixed unit: every conversion of a timestamp index to epoch milliseconds goes through here. A naive
    index is taken as UTC.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"expected a DatetimeIndex, got {type(index).__name__}")
    return np.asarray(index.as_unit("ms").asi8, dtype="int64")


def align_ms(ts_ms: int | npt.NDArray[np.int64], timeframe: str | Timeframe) -> int | npt.NDArray[np.int64]:
    """Floor epoch-millisecond timestamps to the start of their candle.

    Weeks align to Monday 00:00 UTC (as Binance does); months to the 1st at 00:00 UTC.
    """
    tf = parse_timeframe(timeframe)
    if tf.unit == "M":
        arr = np.atleast_1d(np.asarray(ts_ms, dtype="int64"))
        dt = pd.to_datetime(arr, unit="ms", utc=True)
        months = (dt.year - 1970) * 12 + (dt.month - 1)
        months = (np.asarray(months) // tf.count) * tf.count
        starts = pd.to_datetime(
            {"year": 1970 + months // 12, "month": months % 12 + 1, "day": 1}, utc=True
        )
        out = index_ms(pd.DatetimeIndex(starts))
        return int(out[0]) if np.isscalar(ts_ms) else out
    step = tf.ms
    offset = 0
    if tf.unit == "w":
        offset = 4 * 86_400_000  # 1970-01-01 was a Thursday; Binance weeks start on Monday
    if not isinstance(ts_ms, np.ndarray):
        return int((int(ts_ms) - offset) // step * step + offset)
    arr = np.asarray(ts_ms, dtype="int64")
    return (arr - offset) // step * step + offset


def resample(candles: pd.DataFrame, timeframe: str | Timeframe, *, drop_incomplete_last: bool = True
             ) -> pd.DataFrame:
    """Resample a canonical candle frame to a higher timeframe.

    First open, max high, min low, last close, summed volume. Buckets with no source candle are
    dropped (never forward-filled), so gaps stay visible. The last bucket is dropped when the source
    ends before that bucket closes (it would be a still-open candle), unless ``drop_incomplete_last``
    is False.
    """
    tf = parse_timeframe(timeframe)
    if candles.empty:
        return candles.copy()
    ts = index_ms(candles.index) if isinstance(candles.index, pd.DatetimeIndex) else None
    if ts is None:
        raise DataError("resample expects a candle frame indexed by a DatetimeIndex named 'ts'")
    bucket = align_ms(ts, tf)
    grouped = candles.groupby(bucket, sort=True)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    if drop_incomplete_last and len(ts) > 1 and not tf.is_calendar:
        source_step = int(np.min(np.diff(ts)))
        if int(ts[-1]) + source_step < int(out.index[-1]) + tf.ms:
            out = out.iloc[:-1]
    out.index = pd.to_datetime(out.index.to_numpy(dtype="int64"), unit="ms", utc=True)
    out.index.name = "ts"
    return out


def utc_ms(dt: datetime | str) -> int:
    """Epoch milliseconds of a datetime (naive means UTC) or an ISO date string."""
    when = pd.Timestamp(dt).to_pydatetime() if isinstance(dt, str) else dt
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


__all__.append("utc_ms")
