"""Where a study's candles come from (the one rule of thunes.data.sources) and how a worker reloads them."""

from __future__ import annotations

import pytest

from thunes.core.errors import ConfigError, InsufficientData
from thunes.optimize._data import load_study_candles
from thunes.optimize.study import StudySpec
from thunes.optimize.worker import spec_candles


def test_an_empty_store_without_sample_files_stops_and_sample_gives_labelled_synthetic_data(tmp_path) -> None:  # noqa: ANN001
    """The rule of thunes.data.sources: auto never studies synthetic candles; --sample does, and says so."""
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    with pytest.raises(InsufficientData, match="thunes data download --symbol ADA/USDT --timeframe 1h"):
        load_study_candles("ADA/USDT", "1h", store_url=url)  # no sample file exists for ADA/USDT

    data = load_study_candles("ADA/USDT", "1h", source="sample", store_url=url)

    assert data.source == "sample" and not data.real and len(data.frame) == 20_000
    assert "SYNTHETIC" in data.description
    assert not (tmp_path / "empty.sqlite").exists()


def test_a_file_study_records_its_path_and_a_worker_reloads_it(tmp_path) -> None:  # noqa: ANN001
    from thunes.data.samples import synthetic_candles
    from thunes.optimize._data import candles_fingerprint

    frame = synthetic_candles("ADA/USDT", "1h", rows=500)
    path = tmp_path / "ada.csv"
    frame.reset_index(names="ts").assign(ts=lambda f: f.ts.map(lambda t: int(t.timestamp() * 1000))).to_csv(
        path, index=False)
    data = load_study_candles("ADA/USDT", "1h", file=path)
    spec = StudySpec(strategy="sma_cross", symbol="ADA/USDT").for_window(data.frame, data.source)

    assert data.source == f"file:{path}"
    assert candles_fingerprint(spec_candles(spec)) == candles_fingerprint(data.frame) == spec.fingerprint


def test_a_study_never_records_the_store_password() -> None:
    spec = StudySpec(strategy="sma_cross", data_source="store:postgresql://bot:***@db/candles", start_ms=0,
                     end_ms=1, fingerprint="0" * 16)

    with pytest.raises(ConfigError, match="stored without its password: give the candle store URL with --store-url"):
        spec_candles(spec)
