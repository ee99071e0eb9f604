"""The one rule for where candles come from (:mod:`thunes.data.sources`).

``--csv FILE`` reads that file. ``auto``: the candle store (resampled from the coarsest finer stored timeframe
when the one asked is not stored), else the real sample files, else an error naming what to run - never
synthetic candles. ``store``: the store only. ``sample``: the real sample files, synthetic candles labelled
SYNTHETIC where there is none. ``synthetic``: generated candles. ``since``/``until`` cut [since, until).
"""

from __future__ import annotations

import pandas as pd
import pytest

from thunes.config import DataSettings
from thunes.core.candles import ts_ms
from thunes.core.errors import DataError, InsufficientData
from thunes.core.timeframes import index_ms, resample, utc_ms
from thunes.data.sources import CandleQuery, Origin, load_candles
from thunes.data.store import store_from_settings
from thunes.data.synthetic import generate_candles

MINUTES = generate_candles(6_000, timeframe="1m", start="2024-01-01", seed=11)


OHLCV = ("open", "high", "low", "close", "volume")


def _write_sample(folder, name, frame):
    table = pd.DataFrame({"ts": ts_ms(frame), **{c: frame[c].to_numpy() for c in OHLCV}})
    table.to_csv(folder / name, index=False, compression="gzip")


def _foo(**kw) -> CandleQuery:
    return CandleQuery(symbol="FOO/USDT", **kw)


@pytest.fixture()
def samples(tmp_path):
    """A sample folder with real-looking FOO/USDT files at 1m and 5m."""
    folder = tmp_path / "samples"
    folder.mkdir()
    _write_sample(folder, "binance_FOOUSDT_1m.csv.gz", MINUTES)
    _write_sample(folder, "binance_FOOUSDT_5m.csv.gz", resample(MINUTES, "5m"))
    return folder


@pytest.fixture()
def no_samples(tmp_path, monkeypatch):
    """No sample file anywhere (what a fresh clone without ../shared sees)."""
    folder = tmp_path / "no-samples"
    folder.mkdir()
    monkeypatch.setenv("THUNES_SAMPLE_DIR", str(folder))
    return folder


def _settings(tmp_path, sample_dir=None) -> DataSettings:
    return DataSettings(url=f"sqlite:///{tmp_path}/candles.sqlite", cache_dir=tmp_path / "cache",
                        sample_dir=sample_dir)


def _store(data: DataSettings, timeframe: str, frame: pd.DataFrame, symbol: str = "FOO/USDT") -> None:
    with store_from_settings(data) as store:
        store.insert(symbol, timeframe, frame)


def test_auto_takes_the_store_before_the_sample_files(tmp_path, samples):
    data = _settings(tmp_path, samples)
    stored = resample(MINUTES, "1h").iloc[:50]
    _store(data, "1h", stored)

    loaded = load_candles(_foo(timeframe="1h"), data)

    assert loaded.origin is Origin.STORE and loaded.real
    assert loaded.source == f"store sqlite:///{tmp_path}/candles.sqlite"
    assert index_ms(loaded.frame.index).tolist() == index_ms(stored.index).tolist()


def test_a_timeframe_not_stored_is_resampled_from_the_coarsest_finer_stored_one(tmp_path, no_samples):
    data = _settings(tmp_path)
    _store(data, "1m", MINUTES)
    _store(data, "5m", resample(MINUTES, "5m"))

    loaded = load_candles(_foo(timeframe="30m", source="store"), data)

    assert loaded.origin is Origin.STORE
    assert loaded.source.endswith(" 5m resampled to 30m")
    assert len(loaded.frame) == 6_000 // 30
    assert loaded.frame["close"].tolist() == resample(MINUTES, "30m")["close"].tolist()


def test_auto_falls_back_to_the_real_sample_files_and_says_so_without_creating_a_store(tmp_path, samples):
    data = _settings(tmp_path, samples)

    loaded = load_candles(_foo(timeframe="1h"), data)

    assert loaded.origin is Origin.SAMPLE and loaded.real
    assert loaded.source.startswith("sample ") and loaded.source.endswith(
        "binance_FOOUSDT_5m.csv.gz resampled to 1h (real; nothing stored for this series)")
    assert len(loaded.frame) == 100
    assert not (tmp_path / "candles.sqlite").exists()  # looking did not create an empty store


def test_auto_never_gives_synthetic_candles_it_names_what_to_run(tmp_path, no_samples):
    with pytest.raises(InsufficientData) as err:
        load_candles(_foo(timeframe="1h"), _settings(tmp_path))

    message = str(err.value)
    assert "\n" not in message
    assert "thunes data download --symbol FOO/USDT --timeframe 1h" in message
    assert "thunes data import FILE --symbol FOO/USDT --timeframe 1h" in message
    assert "--sample" in message and "--source synthetic" in message


def test_sample_without_real_files_gives_synthetic_candles_labelled_synthetic(tmp_path, no_samples):
    loaded = load_candles(_foo(timeframe="1h", source="sample"), _settings(tmp_path))

    assert not loaded.real and loaded.origin is Origin.SYNTHETIC
    assert "SYNTHETIC" in loaded.source
    assert len(loaded.frame) == 20_000


def test_sample_skips_the_store(tmp_path, samples):
    data = _settings(tmp_path, samples)
    _store(data, "1h", resample(MINUTES, "1h").iloc[:10])

    loaded = load_candles(_foo(timeframe="1h", source="sample"), data)

    assert loaded.origin is Origin.SAMPLE and len(loaded.frame) == 100


def test_store_only_refuses_an_empty_store_even_with_sample_files(tmp_path, samples):
    with pytest.raises(InsufficientData, match=r"has no FOO/USDT 1h candles .*thunes data download"):
        load_candles(_foo(timeframe="1h", source="store"), _settings(tmp_path, samples))


def test_synthetic_gives_generated_candles_even_where_real_ones_exist(tmp_path, samples):
    loaded = load_candles(_foo(timeframe="1h", source="synthetic", synthetic_rows=300),
                          _settings(tmp_path, samples))

    assert not loaded.real and loaded.origin is Origin.SYNTHETIC and len(loaded.frame) == 300
    assert loaded.source.startswith("SYNTHETIC")


def test_a_file_is_read_whatever_the_source_would_say(tmp_path, no_samples):
    path = tmp_path / "candles.csv"
    hours = resample(MINUTES, "1h")
    pd.DataFrame({"ts": ts_ms(hours), **{c: hours[c].to_numpy() for c in OHLCV}}).to_csv(path, index=False)

    loaded = load_candles(_foo(timeframe="1h", file=path, until="2024-01-02"),
                          _settings(tmp_path))

    assert loaded.origin is Origin.FILE and loaded.source == f"file {path}"
    assert len(loaded.frame) == 24


def test_since_and_until_keep_exactly_since_to_until_exclusive_on_the_index_pandas_builds(tmp_path, samples):
    """pandas 3 builds microsecond indexes (pandas 2: nanoseconds): the cut reads epoch ms via index_ms."""
    query = _foo(timeframe="5m", since="2024-01-01T02:00", until="2024-01-02")

    loaded = load_candles(query, _settings(tmp_path, samples))

    stamps = index_ms(loaded.frame.index)
    assert stamps[0] == utc_ms("2024-01-01T02:00")
    assert stamps[-1] == utc_ms("2024-01-02") - 5 * 60_000
    assert len(stamps) == 22 * 12


def test_a_range_with_no_candles_and_an_unknown_source_are_errors(tmp_path, samples):
    data = _settings(tmp_path, samples)
    with pytest.raises(InsufficientData, match="between 2030-01-01 and the end"):
        load_candles(_foo(timeframe="1h", since="2030-01-01"), data)
    with pytest.raises(DataError, match="unknown candle source 'web'"):
        load_candles(_foo(timeframe="1h", source="web"), data)  # type: ignore[arg-type]


def test_a_window_resampled_from_a_finer_store_holds_whole_bars(tmp_path, no_samples):
    """since/until inside a 30m bar: the bars kept are built from all their 5m candles, as in the full one."""
    data = _settings(tmp_path)
    _store(data, "5m", resample(MINUTES, "5m"))
    full = load_candles(_foo(timeframe="30m"), data).frame

    cut = load_candles(_foo(timeframe="30m", since="2024-01-01T01:10", until="2024-01-01T03:20"), data).frame

    assert [str(t.time()) for t in cut.index] == ["01:30:00", "02:00:00", "02:30:00", "03:00:00"]
    pd.testing.assert_frame_equal(cut, full.loc[cut.index], check_freq=False)
