"""Sample data: a timeframe without its own file is built from a finer real file, never silently synthetic."""

from __future__ import annotations

import pandas as pd
import pytest

from thunes.core.candles import ts_ms
from thunes.core.timeframes import resample
from thunes.data.samples import finer_sample_file, load_sample_candles
from thunes.data.synthetic import generate_candles


def _write(folder, name, frame):
    pd.DataFrame({"ts": ts_ms(frame), **{c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}}
                 ).to_csv(folder / name, index=False, compression="gzip")


@pytest.fixture()
def folder(tmp_path):
    one_minute = generate_candles(3_000, timeframe="1m", start="2024-01-01", seed=3)
    _write(tmp_path, "binance_FOOUSDT_1m.csv.gz", one_minute)
    _write(tmp_path, "binance_FOOUSDT_5m.csv.gz", resample(one_minute, "5m"))
    return tmp_path


def test_a_missing_timeframe_is_resampled_from_the_coarsest_finer_file(folder):
    loaded = load_sample_candles("FOO/USDT", "30m", sample_dir=folder)

    assert loaded.real
    assert loaded.source.endswith("binance_FOOUSDT_5m.csv.gz resampled to 30m")
    five = load_sample_candles("FOO/USDT", "5m", sample_dir=folder).frame
    pd.testing.assert_frame_equal(loaded.frame, resample(five, "30m"))
    assert len(loaded.frame) == 3_000 // 30


def test_limit_keeps_the_newest_resampled_rows(folder):
    full = load_sample_candles("FOO/USDT", "1h", sample_dir=folder).frame
    tail = load_sample_candles("FOO/USDT", "1h", sample_dir=folder, limit=10).frame
    pd.testing.assert_frame_equal(tail, full.iloc[-10:])


def test_timeframes_no_file_divides_fall_back_to_synthetic_and_say_so(folder):
    assert finer_sample_file("FOO/USDT", "1M", sample_dir=folder) is None  # calendar months: not built
    assert finer_sample_file("FOO/USDT", "1m", sample_dir=folder) is None  # nothing finer than 1m
    assert finer_sample_file("BAR/USDT", "1h", sample_dir=folder) is None  # another symbol
    loaded = load_sample_candles("BAR/USDT", "1h", sample_dir=folder, synthetic_rows=50)
    assert not loaded.real and loaded.source.startswith("synthetic(") and len(loaded.frame) == 50
