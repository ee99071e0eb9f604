"""The leakage audit finds each kind of leak and stays quiet on causal features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thunes.data.samples import load_sample_candles
from thunes.features import compute_features
from thunes.features.leakage import audit_leakage


def _data(rows: int = 2_000):
    candles = load_sample_candles("BTC/USDT", "1h", limit=rows).frame
    return candles, compute_features(candles)


def test_causal_default_features_have_no_finding():
    candles, feats = _data()
    report = audit_leakage(feats.iloc[200:], candles["close"].iloc[200:], horizon=5)
    assert report.ok, report.to_text()


def test_each_kind_of_leak_is_found():
    candles, feats = _data()
    close = candles["close"]
    leaky = pd.DataFrame({
        "rsi_14": feats["rsi_14"],
        "next_close": close.shift(-1),                                 # name + exact match
        "tomorrow": close.shift(-2),                                   # exact match, innocent name
        "peek": (close.shift(-1) / close - 1) * 3 + 0.001,             # correlation 1 with the next return
    }).iloc[200:]
    report = audit_leakage(leaky, close.iloc[200:], horizon=3)
    found = {(f.check, f.column) for f in report.findings}
    assert ("name", "next_close") in found
    assert ("exact_match", "next_close") in found
    assert ("exact_match", "tomorrow") in found
    assert ("correlation", "peek") in found
    assert not any(col == "rsi_14" for _, col in found)
    assert "finding" in report.to_text()


def test_a_scaler_fitted_on_all_rows_is_caught_and_a_train_only_one_is_not():
    candles, feats = _data()
    x = feats[["rsi_14"]].iloc[200:].reset_index(drop=True)
    close = candles["close"].iloc[200:].reset_index(drop=True)
    train_end = 1_000
    train = x.iloc[:train_end]
    good = {"feature_names": ["rsi_14"], "mean": [train["rsi_14"].mean()], "scale": [train["rsi_14"].std(ddof=0)]}
    bad = {"feature_names": ["rsi_14"], "mean": [x["rsi_14"].mean()], "scale": [x["rsi_14"].std(ddof=0)]}
    assert audit_leakage(x, close, scaler=good, train_end=train_end).ok
    report = audit_leakage(x, close, scaler=bad, train_end=train_end)
    assert [f.check for f in report.findings] == ["scaler"]
    assert np.isfinite(report.rows)
