"""Gap flags: mark rows whose trailing window spans missing candles.

Features never bridge a gap silently. Indicators are computed over rows as they come (a 20-row SMA
after a 3-hour hole averages candles that are not 20 consecutive hours), and the rows whose window
contains such a hole are flagged so that models can mask them and the backtester can refuse entries
on them.
"""

from __future__ import annotations

import numpy as np

from thunes.core.errors import ConfigError, DataError
from thunes.features import _kernels as K

__all__ = ["gap_flags", "gap_positions", "infer_step_ms"]


def gap_flags(ts_ms: np.ndarray, timeframe_ms: int, window: int) -> np.ndarray:
    """Boolean array, True at row t when rows ``t-window+1 .. t`` are not consecutive candles.

    ``ts_ms`` are candle open times in epoch ms (sorted). A window of 1 row never spans a gap; a window
    of 2 rows flags the first row after each gap, and so on. Rows before ``window-1`` are flagged only
    if a gap falls within them (they are warm-up rows anyway).
    """
    ts = np.ascontiguousarray(np.asarray(ts_ms, dtype="int64"))
    if ts.ndim != 1:
        raise DataError(f"gap_flags: ts_ms must be 1-D, got shape {ts.shape}")
    if isinstance(timeframe_ms, bool) or int(timeframe_ms) <= 0:
        raise ConfigError(f"gap_flags: timeframe_ms must be a positive integer, got {timeframe_ms!r}")
    if isinstance(window, bool) or int(window) < 1:
        raise ConfigError(f"gap_flags: window must be an integer >= 1, got {window!r}")
    if ts.size > 1:
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise DataError(f"gap_flags: timestamps not strictly increasing at row {i} ({ts[i]} after {ts[i - 1]})")
    return K.gap_flags_1d(ts, int(timeframe_ms), int(window))


def infer_step_ms(ts_ms: np.ndarray) -> int:
    """The candle spacing of a frame: the smallest difference between consecutive timestamps."""
    ts = np.asarray(ts_ms, dtype="int64")
    if ts.size < 2:
        raise DataError("cannot infer the timeframe from fewer than 2 rows; pass it explicitly")
    return int(np.diff(ts).min())


def gap_positions(ts_ms: np.ndarray, timeframe_ms: int) -> np.ndarray:
    """Row numbers j where candles are missing between row j-1 and row j."""
    ts = np.asarray(ts_ms, dtype="int64")
    return np.flatnonzero(np.diff(ts) != int(timeframe_ms)) + 1
