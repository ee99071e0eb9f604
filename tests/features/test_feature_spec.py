"""Feature sets as specifications: identity (hash), warm-up, column selection and input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.data.samples import load_sample_candles
from thunes.features import GAP_COLUMN, FeatureSet, compute_features, describe_column, get_feature_set
from thunes.features import _kernels as K
from thunes.features.feature_set import block


@pytest.fixture(scope="module")
def candles():
    return load_sample_candles("BTC/USDT", "1h", limit=1_500).frame


def test_hash_is_a_stable_identity_of_the_definition():
    fs = get_feature_set("default")
    # Golden: changes only when a block, a parameter, the set's version or KERNEL_VERSION changes.
    assert fs.hash == "64eb00b305618863"
    assert get_feature_set("compact").hash == "d8dc138bcd7c1cf8"
    same = FeatureSet(name="default", version=fs.version, blocks=fs.blocks)
    assert same.hash == fs.hash
    tweaked = FeatureSet(name="default", version=fs.version,
                         blocks=tuple(block("rsi", n=15) if b == block("rsi", n=14) else b for b in fs.blocks))
    assert tweaked.hash != fs.hash
    assert FeatureSet(name="default", version=fs.version + 1, blocks=fs.blocks).hash != fs.hash


def test_warmup_is_the_longest_lookback_and_the_first_complete_row(candles):
    fs = get_feature_set("compact")
    assert fs.warmup == 20  # logret_20 needs 20 earlier closes
    out = compute_features(candles, fs)
    cols = list(fs.columns)
    assert out[cols].iloc[fs.warmup].notna().all()
    assert out[cols].iloc[fs.warmup - 1].isna().any()


def test_a_subset_is_returned_in_the_requested_order_with_its_own_warm_up(candles):
    out = compute_features(candles, columns=["rsi_14", "logret_1"])
    assert list(out.columns) == ["rsi_14", "logret_1", GAP_COLUMN]
    full = compute_features(candles)
    pd.testing.assert_series_equal(out["rsi_14"], full["rsi_14"])
    # a short frame is enough for a short-lookback subset, not for the whole set
    short = candles.iloc[:30]
    assert compute_features(short, columns=["rsi_14"])["rsi_14"].notna().sum() == 16
    with pytest.raises(InsufficientData, match="needs more than 99 rows"):
        compute_features(short)


def test_unknown_names_suggest_the_closest_ones(candles):
    with pytest.raises(ConfigError, match="did you mean 'rsi_14'"):
        compute_features(candles, columns=["rsi14"])
    with pytest.raises(ConfigError, match="unknown feature set 'defualt'.*did you mean 'default'"):
        get_feature_set("defualt")
    with pytest.raises(ConfigError, match="more than once"):
        compute_features(candles, columns=["rsi_14", "rsi_14"])
    with pytest.raises(ConfigError, match="unknown feature kind"):
        block("rsx", n=3)


def test_a_set_cannot_produce_a_column_twice():
    with pytest.raises(ConfigError, match="produced twice"):
        FeatureSet(name="x", version=1, blocks=(block("rsi", n=14), block("rsi", n=14)))


def test_describe_column_says_what_it_is():
    assert "Wilder RSI" in describe_column(get_feature_set(), "rsi_14")
    assert "n=50" in describe_column(get_feature_set(), "fib_r618_50")


def test_bad_candles_are_refused_naming_column_and_row(candles):
    unsorted = candles.iloc[[0, 2, 1, *range(3, 300)]]
    with pytest.raises(DataError, match="unsorted timestamp at row 2"):
        compute_features(unsorted)
    negative = candles.iloc[:300].copy()
    negative.iloc[150, negative.columns.get_loc("low")] = 0.0
    with pytest.raises(DataError, match="non-positive price 0.0 in column 'low' at row 150"):
        compute_features(negative)
    inf = candles.iloc[:300].copy()
    inf.iloc[42, inf.columns.get_loc("volume")] = np.inf
    with pytest.raises(DataError, match="'volume' at row 42"):
        compute_features(inf)


def test_fibonacci_levels_follow_the_swing_direction():
    # an up-swing from 100 to 200 over 50 bars: retracement 61.8% sits at 200 - 61.8 = 138.2
    n = 60
    ts = np.arange(n, dtype="int64") * 3_600_000
    close = np.linspace(100.0, 200.0, n)
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0},
                         index=pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True), name="ts"))
    out = compute_features(frame, columns=["fib_dir_50", "fib_r618_50", "fib_e1618_50"])
    last = out.iloc[-1]
    hi, lo = close[-1], close[-50]
    assert last["fib_dir_50"] == 1.0
    assert last["fib_r618_50"] == pytest.approx((hi - (hi - 0.618 * (hi - lo))) / hi)
    assert last["fib_e1618_50"] == pytest.approx((hi - (lo + 1.618 * (hi - lo))) / hi)
    falling = frame.iloc[::-1].copy()
    falling.index = frame.index
    assert compute_features(falling, columns=["fib_dir_50"])["fib_dir_50"].iloc[-1] == -1.0


def test_values_do_not_depend_on_the_number_of_worker_threads(candles):
    serial = compute_features(candles, workers=1)
    threaded = compute_features(candles, workers=3)
    pd.testing.assert_frame_equal(serial, threaded, check_exact=True)
    with pytest.raises(ConfigError, match="workers must be an integer >= 1, got 0"):
        compute_features(candles, workers=0)


def test_calendar_columns_are_exact_for_whole_minutes_and_for_odd_timestamps():
    # 2024-01-01 was a Monday (weekday 0); 06:00 is a quarter of the day; 06:00:00.5 is off the minute
    ts = np.array([1_704_088_800_000, 1_704_088_800_500], dtype="int64")
    out = K.calendar_1d(ts, np.empty((2, 4), order="F"))
    np.testing.assert_allclose(out[0], [1.0, 0.0, 0.0, 1.0], atol=1e-15)
    a = 2 * np.pi * (21_600_500 / 86_400_000)
    assert (out[1, 0], out[1, 1]) == (np.sin(a), np.cos(a))
