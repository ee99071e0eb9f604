"""``prepare_input_for_model``: column order enforced, never scales twice, loud on misalignment."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from thunes.core.errors import DataError, InsufficientData
from thunes.ml.dataset import FeatureScaler

COLS = ["a", "b", "c"]


def _features(n: int = 20, *, freq: str = "1h") -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC", name="ts")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0], index=index,
                         columns=COLS)
    frame["gap_flag"] = False
    return frame


@pytest.fixture()
def scaler() -> FeatureScaler:
    return FeatureScaler.fit(_features(200)[COLS])


def test_window_is_the_last_rows_scaled_once_in_training_order(scaler):
    from thunes.ml.serving import prepare_input_for_model

    feats = _features()

    x = prepare_input_for_model(feats, COLS, 5, scaler)

    expected = ((feats[COLS].to_numpy()[-5:] - scaler.mean) / scaler.scale).astype("float32")
    assert x.shape == (1, 5, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], expected, rtol=1e-6)
    # the frame's own column order does not matter: the model's order is enforced
    shuffled = feats[["c", "gap_flag", "a", "b"]]
    np.testing.assert_array_equal(prepare_input_for_model(shuffled, COLS, 5, scaler), x)


def test_refuses_already_scaled_input(scaler):
    from thunes.ml.serving import prepare_input_for_model

    scaled = scaler.transform(_features()[COLS])

    with pytest.raises(DataError, match="already scaled"):
        prepare_input_for_model(scaled, COLS, 5, scaler)


def test_refuses_missing_columns_and_a_scaler_fitted_in_another_order(scaler):
    from thunes.ml.serving import prepare_input_for_model

    with pytest.raises(DataError, match="lacks 1 column\\(s\\) the model needs: \\['c'\\]"):
        prepare_input_for_model(_features().drop(columns="c"), COLS, 5, scaler)
    with pytest.raises(DataError, match="out of order: position 0 is 'b'"):
        prepare_input_for_model(_features(), ["b", "a", "c"], 5, scaler)


def test_refuses_nan_gap_flags_irregular_timestamps_and_short_input(scaler):
    from thunes.ml.serving import prepare_input_for_model

    nan = _features()
    nan.iloc[-2, 1] = np.nan
    with pytest.raises(DataError, match="non-finite value in feature 'b' at 2024-01-01 18:00"):
        prepare_input_for_model(nan, COLS, 5, scaler)

    flagged = _features()
    flagged.iloc[-3, flagged.columns.get_loc("gap_flag")] = True
    with pytest.raises(DataError, match="spans a gap"):
        prepare_input_for_model(flagged, COLS, 5, scaler)

    holed = _features(21).drop(index=_features(21).index[-3])
    with pytest.raises(DataError, match="not evenly spaced"):
        prepare_input_for_model(holed, COLS, 5, scaler)

    with pytest.raises(InsufficientData, match="need 5 feature rows"):
        prepare_input_for_model(_features(4), COLS, 5, scaler)


@pytest.mark.ml
def test_fast_latest_window_equals_compute_features(ml_candles):
    from thunes.features import compute_features, get_feature_set
    from thunes.ml.serving import _fast_feature_matrix, prepare_input_for_model

    cols = list(get_feature_set("compact").columns)
    tail = ml_candles.iloc[-350:]

    fast = _fast_feature_matrix(tail, "compact", cols, 16)
    slow = prepare_input_for_model(compute_features(tail, "compact"), cols, 16, None)[0]

    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-7)


@pytest.mark.ml
def test_latest_forecast_refuses_invalid_or_missing_candles(tiny_model, ml_candles):
    from thunes.ml.serving import Forecaster

    _, folder = tiny_model
    fc = Forecaster.load(folder)
    bad = ml_candles.copy()
    bad.iloc[-3, bad.columns.get_loc("low")] = 0.0

    with pytest.raises(DataError, match=re.escape(f"invalid candle at {bad.index[-3]}: OHLC must be")):
        fc.predict_latest(bad)
    with pytest.raises(DataError, match=re.escape(f"not contiguous 1h bars (hole or misalignment before "
                                                  f"{ml_candles.index[-5]})")):
        fc.predict_latest(ml_candles.drop(index=ml_candles.index[-6]))
    with pytest.raises(InsufficientData, match=f"need {fc.warmup + 1} candles"):
        fc.predict_latest(ml_candles.iloc[-fc.warmup:])
