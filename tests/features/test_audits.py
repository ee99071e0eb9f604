"""The look-ahead checker and the leakage audit, case by case: what they catch and what they leave alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.data.samples import load_sample_candles
from thunes.features import check_prefix_invariance, compute_features, get_feature_set
from thunes.features.leakage import audit_leakage


@pytest.fixture(scope="module")
def candles():
    return load_sample_candles("BTC/USDT", "1h", limit=2_500).frame


@pytest.fixture(scope="module")
def feats(candles):
    return compute_features(candles, "compact")


# ---------------------------------------------------------------------------------------- look-ahead
def test_a_centred_window_is_caught_with_column_row_and_values(candles):
    def centred(frame: pd.DataFrame) -> pd.Series:
        return frame["close"].rolling(5, center=True).mean().rename("centred_sma")

    report = check_prefix_invariance(centred, candles.iloc[:600], n_prefixes=4, seed=2)
    assert not report.ok
    v = report.violations[0]
    assert v.column == "centred_sma"
    assert v.row == v.prefix_len - 2  # a 5-row centred window needs 2 rows ahead: the second-last row is the first hit
    assert np.isnan(v.prefix_value) and np.isfinite(v.full_value)
    assert "centred_sma" in report.format()


def test_normalising_with_whole_sample_statistics_is_caught(candles):
    def global_z(frame: pd.DataFrame) -> pd.Series:
        c = frame["close"]
        return ((c - c.mean()) / c.std()).rename("z")

    report = check_prefix_invariance(global_z, candles.iloc[:600], n_prefixes=3, seed=0)
    assert report.bad_columns == ("z",)
    assert report.violations[0].row == 0  # even the first row changes: the statistic saw the future


def test_a_tolerance_admits_rounding_but_not_look_ahead(candles):
    rng = np.random.default_rng(0)

    def jittery(frame: pd.DataFrame) -> pd.Series:
        noise = rng.normal(0.0, 1e-13, len(frame))
        return (frame["close"].rolling(10).mean() * (1 + noise)).rename("jittery")

    assert not check_prefix_invariance(jittery, candles.iloc[:400], n_prefixes=3).ok
    assert check_prefix_invariance(jittery, candles.iloc[:400], n_prefixes=3, rtol=1e-9).ok


def test_functions_that_fail_on_a_prefix_are_reported_not_hidden(candles):
    def needs_all_rows(frame: pd.DataFrame) -> pd.Series:
        if len(frame) < 500:
            raise ValueError("needs the whole history")
        return frame["close"]

    report = check_prefix_invariance(needs_all_rows, candles.iloc[:500], n_prefixes=3, seed=0)
    assert not report.ok
    assert "ValueError" in report.errors[0]


def test_insufficient_data_on_short_prefixes_only_skips_them(candles):
    report = check_prefix_invariance(lambda f: compute_features(f, "default"), candles.iloc[:400],
                                     n_prefixes=20, seed=5, min_rows=50)
    assert report.ok
    assert all(length > get_feature_set("default").warmup for length in report.prefix_lengths)
    assert 0 < len(report.prefix_lengths) < 20 + report.event_prefixes  # the short ones were skipped


def test_checker_arguments_are_validated(candles):
    with pytest.raises(ConfigError):
        check_prefix_invariance(lambda f: f["close"], candles, n_prefixes=0)
    with pytest.raises(InsufficientData):
        check_prefix_invariance(lambda f: f["close"], candles.iloc[:2])
    with pytest.raises(ConfigError, match="returned list"):
        check_prefix_invariance(lambda f: [1, 2], candles.iloc[:50])


# ------------------------------------------------------------------------------------------ leakage
def test_a_feature_copied_from_another_features_future_is_an_exact_match(candles, feats):
    x = feats.drop(columns="gap_flag").iloc[100:].copy()
    x["rsi_ahead"] = x["rsi_14"].shift(-2)  # innocent-looking name is not required: 'ahead' is not flagged by name
    report = audit_leakage(x, candles["close"].iloc[100:], horizon=3)
    hits = [f for f in report.findings if f.column == "rsi_ahead"]
    assert [f.check for f in hits] == ["exact_match"]
    assert "'rsi_14' 2 row(s) ahead" in hits[0].message


def test_periodic_calendar_columns_are_not_mistaken_for_future_copies(candles):
    feats = compute_features(candles, "default", columns=["hour_sin", "hour_cos", "dow_sin", "rsi_14"])
    report = audit_leakage(feats.iloc[50:], candles["close"].iloc[50:], horizon=24)
    assert report.ok, report.format()


def test_scaler_statistics_beyond_the_training_range_are_findings(candles, feats):
    x = feats[["rsi_14", "natr_14"]].iloc[100:]
    close = candles["close"].iloc[100:]
    train_end = x.index[1_000]  # inclusive: 1,001 training rows
    train = x.loc[:train_end]
    minmax = {"feature_names": ["rsi_14", "natr_14"], "min": x.min().to_list(), "max": x.max().to_list()}
    report = audit_leakage(x, close, scaler=minmax, train_end=train_end)
    assert {f.check for f in report.findings} == {"scaler"}
    assert any("exceeds the training maximum" in f.message or "below the training minimum" in f.message
               for f in report.findings)
    too_many = {"feature_names": ["rsi_14"], "mean": [train["rsi_14"].mean()], "n_samples_seen_": len(x)}
    assert "fitted on 2400 rows but the training range has only 1001" in audit_leakage(
        x, close, scaler=too_many, train_end=train_end).format()
    honest = {"feature_names": ["rsi_14", "natr_14"], "mean": train.mean().to_list(), "min": train.min().to_list(),
              "max": train.max().to_list(), "n_samples_seen_": len(train)}
    assert audit_leakage(x, close, scaler=honest, train_end=train_end).ok


def test_the_ml_layers_scaler_is_understood(candles, feats):
    fs_mod = pytest.importorskip("thunes.ml.dataset")
    x = feats[["rsi_14", "natr_14"]].iloc[100:]
    close = candles["close"].iloc[100:]
    good = fs_mod.FeatureScaler.fit(x, slice(0, 1_000))
    bad = fs_mod.FeatureScaler.fit(x)
    assert audit_leakage(x, close, scaler=good, train_end=1_000).ok
    assert not audit_leakage(x, close, scaler=bad, train_end=1_000).ok


def test_scaler_without_train_end_is_noted_not_silently_passed(candles, feats):
    x = feats[["rsi_14"]].iloc[100:]
    report = audit_leakage(x, candles["close"].iloc[100:], scaler={"mean": [50.0], "std": [10.0]})
    assert report.ok
    assert any("train_end" in n for n in report.notes)


def test_leakage_inputs_are_validated(candles, feats):
    with pytest.raises(DataError, match="close has"):
        audit_leakage(feats, candles["close"].iloc[:10])
    with pytest.raises(ConfigError, match="horizon"):
        audit_leakage(feats, candles["close"], horizon=0)
    with pytest.raises(ConfigError, match="cannot read statistics"):
        audit_leakage(feats, candles["close"], scaler=object(), train_end=10)


def test_a_sparse_event_driven_leak_is_found_on_every_seed(candles, btc_1h):
    """An entry on the *next* close crossing the SMA acts only on the rare crossing rows: a prefix ends
    on each row where a signal fires, so every seeded run finds it (random prefixes alone: 24 of 30)."""
    from thunes.features.indicators import sma

    frame = candles.tail(3000)

    def next_close_cross(f):
        s = sma(f["close"], 50)
        nxt = f["close"].shift(-1)
        return pd.DataFrame({"entries": ((nxt > s) & (f["close"] <= s)).fillna(False),
                             "exits": ((nxt < s) & (f["close"] >= s)).fillna(False)}, index=f.index)

    reports = [check_prefix_invariance(next_close_cross, frame, n_prefixes=20, seed=s) for s in range(30)]
    assert all(not r.ok for r in reports)
    r = reports[0]
    assert r.event_rows == (364 if btc_1h.real else 286)  # golden count of signal rows per data source
    assert r.event_prefixes == r.event_rows and "every one of them" in r.guarantee
    assert {v.column for v in r.violations} == {"entries", "exits"}


def test_the_report_states_its_guarantee_and_a_causal_strategy_passes(candles):
    from thunes.strategies.sma_cross import SmaCross

    strat = SmaCross(fast=10, slow=50)

    def signals(f):
        sig = strat.signals(f)
        return pd.DataFrame({"entries": sig.entries, "exits": sig.exits}, index=f.index)

    report = check_prefix_invariance(signals, candles, n_prefixes=5, seed=1)
    assert report.ok and report.event_rows > 10 and report.random_prefixes == 5
    assert "event row(s)" in report.format() and "was the last row of a prefix" in report.format()
