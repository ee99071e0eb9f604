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


def test_noisy_leaks_are_found_by_their_implausible_predictive_power():
    """Rank IC above 0.2 with the next return (real features stay under 0.1): the next return plus noise
    (correlation 0.9, under the 0.95 correlation rule), its sign, and the next close z-scored with
    whole-series statistics (a level: its change is the next price step) were all missed before."""
    candles, feats = _data(6_000)
    close = candles["close"]
    nxt = np.log(close.shift(-1) / close)
    rng = np.random.default_rng(0)
    leaky = pd.DataFrame({
        "rsi_14": feats["rsi_14"],
        "alpha": nxt + rng.normal(0, nxt.std() * 0.5, len(nxt)),
        "beta": np.sign(nxt),
        "gamma": (close.shift(-1) - close.mean()) / close.std(),
    }).iloc[200:]
    assert leaky["alpha"].corr(nxt.iloc[200:]) < 0.95
    report = audit_leakage(leaky, close.iloc[200:])
    found = {f.column: f for f in report.findings}
    assert set(found) == {"alpha", "beta", "gamma"}, report.format()
    assert all(f.check == "predictive_power" for f in found.values())
    assert "rank IC +0." in found["beta"].message and "over 5799 rows" in found["beta"].message
    assert "change from the previous row" in found["gamma"].message


def test_no_default_feature_has_implausible_predictive_power_on_1h_or_5m():
    for timeframe in ("1h", "5m"):
        candles = load_sample_candles("BTC/USDT", timeframe, limit=20_000).frame
        feats = compute_features(candles).iloc[200:]
        report = audit_leakage(feats, candles["close"].iloc[200:], horizon=3)
        assert report.ok, report.format()


def test_a_recomputable_column_built_from_later_rows_fails_the_truncation_test():
    candles, feats = _data(1_500)
    good = feats[["rsi_14", "sma_dist_20"]].copy()
    bad = good.copy()
    # sma_dist_20 computed with a centred window: every value uses the next 10 rows.
    bad["sma_dist_20"] = candles["close"] / candles["close"].rolling(20, center=True).mean() - 1
    assert audit_leakage(good, candles["close"], candles=candles).ok
    report = audit_leakage(bad, candles["close"], candles=candles)
    [finding] = [f for f in report.findings if f.check == "truncation"]
    assert finding.column == "sma_dist_20" and "recomputed from the candles up to row" in finding.message
    assert any("truncation test: 2 recomputable column(s)" in n for n in report.notes)


def test_short_samples_raise_no_chance_finding():
    """On 280 rows an IC of 0.2 is within chance for 10-bar returns: the rule also wants 5 standard errors."""
    from thunes.data.synthetic import generate_candles

    for seed in range(5):
        candles = generate_candles(400, timeframe="1h", seed=seed)
        report = audit_leakage(compute_features(candles).iloc[120:], candles["close"].iloc[120:], horizon=10)
        assert report.ok, report.format()
