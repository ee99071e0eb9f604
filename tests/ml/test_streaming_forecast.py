"""One prediction per candle from streamed features equals the batch forecast over the same candles."""

from __future__ import annotations

import numpy as np
import pytest

from thunes.core.candles import ts_ms

OHLCV = ["open", "high", "low", "close", "volume"]
HOUR = 3_600_000


def test_streamed_predictions_equal_predict_frame_bar_by_bar_across_a_gap(tiny_model, ml_candles):
    """Every candle of real data (with a 3-hour hole): the streamed forecast is predict_frame's at that candle,
    and there is none exactly where predict_frame has NaN (warm-up, and the windows spanning the hole)."""
    from thunes.ml.serving import Forecaster
    from thunes.ml.streaming import StreamingForecaster

    # Arrange
    _result, folder = tiny_model
    candles = ml_candles.drop(ml_candles.index[700:703])
    fc = Forecaster.load(folder, backend="onnx")
    stream = StreamingForecaster(fc, timeframe_ms=HOUR)
    # Act
    got = [stream.update(int(t), *row) for t, row in zip(ts_ms(candles), candles[OHLCV].to_numpy())]
    # Assert
    want = fc.predict_frame(candles)
    ret = np.array([np.nan if g is None else g.ret for g in got])
    vol = np.array([np.nan if g is None else g.vol for g in got])
    np.testing.assert_array_equal(np.isnan(ret), np.isnan(want.pred_ret.to_numpy()))
    np.testing.assert_allclose(ret, want.pred_ret.to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(vol, want.pred_vol.to_numpy(), rtol=1e-6, atol=1e-9)
    assert np.isfinite(ret).sum() > 1000 and np.isnan(ret[700:710]).any()


def test_a_model_whose_columns_are_not_in_its_feature_set_is_refused(tiny_model):
    from thunes.core.errors import ConfigError
    from thunes.ml.serving import Forecaster
    from thunes.ml.streaming import StreamingForecaster

    _result, folder = tiny_model
    fc = Forecaster.load(folder, backend="onnx")
    fc.feature_cols = fc.feature_cols[:-1] + ["no_such_column"]
    with pytest.raises(ConfigError, match="not all in feature set"):
        StreamingForecaster(fc, timeframe_ms=HOUR)
