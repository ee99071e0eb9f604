"""Datasets: targets, the purged/embargoed split, the train-only scaler and gap-aware windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thunes.core.candles import candles_frame, ts_ms
from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.ml.dataset import (
    SCALED_ATTR,
    DatasetOptions,
    FeatureScaler,
    build_dataset,
    gap_before,
    gather_windows,
    make_targets,
    temporal_split,
    valid_window_ends,
)

HOUR = 3_600_000


def _candles(n: int, *, drop: tuple[int, ...] = (), seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    ts = np.arange(n, dtype="int64") * HOUR + 1_700_000_000_000 // HOUR * HOUR
    keep = np.setdiff1d(np.arange(n), drop)
    return candles_frame(ts[keep], close[keep], close[keep] * 1.01, close[keep] * 0.99, close[keep],
                         np.ones(keep.size))


def _simple_features(candles: pd.DataFrame) -> pd.DataFrame:
    close = candles["close"]
    ret = np.log(close).diff()
    return pd.DataFrame({"ret1": ret, "ret_sma3": ret.rolling(3).mean(), "level": close / 100.0},
                        index=candles.index)


# ------------------------------------------------------------------------------------------- targets
def test_targets_are_forward_log_return_and_realised_volatility():
    close = pd.Series([100.0, 110.0, 99.0, 99.0])

    t = make_targets(close, horizon=2)

    assert t.target_ret.iloc[0] == pytest.approx(np.log(99 / 100))
    assert t.target_vol.iloc[0] == pytest.approx(np.sqrt(np.log(1.1) ** 2 + np.log(0.9) ** 2))
    assert t.target_ret.iloc[1] == pytest.approx(np.log(99 / 110))
    assert t.target_vol.iloc[1] == pytest.approx(abs(np.log(0.9)))
    assert t.iloc[2:].isna().all().all()


def test_targets_refuse_non_positive_close():
    with pytest.raises(DataError, match="row 2"):
        make_targets(pd.Series([1.0, 2.0, 0.0, 3.0]), horizon=1)


# --------------------------------------------------------------------------------------------- split
def test_split_golden_numbers_with_purge_and_embargo():
    ends = np.arange(100)

    split = temporal_split(ends, seq_len=5, horizon=3, val_frac=0.2, test_frac=0.2, embargo=2)

    assert split.purge == 8  # default: seq_len + horizon
    assert (split.train[0], split.train[-1], split.train.size) == (0, 52, 53)
    assert (split.val[0], split.val[-1], split.val.size) == (62, 72, 11)
    assert (split.test[0], split.test[-1], split.test.size) == (82, 99, 18)
    assert split.purged == 18


def test_split_refuses_a_purge_shorter_than_window_plus_horizon():
    with pytest.raises(ConfigError, match="seq_len \\+ horizon = 42"):
        temporal_split(np.arange(1000), seq_len=32, horizon=10, purge=41)


def test_split_without_training_samples_is_insufficient_data():
    with pytest.raises(InsufficientData, match="no training samples"):
        temporal_split(np.arange(20), seq_len=8, horizon=8, val_frac=0.3, test_frac=0.3)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(200, 2000),
    seq_len=st.integers(1, 40),
    horizon=st.integers(1, 20),
    extra=st.integers(0, 15),
    embargo=st.integers(0, 15),
    val_frac=st.floats(0.05, 0.3),
    test_frac=st.floats(0.05, 0.3),
    stride=st.integers(1, 3),
)
def test_split_blocks_never_share_information(n, seq_len, horizon, extra, embargo, val_frac, test_frac, stride):
    ends = np.arange(seq_len - 1, n * stride, stride)
    split = temporal_split(ends, seq_len=seq_len, horizon=horizon, val_frac=val_frac, test_frac=test_frac,
                           purge=seq_len + horizon + extra, embargo=embargo)
    blocks = [b for b in (split.train, split.val, split.test) if b.size]
    for earlier, later in zip(blocks, blocks[1:]):
        # the last label row of the earlier block comes strictly before the first input row of the later one
        assert earlier[-1] + horizon < later[0] - seq_len + 1
        assert later[0] - earlier[-1] >= split.purge + split.embargo


# -------------------------------------------------------------------------------------------- scaler
def test_scaler_is_fitted_on_training_rows_only():
    candles = _candles(600)
    feats = _simple_features(candles)
    feats.iloc[400:, 2] = 1e6  # a level shift that only validation/test rows contain

    ds = build_dataset(candles, DatasetOptions(seq_len=8, horizon=4, val_frac=0.2, test_frac=0.2),
                       features=feats)

    last = int(ds.split.train[-1])
    assert last < 400
    expected = feats.iloc[:last + 1]  # warm-up NaNs are skipped column by column
    np.testing.assert_allclose(ds.scaler.mean, expected.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ds.scaler.scale, expected.std(ddof=0).to_numpy(), rtol=1e-12)
    assert ds.scaler.feature_names == ("ret1", "ret_sma3", "level")
    assert ds.scaler.fit_end == candles.index[last].isoformat()
    assert ds.scaler.fit_rows == last + 1


def test_scaler_refuses_to_scale_twice_and_checks_column_order():
    feats = _simple_features(_candles(50)).dropna()
    scaler = FeatureScaler.fit(feats)

    scaled = scaler.transform(feats)

    assert scaled.attrs[SCALED_ATTR] == scaler.fingerprint
    np.testing.assert_allclose(scaled.mean().to_numpy(), 0.0, atol=1e-6)
    with pytest.raises(DataError, match="already scaled"):
        scaler.transform(scaled)
    with pytest.raises(DataError, match="out of order: position 0 is 'level'"):
        scaler.transform(feats[["level", "ret1", "ret_sma3"]])
    with pytest.raises(DataError, match="missing \\['ret_sma3'\\]"):
        scaler.transform(feats[["ret1", "level"]])


def test_scaler_round_trips_through_a_dict():
    scaler = FeatureScaler.fit(_simple_features(_candles(50)).dropna())

    again = FeatureScaler.from_dict(scaler.to_dict())

    assert again.feature_names == scaler.feature_names
    np.testing.assert_array_equal(again.mean, scaler.mean)
    assert again.fingerprint == scaler.fingerprint


# ------------------------------------------------------------------------------------------- windows
def test_windows_spanning_a_gap_are_dropped_and_counted():
    # 300 hourly candles with one missing hour: row 150 of the frame follows a hole
    candles = _candles(301, drop=(150,))
    gaps = gap_before(ts_ms(candles), HOUR)
    assert np.flatnonzero(gaps).tolist() == [150]

    ends, counts = valid_window_ends(n_rows=len(candles), seq_len=10, horizon=5,
                                     feature_ok=np.ones(len(candles), bool), gaps=gaps)

    # ends t with t-8 <= 150 <= t+5, i.e. t in [145, 158]: seq_len + horizon - 1 = 14 windows
    assert counts.dropped_gap == 14
    assert not set(range(145, 159)) & set(ends.tolist())
    assert {144, 159} <= set(ends.tolist())
    assert counts.dropped_target == 5 and counts.dropped_warmup == 0
    assert counts.kept == counts.candidates - 19 == len(ends)


def test_gap_flagged_rows_and_warmup_nans_drop_windows():
    n = 60
    feature_ok = np.ones(n, bool)
    feature_ok[:4] = False  # warm-up
    flag = np.zeros(n, bool)
    flag[30] = True

    ends, counts = valid_window_ends(n_rows=n, seq_len=5, horizon=2, feature_ok=feature_ok,
                                     gaps=np.zeros(n, bool), gap_flag=flag)

    assert ends[0] == 8  # first window 4..8 without NaN
    assert not set(range(30, 35)) & set(ends.tolist())  # windows containing row 30
    assert counts.dropped_gap == 5 and counts.dropped_warmup == 4 and counts.dropped_target == 2


def test_build_dataset_windows_match_the_scaled_rows():
    candles = _candles(400, drop=(200,))
    feats = _simple_features(candles)

    ds = build_dataset(candles, DatasetOptions(seq_len=6, horizon=3), features=feats)

    w = ds.windows("train")
    t = int(ds.split.train[10])
    expected = ((feats.iloc[t - 5:t + 1].to_numpy() - ds.scaler.mean) / ds.scaler.scale).astype("float32")
    np.testing.assert_allclose(w[10], expected, rtol=1e-6)
    assert w.shape == (ds.split.train.size, 6, 3)
    assert ds.counts.dropped_gap == 6 + 3 - 1
    assert np.isfinite(ds.target("test")).all()


def test_gather_windows_refuses_out_of_range_ends():
    with pytest.raises(DataError, match="window ends"):
        gather_windows(np.zeros((10, 2)), np.array([2]), seq_len=4)
