"""The default feature set: 50+ named columns in a fixed order, causal (prefix-invariant), gap-aware."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.data.samples import load_sample_candles
from thunes.features import GAP_COLUMN, check_prefix_invariance, compute_features, gap_flags, get_feature_set


@pytest.fixture(scope="module")
def candles():
    return load_sample_candles("BTC/USDT", "1h", limit=3_000).frame


def test_default_set_has_at_least_50_columns_in_a_fixed_order(candles):
    fs = get_feature_set("default")
    assert len(fs.columns) >= 50
    out = compute_features(candles)
    assert list(out.columns) == [*fs.columns, GAP_COLUMN]
    assert out.attrs["feature_set"] == {"name": "default", "version": fs.version, "hash": fs.hash}
    again = compute_features(candles)
    pd.testing.assert_frame_equal(out, again)  # deterministic, value for value


def test_warmup_rows_are_nan_and_later_rows_are_finite(candles):
    fs = get_feature_set("default")
    out = compute_features(candles)
    body = out.iloc[fs.warmup:][list(fs.columns)].to_numpy()
    assert np.isfinite(body).all()
    assert out.iloc[: fs.warmup][list(fs.columns)].isna().any(axis=1).all()


def test_every_feature_is_prefix_invariant_on_real_data(candles, btc_1h):
    """Appending later rows never changes a value already computed: no feature looks ahead."""
    frame = candles.iloc[-1_500:]
    report = check_prefix_invariance(compute_features, frame, n_prefixes=12, seed=3, min_rows=400)
    assert report.errors == ()
    assert report.violations == (), report.violations[:5]
    # 12 random prefix ends plus one per event row, an end drawn twice counted once: golden per data source.
    assert report.random_prefixes == 12 and len(report.prefix_lengths) == (101 if btc_1h.real else 100)
    assert set(get_feature_set("default").columns) <= set(report.columns)


def test_every_feature_is_prefix_invariant_on_a_second_market_with_holes():
    """DOGE/USDT 5m (real when present) with 25 minutes cut out, so gap_flag is checked as well."""
    sample = load_sample_candles("DOGE/USDT", "5m", limit=2_000)
    candles = sample.frame
    frame = candles.drop(candles.index[1_200:1_205])

    report = check_prefix_invariance(lambda f: compute_features(f, timeframe_ms=300_000), frame, n_prefixes=10,
                                     seed=9, min_rows=300)

    assert report.ok, report.format()
    # 10 random prefix ends plus one per event row, an end drawn twice counted once: golden per data source.
    assert report.random_prefixes == 10 and len(report.prefix_lengths) == (161 if sample.real else 149)
    assert GAP_COLUMN in report.columns
    assert compute_features(frame, timeframe_ms=300_000)[GAP_COLUMN].iloc[1_200]  # the row after the cut


def test_checker_catches_a_feature_that_peeks_at_the_next_bar(candles):
    def leaky(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"next_close": frame["close"].shift(-1)}, index=frame.index)

    report = check_prefix_invariance(leaky, candles.iloc[:500], n_prefixes=5, seed=1)
    assert report.bad_columns == ("next_close",)
    assert report.violations


def test_unknown_column_is_a_clear_error(candles):
    with pytest.raises(ConfigError, match="has no column 'rsi_99'"):
        compute_features(candles, columns=["rsi_99"])


def test_rows_whose_window_spans_a_gap_are_flagged_not_bridged():
    ts = np.arange(100, dtype="int64") * 60_000
    ts[60:] += 5 * 60_000  # five missing minutes before row 60
    flags = gap_flags(ts, 60_000, window=10)
    assert not flags[:60].any()
    assert flags[60:69].all()  # windows of 10 rows that include the jump at row 60
    assert not flags[70:].any()


def test_gap_flag_column_marks_real_gaps(candles):
    holed = candles.drop(candles.index[1_000:1_005])
    out = compute_features(holed, timeframe_ms=3_600_000)
    assert out[GAP_COLUMN].iloc[1_000]
    assert not out[GAP_COLUMN].iloc[-1]


def test_bad_input_names_the_column_and_row(candles):
    broken = candles.iloc[:400].copy()
    broken.iloc[123, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="close.*row 123"):
        compute_features(broken)
    with pytest.raises(DataError, match="duplicate timestamp at row 300"):
        compute_features(pd.concat([candles.iloc[:300], candles.iloc[299:300]]))
    with pytest.raises(InsufficientData, match="warm-up"):
        compute_features(candles.iloc[:20])
