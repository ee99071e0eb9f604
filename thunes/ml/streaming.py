"""One model prediction per closed candle from streamed features: the hot path of a model-driven bot.

:meth:`Forecaster.predict_latest <thunes.ml.serving.Forecaster.predict_latest>` recomputes the whole feature
set on the last ``warmup + CONVERGE_BARS`` candles for every prediction (most of its cost). A
:class:`StreamingForecaster` advances :class:`~thunes.features.streaming_set.StreamingFeatures` by the new
candle, scales that one row (the scaler is per column, so a row scaled alone is the row of the scaled matrix,
bit for bit) into a ring of the last ``seq_len`` scaled rows, and runs the model on the ring.

Equality: the prediction at candle t is :meth:`Forecaster.predict_frame` at t over the same candles (within
the features' documented tolerance, which float32 scaling absorbs but for a last-bit flip): the streamed
features carry the recurrences (EMA, RSI, ATR) since the stream started, as ``predict_frame`` and the training
set do, where ``predict_latest`` truncates them at its window. A window with a non-finite feature, a missing
candle or a row whose indicator windows span a gap gives no prediction, as ``predict_frame`` (NaN there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError
from thunes.features.streaming_set import StreamingFeatures
from thunes.ml.serving import Forecast, Forecaster

__all__ = ["StreamingForecaster"]

_OHLCV = ["open", "high", "low", "close", "volume"]


class StreamingForecaster:
    """A :class:`Forecaster` fed one closed candle at a time (``update``), from a stream warmed on history."""

    def __init__(self, forecaster: Forecaster, *, timeframe_ms: int) -> None:
        if forecaster.scaler is None:
            raise ConfigError("a streaming forecaster needs the model's scaler (an unscaled model is not served)")
        self.forecaster = forecaster
        self.features = StreamingFeatures(forecaster.meta.feature_set, timeframe_ms=timeframe_ms)
        names = list(self.features.columns)
        try:
            self._cols = np.array([names.index(c) for c in forecaster.feature_cols], dtype=np.int64)
        except ValueError as exc:
            raise ConfigError(f"the model's feature columns are not all in feature set "
                              f"{forecaster.meta.feature_set!r}: {exc}") from None
        self.timeframe_ms = int(timeframe_ms)
        n = forecaster.seq_len
        self._scaled = np.zeros((n, len(self._cols)), dtype=np.float32)
        self._ok = np.zeros(n, dtype=bool)  # the row is finite and its indicator windows span no gap
        self._joined = np.zeros(n, dtype=bool)  # no candle is missing between this row and the previous one
        self._mean = np.asarray(forecaster.scaler.mean, dtype="float64")[None, :]
        self._scale = np.asarray(forecaster.scaler.scale, dtype="float64")[None, :]
        self._i = 0
        self._last_ts: int | None = None

    def warm_up(self, candles: pd.DataFrame) -> Forecast | None:
        """Feed history (the stream must start where the batch would: see the module docstring)."""
        out = None
        for t, row in zip(ts_ms(candles), candles[_OHLCV].to_numpy(dtype="float64")):
            out = self.update(int(t), *row, as_of=None)
        return out

    def update(self, ts_ms: int, open: float, high: float, low: float, close: float, volume: float, *,
               as_of: pd.Timestamp | None = None) -> Forecast | None:
        """The forecast as of this closed candle, or None while the window is incomplete or spans a gap."""
        row = self.features.update(ts_ms, open, high, low, close, volume)
        n = self._scaled.shape[0]
        slot = self._i % n
        values = row[self._cols][None, :]
        self._scaled[slot] = ((values - self._mean) / self._scale).astype(np.float32)[0]  # transform_array's ops
        self._ok[slot] = bool(np.isfinite(values).all()) and row[-1] == 0.0
        self._joined[slot] = self._last_ts is None or ts_ms - self._last_ts == self.timeframe_ms
        self._last_ts = ts_ms
        self._i += 1
        if self._i < n or not self._ok.all():
            return None
        order = np.arange(slot + 1, slot + 1 + n) % n  # oldest first
        if not self._joined[order[1:]].all():
            return None
        fc = self.forecaster
        ret, vol = fc._predict(self._scaled[order][None])
        when = as_of if as_of is not None else pd.Timestamp(ts_ms, unit="ms", tz="UTC")
        return Forecast(as_of=when, horizon=fc.horizon, ret=float(ret[0]) * fc.target_scale,
                        vol=float(vol[0]) * fc.target_scale, model_trained_at=fc.meta.trained_at,
                        model_last_candle=fc.meta.last_candle)
