"""Where a study's candles come from: the store when it has them, else the samples, said in one line."""

from __future__ import annotations

import pytest

from thunes.core.errors import ConfigError
from thunes.optimize._data import load_study_candles
from thunes.optimize.study import StudySpec
from thunes.optimize.worker import spec_candles


def test_an_empty_store_falls_back_to_synthetic_data_and_says_how_to_get_real_candles(tmp_path) -> None:  # noqa: ANN001
    # No sample file exists for ADA/USDT: a fresh checkout with an empty store gets synthetic candles.
    data = load_study_candles("ADA/USDT", "1h", store_url=f"sqlite:///{tmp_path}/empty.sqlite")

    assert data.source == "sample" and len(data.frame) == 20_000
    assert data.description.startswith("SYNTHETIC data (no sample file and no candles in the store; for real "
                                       "candles run `thunes data import --sample ADA/USDT --timeframe 1h`")
    assert not (tmp_path / "empty.sqlite").exists()


def test_a_study_never_records_the_store_password() -> None:
    spec = StudySpec(strategy="sma_cross", data_source="store:postgresql://bot:***@db/candles", start_ms=0,
                     end_ms=1, fingerprint="0" * 16)

    with pytest.raises(ConfigError, match="stored without its password: give the candle store URL with --store-url"):
        spec_candles(spec)
