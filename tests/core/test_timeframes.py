import numpy as np
import pandas as pd
import pytest

from thunes.core import DataError, align_ms, parse_timeframe, resample, timeframe_seconds
from thunes.core.candles import candles_frame


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("1m", 60), ("5m", 300), ("1h", 3600), ("4h", 14400), ("1d", 86400), ("1w", 604800)],
)
def test_parse_and_format_round_trip(text, seconds):
    tf = parse_timeframe(text)
    assert str(tf) == text
    assert timeframe_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["", "0m", "1x", "m1", "1.5h", "-1h"])
def test_invalid_timeframes_are_clear_errors(bad):
    with pytest.raises(DataError, match="invalid timeframe"):
        parse_timeframe(bad)


def test_align_floors_to_candle_open():
    ts = pd.Timestamp("2024-03-05 13:47:12", tz="UTC").value // 1_000_000
    assert align_ms(ts, "1h") == pd.Timestamp("2024-03-05 13:00", tz="UTC").value // 1_000_000
    assert align_ms(ts, "15m") == pd.Timestamp("2024-03-05 13:45", tz="UTC").value // 1_000_000
    # Binance weeks start on Monday; 2024-03-04 is a Monday.
    assert align_ms(ts, "1w") == pd.Timestamp("2024-03-04", tz="UTC").value // 1_000_000
    assert align_ms(ts, "1M") == pd.Timestamp("2024-03-01", tz="UTC").value // 1_000_000


def test_resample_aggregates_ohlcv_and_keeps_gaps_visible():
    ts = np.array([0, 60_000, 120_000, 180_000, 300_000 + 3_600_000], dtype="int64")
    frame = candles_frame(ts, [1, 2, 3, 4, 9], [5, 6, 7, 8, 9], [0.5, 1, 2, 3, 9], [2, 3, 4, 5, 9], [1, 1, 1, 1, 1])
    out = resample(frame, "5m", drop_incomplete_last=False)
    assert list(out["open"]) == [1, 9]
    assert list(out["high"]) == [8, 9]
    assert list(out["low"]) == [0.5, 9]
    assert list(out["close"]) == [5, 9]
    assert list(out["volume"]) == [4, 1]
    assert len(out) == 2  # the empty hour in between is not invented
    # By default the trailing bucket that the source does not cover completely (still open) is dropped.
    assert len(resample(frame, "5m")) == 1


def test_resample_of_real_5m_matches_real_1h(sample_dir):
    if sample_dir is None:
        pytest.skip("needs ../shared/data (ETHUSDT 5m and 1h are aggregations of each other)")
    five = pd.read_csv(sample_dir / "binance_ETHUSDT_5m.csv.gz")
    hour = pd.read_csv(sample_dir / "binance_ETHUSDT_1h.csv.gz")
    f5 = candles_frame(five.ts, five.open, five.high, five.low, five.close, five.volume)
    f1 = candles_frame(hour.ts, hour.open, hour.high, hour.low, hour.close, hour.volume)
    out = resample(f5, "1h")
    assert len(out) == len(f1)
    np.testing.assert_array_equal(out[["open", "high", "low", "close"]].to_numpy(), f1[["open", "high", "low", "close"]].to_numpy())
    np.testing.assert_allclose(out["volume"].to_numpy(), f1["volume"].to_numpy(), rtol=1e-9)
