"""Shared ML fixtures: a small candle sample and one tiny model trained once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from thunes.data.samples import load_sample_candles


@pytest.fixture(scope="session")
def ml_candles() -> pd.DataFrame:
    """1,200 BTC/USDT 1h candles (real when ../shared/data is present, synthetic otherwise)."""
    return load_sample_candles("BTC/USDT", "1h", limit=1200).frame


@pytest.fixture(scope="session")
def tiny_options():
    pytest.importorskip("torch")
    from thunes.ml.train import TrainOptions

    return TrainOptions(feature_set="compact", seq_len=8, horizon=4, hidden=8, num_layers=1, epochs=2,
                        batch_size=128, seed=3, dropout=0.0, threads=1)


@pytest.fixture(scope="session")
def tiny_model(ml_candles, tiny_options, tmp_path_factory):
    """``(TrainResult, folder)`` of an LSTM trained on ``ml_candles`` with ``tiny_options``."""
    pytest.importorskip("onnxruntime")
    from thunes.ml.train import train_model

    folder = tmp_path_factory.mktemp("tiny_model")
    result = train_model(ml_candles, tiny_options, symbol="BTC/USDT", timeframe="1h", out_dir=folder)
    return result, folder
