"""A feature set streamed one candle at a time equals :func:`compute_features`: every column of the
compact and the default sets, on real candles with a hole, and after a restart from saved state."""

from __future__ import annotations

import numpy as np
import pytest

from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError
from thunes.data.samples import load_sample_candles
from thunes.features.feature_set import GAP_COLUMN, compute_features, get_feature_set
from thunes.features.streaming_set import FEATURE_ATOL, FEATURE_TOLERANCE, STREAMING_KINDS, StreamingFeatures

HOUR = 3_600_000
OHLCV = ["open", "high", "low", "close", "volume"]
# Columns whose streamed value is a re-summed window where the batch keeps running sums: within the documented
# tolerance (FEATURE_TOLERANCE relative or FEATURE_ATOL absolute).
# Every other column (recurrences, per-bar values, extremes, lags, CCI, calendar) must be equal bit for bit.
SUMMED = ("sma_dist", "wma_dist", "bb_", "vol_cc", "zscore", "volume_ratio", "obv_flow", "vwap_dist", "mfi",
          "vol_parkinson", "vol_gk", "ret_")


@pytest.fixture(scope="module")
def candles():
    frame = load_sample_candles("BTC/USDT", "1h", limit=1200).frame
    return frame.drop(frame.index[600:604])  # a 4-hour hole


def _compare(streamed: np.ndarray, batch, columns) -> None:
    for j, col in enumerate(columns):
        s, b = streamed[:, j], batch[col].to_numpy(dtype="float64")
        np.testing.assert_array_equal(np.isnan(s), np.isnan(b), err_msg=f"{col}: warm-up differs")
        if any(part in col for part in SUMMED):
            np.testing.assert_allclose(s, b, rtol=FEATURE_TOLERANCE, atol=FEATURE_ATOL, err_msg=col)
        else:
            np.testing.assert_array_equal(s, b, err_msg=col)
    np.testing.assert_array_equal(streamed[:, -1].astype(bool), batch[GAP_COLUMN].to_numpy())


@pytest.mark.parametrize("fs", [get_feature_set("compact"), get_feature_set("default")], ids=["compact", "default"])
def test_streamed_features_equal_compute_features_on_real_candles_across_a_gap(candles, fs):
    # Act
    streamed = StreamingFeatures(fs, timeframe_ms=HOUR).feed(ts_ms(candles), candles[OHLCV].to_numpy())
    # Assert
    batch = compute_features(candles, fs, timeframe_ms=HOUR)
    _compare(streamed, batch, fs.columns)
    assert len(fs.columns) == (13 if fs.name == "compact" else 69)


def test_the_stream_needs_no_more_than_its_tail_so_a_long_run_stays_equal(candles):
    """The tail buffer is shifted many times over 1,196 candles: the values never depend on where it sits."""
    fs = get_feature_set("compact")
    a = StreamingFeatures(fs, timeframe_ms=HOUR)
    rows = np.array([a.update(int(t), *r).copy() for t, r in zip(ts_ms(candles), candles[OHLCV].to_numpy())])
    b = StreamingFeatures(fs, timeframe_ms=HOUR).feed(ts_ms(candles), candles[OHLCV].to_numpy())
    np.testing.assert_array_equal(rows, b)
    assert a._tail.ts.size < 300  # a small buffer, not the history


def test_every_block_kind_streams_and_a_kind_without_a_streaming_form_is_refused_by_name(monkeypatch):
    from thunes.features import feature_set, streaming_set

    assert set(STREAMING_KINDS) == set(feature_set._KINDS)
    monkeypatch.delitem(streaming_set._BUILDERS, "adx")  # as a kind added later without a streaming form
    with pytest.raises(ConfigError, match="no streaming form yet: adx"):
        StreamingFeatures("default", timeframe_ms=HOUR)


@pytest.mark.parametrize("cut", [50, 700])
def test_a_restart_from_saved_state_continues_bit_for_bit(candles, cut):
    """Saved after ``cut`` candles (inside the warm-up, or after the hole), restored in a new process."""
    import json

    # Arrange
    ts, values = ts_ms(candles), candles[OHLCV].to_numpy()
    whole = StreamingFeatures(get_feature_set("default"), timeframe_ms=HOUR).feed(ts, values)
    first = StreamingFeatures(get_feature_set("default"), timeframe_ms=HOUR)
    head = first.feed(ts[:cut], values[:cut])
    saved = json.loads(json.dumps(first.save()))
    # Act
    second = StreamingFeatures(get_feature_set("default"), timeframe_ms=HOUR)
    second.restore(saved)
    tail = second.feed(ts[cut:], values[cut:])
    # Assert
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)


def test_a_saved_state_of_another_feature_set_is_refused(candles):
    saved = StreamingFeatures("compact", timeframe_ms=HOUR).save()
    with pytest.raises(ConfigError, match="another feature set"):
        StreamingFeatures(get_feature_set("default"), timeframe_ms=HOUR).restore(saved)


def test_a_candle_that_is_not_newer_is_refused_and_leaves_the_stream_unchanged(candles):
    from thunes.core.errors import DataError

    ts, values = ts_ms(candles), candles[OHLCV].to_numpy()
    stream = StreamingFeatures("compact", timeframe_ms=HOUR)
    stream.feed(ts[:100], values[:100])
    before = stream.save()
    with pytest.raises(DataError, match="not after the last one"):
        stream.update(int(ts[99]), *values[99])
    assert stream.save() == before
