"""Indicator wrappers: golden values, input validation, index restoration, 2-D sweeps, causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.data.samples import load_sample_candles
from thunes.features import _kernels as K
from thunes.features import check_prefix_invariance
from thunes.features import indicators as ind


@pytest.fixture(scope="module")
def candles():
    return load_sample_candles("BTC/USDT", "1h", limit=3_000).frame


# ------------------------------------------------------------------------------------------ golden
def test_sma_ema_wma_golden_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_allclose(ind.sma(x, 3), [np.nan, np.nan, 2.0, 3.0, 4.0, 5.0])
    # EMA seeded with the SMA of the first 3 values, then alpha = 2/(3+1) = 0.5
    np.testing.assert_allclose(ind.ema(x, 3), [np.nan, np.nan, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(ind.ema(np.array([2.0, 4.0, 6.0, 10.0]), 3), [np.nan, np.nan, 4.0, 7.0])
    # WMA(3) of 1,2,3 = (1*1 + 2*2 + 3*3) / 6 = 14/6
    np.testing.assert_allclose(ind.wma(x, 3)[2:4], [14 / 6, 20 / 6])


def test_rsi_golden_values():
    close = np.array([10.0, 11.0, 10.0, 12.0, 12.0])
    out = ind.rsi(close, 2)
    # first value at row 2: gains (1, 0) / 2 = 0.5, losses (0, 1) / 2 = 0.5 -> 50
    assert np.isnan(out[:2]).all()
    assert out[2] == pytest.approx(50.0)
    # row 3: gain = (0.5*1 + 2)/2 = 1.25, loss = (0.5*1 + 0)/2 = 0.25 -> 100*1.25/1.5
    assert out[3] == pytest.approx(100 * 1.25 / 1.5)
    # a flat market (nothing moved) gives 0, as TA-Lib does
    assert ind.rsi(np.full(20, 5.0), 14)[-1] == 0.0


def test_true_range_atr_and_bollinger_golden_values():
    high = np.array([10.0, 12.0, 11.0, 15.0])
    low = np.array([9.0, 10.0, 8.0, 13.0])
    close = np.array([9.5, 11.0, 9.0, 14.0])
    np.testing.assert_allclose(ind.true_range(high, low, close), [np.nan, 2.5, 3.0, 6.0])
    atr = ind.atr(high, low, close, 2)
    np.testing.assert_allclose(atr, [np.nan, np.nan, 2.75, (2.75 + 6.0) / 2])
    upper, mid, lower = ind.bollinger(np.array([1.0, 2.0, 3.0]), 3, 2.0)  # TA-Lib's order
    sd = np.std([1.0, 2.0, 3.0])  # population, as TA-Lib
    assert (mid[2], upper[2], lower[2]) == pytest.approx((2.0, 2.0 + 2 * sd, 2.0 - 2 * sd))


def test_bollinger_has_one_order_for_features_and_strategies():
    """Features and strategies share one definition: Bands(upper, middle, lower), TA-Lib's order."""
    from thunes.strategies._indicators import bollinger as strategy_bollinger

    close = pd.Series(np.linspace(1.0, 2.0, 30) + np.sin(np.arange(30)))
    a, b = ind.bollinger(close, 5, 2.0), strategy_bollinger(close, 5, 2.0)
    assert a._fields == b._fields == ("upper", "middle", "lower")
    for x, y in zip(a, b):
        pd.testing.assert_series_equal(x, y)
    assert (a.upper.dropna() >= a.middle.dropna()).all() and (a.middle.dropna() >= a.lower.dropna()).all()


def test_macd_starts_where_talib_starts():
    x = np.linspace(100, 200, 60)
    line, signal, hist = ind.macd(x, 12, 26, 9)
    first = 26 + 9 - 2
    assert np.isnan(line[:first]).all() and not np.isnan(line[first:]).any()
    np.testing.assert_allclose(hist[first:], line[first:] - signal[first:])


def test_rolling_moments_match_pandas(candles):
    r = np.diff(np.log(candles["close"].to_numpy()))
    s = pd.Series(r)
    np.testing.assert_allclose(ind.rolling_skew(r, 30), s.rolling(30).skew(), atol=1e-8)
    np.testing.assert_allclose(ind.rolling_kurt(r, 30), s.rolling(30).kurt(), atol=1e-7)
    np.testing.assert_allclose(ind.rolling_std(r, 30, ddof=1), s.rolling(30).std(), rtol=1e-9)
    np.testing.assert_allclose(ind.zscore(r, 30), (s - s.rolling(30).mean()) / s.rolling(30).std(ddof=0),
                               rtol=1e-7, atol=1e-9)


def test_volatility_estimators_match_their_formulas(candles):
    o, h, lo, c, v = (candles[k] for k in ("open", "high", "low", "close", "volume"))
    park = np.sqrt((np.log(h / lo) ** 2).rolling(20).mean() / (4 * np.log(2)))
    np.testing.assert_allclose(ind.parkinson_vol(h, lo, 20), park, rtol=1e-9)
    gk = np.sqrt((0.5 * np.log(h / lo) ** 2 - (2 * np.log(2) - 1) * np.log(c / o) ** 2).rolling(20).mean())
    np.testing.assert_allclose(ind.garman_klass_vol(o, h, lo, c, 20), gk, rtol=1e-9)
    cc = np.log(c).diff().rolling(20).std()
    np.testing.assert_allclose(ind.close_to_close_vol(c, 20), cc, rtol=1e-9)
    tp = (h + lo + c) / 3
    np.testing.assert_allclose(ind.vwap(h, lo, c, v, 20), (tp * v).rolling(20).sum() / v.rolling(20).sum(),
                               rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(5, 200), elements=st.floats(1.0, 1e6)), st.integers(1, 5))
def test_rolling_std_max_min_agree_with_numpy_on_any_series(x, n):
    out_std = ind.rolling_std(x, n)
    out_max = ind.rolling_max(x, n)
    out_min = ind.rolling_min(x, n)
    for t in range(n - 1, x.size):
        window = x[t - n + 1: t + 1]
        assert out_max[t] == window.max()
        assert out_min[t] == window.min()
        assert out_std[t] == pytest.approx(window.std(), rel=1e-7, abs=1e-9 * window.max())


def test_rolling_extremes_match_brute_force_on_trends_plateaus_and_ties():
    # trends make the extreme leave the window every row; plateaus make ties (the latest row wins)
    x = np.concatenate([np.arange(100.0), np.full(30, 99.0), np.arange(99.0, 40.0, -1.0),
                        np.round(np.sin(np.arange(200) / 3) * 4)])
    for n in (1, 2, 7, 20, 64):
        want_max = [x[t - n + 1: t + 1].max() for t in range(n - 1, x.size)]
        want_min = [x[t - n + 1: t + 1].min() for t in range(n - 1, x.size)]
        assert np.isnan(ind.rolling_max(x, n)[: n - 1]).all()
        np.testing.assert_array_equal(ind.rolling_max(x, n)[n - 1:], want_max)
        np.testing.assert_array_equal(ind.rolling_min(x, n)[n - 1:], want_min)
        hh, ll, direction = K.swing_1d(x, x, n)
        for t in range(n - 1, x.size):
            w = x[t - n + 1: t + 1]
            latest_high = t - n + 1 + int(np.flatnonzero(w == w.max())[-1])
            latest_low = t - n + 1 + int(np.flatnonzero(w == w.min())[-1])
            assert direction[t] == (1.0 if latest_high >= latest_low else -1.0), (n, t)


def test_a_flat_window_has_exactly_zero_std_and_zscore():
    x = np.concatenate([np.linspace(50_000, 60_000, 3_000), np.full(50, 60_123.45)])
    assert ind.rolling_std(x, 20)[-1] == 0.0
    assert ind.zscore(x, 20)[-1] == 0.0


# ------------------------------------------------------------------------------------- containers
def test_series_in_series_out_with_index_and_name(candles):
    out = ind.sma(candles["close"], 20)
    assert isinstance(out, pd.Series)
    assert out.index.equals(candles.index)
    assert out.name == "sma_20"
    k, d = ind.stochastic(candles["high"], candles["low"], candles["close"])
    assert k.index.equals(candles.index) and d.name == "stoch_d"


def test_two_dimensional_input_is_a_sweep_over_columns(candles):
    closes = pd.DataFrame({"a": candles["close"], "b": candles["close"] * 2})
    out = ind.ema(closes, 10)
    assert list(out.columns) == ["a", "b"]
    np.testing.assert_allclose(out["a"], ind.ema(candles["close"], 10))
    np.testing.assert_allclose(out["b"], 2 * out["a"], rtol=1e-12)
    arr = ind.rsi(closes.to_numpy(), 14)
    assert arr.shape == closes.shape
    np.testing.assert_allclose(arr[:, 0], ind.rsi(candles["close"].to_numpy(), 14))


def test_leading_nan_is_an_upstream_warm_up_and_output_starts_after_it(candles):
    r = ind.rsi(candles["close"], 14)
    smoothed = ind.ema(r, 5)
    assert np.isnan(smoothed.iloc[: 14 + 4]).all()
    np.testing.assert_allclose(smoothed.iloc[18:], ind.ema(r.iloc[14:].to_numpy(), 5)[4:])


# ------------------------------------------------------------------------------------- validation
def test_nan_inside_the_data_is_an_error_naming_the_row(candles):
    close = candles["close"].copy()
    close.iloc[100] = np.nan
    with pytest.raises(DataError, match=r"NaN in 'close' at row 100 \(20"):
        ind.sma(close, 10)


def test_infinity_is_an_error_naming_the_row():
    x = np.arange(1.0, 50.0)
    x[7] = np.inf
    with pytest.raises(DataError, match="infinite value .* row 7"):
        ind.ema(x, 5)


def test_too_few_rows_for_the_warm_up_is_insufficient_data():
    with pytest.raises(InsufficientData, match="needs at least 15 valid rows"):
        ind.rsi(np.arange(1.0, 15.0), 14)
    with pytest.raises(InsufficientData):
        ind.adx(np.ones(20) * 2, np.ones(20), np.ones(20) * 1.5, 14)


def test_bad_periods_and_mismatched_lengths_are_clear_errors():
    with pytest.raises(ConfigError, match="sma: n must be an integer >= 1, got 0"):
        ind.sma(np.arange(10.0), 0)
    with pytest.raises(ConfigError):
        ind.ema(np.arange(10.0), 2.5)
    with pytest.raises(DataError, match="'low' has 5 rows but 'high' has 6"):
        ind.true_range(np.ones(6), np.ones(5), np.ones(6))


# -------------------------------------------------------------------------------------- causality
INDICATORS = {
    "sma": lambda f: ind.sma(f["close"], 20),
    "ema": lambda f: ind.ema(f["close"], 20),
    "wma": lambda f: ind.wma(f["close"], 20),
    "rsi": lambda f: ind.rsi(f["close"]),
    "macd": lambda f: pd.concat(ind.macd(f["close"]), axis=1),
    "atr": lambda f: ind.atr(f["high"], f["low"], f["close"]),
    "natr": lambda f: ind.natr(f["high"], f["low"], f["close"]),
    "bollinger": lambda f: pd.concat(ind.bollinger(f["close"]), axis=1),
    "bb_pctb": lambda f: ind.bollinger_pctb(f["close"]),
    "bb_width": lambda f: ind.bollinger_width(f["close"]),
    "stochastic": lambda f: pd.concat(ind.stochastic(f["high"], f["low"], f["close"]), axis=1),
    "williams_r": lambda f: ind.williams_r(f["high"], f["low"], f["close"]),
    "cci": lambda f: ind.cci(f["high"], f["low"], f["close"]),
    "mfi": lambda f: ind.mfi(f["high"], f["low"], f["close"], f["volume"]),
    "obv": lambda f: ind.obv(f["close"], f["volume"]),
    "adx": lambda f: pd.concat([ind.adx(f["high"], f["low"], f["close"]), ind.plus_di(f["high"], f["low"], f["close"]),
                                ind.minus_di(f["high"], f["low"], f["close"])], axis=1),
    "vwap": lambda f: ind.vwap(f["high"], f["low"], f["close"], f["volume"]),
    "roc": lambda f: ind.roc(f["close"]),
    "momentum": lambda f: ind.momentum(f["close"]),
    "log_return": lambda f: ind.log_return(f["close"], 3),
    "rolling": lambda f: pd.concat([ind.rolling_max(f["high"], 20), ind.rolling_min(f["low"], 20),
                                    ind.rolling_std(f["close"], 20), ind.zscore(f["close"], 20)], axis=1),
    "moments": lambda f: pd.concat([ind.rolling_skew(f["close"], 30), ind.rolling_kurt(f["close"], 30)], axis=1),
    "volatility": lambda f: pd.concat([ind.parkinson_vol(f["high"], f["low"]),
                                       ind.garman_klass_vol(f["open"], f["high"], f["low"], f["close"]),
                                       ind.close_to_close_vol(f["close"])], axis=1),
}


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_every_indicator_is_prefix_invariant_on_real_data(candles, name):
    report = check_prefix_invariance(INDICATORS[name], candles.iloc[-2_000:], n_prefixes=6, seed=11, min_rows=60)
    assert report.ok, report.format()
    assert len(report.prefix_lengths) == 6


def test_mfi_is_exactly_zero_when_the_window_only_lost_money():
    # large inflows, one down-tick, then a flat market: the window of 14 holds outflow only
    up = 60_000.0 + np.cumsum(np.full(200, 7.31))
    close = np.concatenate([up, [up[-1] - 0.01], np.full(13, up[-1] - 0.01)])
    high, low = close + 0.005, close - 0.005
    volume = np.concatenate([np.full(200, 3_517.3), [2.0], np.full(13, 1.5)])
    out = ind.mfi(high, low, close, volume, 14)
    assert out[-1] == 0.0
    assert out[199] == 100.0  # and exactly 100 after inflows only


def test_lookback_is_the_row_of_every_indicators_first_value(candles):
    f = candles.iloc[:400]
    o, h, lo, c, v = (f[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    calls = {
        ("sma", 20): ind.sma(c, 20), ("ema", 20): ind.ema(c, 20), ("wma", 9): ind.wma(c, 9),
        ("rolling_std", 20): ind.rolling_std(c, 20), ("rolling_max", 7): ind.rolling_max(h, 7),
        ("rolling_min", 7): ind.rolling_min(lo, 7), ("zscore", 30): ind.zscore(c, 30),
        ("rolling_skew", 30): ind.rolling_skew(c, 30), ("rolling_kurt", 30): ind.rolling_kurt(c, 30),
        ("rsi", 14): ind.rsi(c, 14), ("atr", 14): ind.atr(h, lo, c, 14), ("natr", 14): ind.natr(h, lo, c, 14),
        ("adx", 14): ind.adx(h, lo, c, 14), ("plus_di", 14): ind.plus_di(h, lo, c, 14),
        ("minus_di", 14): ind.minus_di(h, lo, c, 14), ("williams_r", 14): ind.williams_r(h, lo, c, 14),
        ("cci", 20): ind.cci(h, lo, c, 20), ("mfi", 14): ind.mfi(h, lo, c, v, 14), ("roc", 10): ind.roc(c, 10),
        ("momentum", 10): ind.momentum(c, 10), ("vwap", 20): ind.vwap(h, lo, c, v, 20),
        ("parkinson_vol", 20): ind.parkinson_vol(h, lo, 20),
        ("garman_klass_vol", 20): ind.garman_klass_vol(o, h, lo, c, 20),
        ("close_to_close_vol", 20): ind.close_to_close_vol(c, 20),
        ("bollinger_pctb", 20): ind.bollinger_pctb(c, 20),
    }
    for (name, n), out in calls.items():
        first = int(np.argmax(~np.isnan(out)))
        assert ind.lookback(name, n=n) == first, name
    assert ind.lookback("macd") == int(np.argmax(~np.isnan(ind.macd(c)[0]))) == 33
    assert ind.lookback("stochastic") == int(np.argmax(~np.isnan(ind.stochastic(h, lo, c)[1]))) == 17
    assert ind.lookback("log_return", lag=3) == 3 and ind.lookback("true_range") == 1 and ind.lookback("obv") == 0
    with pytest.raises(ConfigError, match="unknown indicator 'foo'"):
        ind.lookback("foo")


@pytest.mark.parametrize(("column", "row", "value"),
                         [("high", 0, np.inf), ("low", 57, np.nan), ("close", 199, np.nan), ("close", 120, -np.inf)])
def test_a_bad_value_anywhere_is_caught_by_the_one_pass_check(candles, column, row, value):
    # these indicators sum their inputs in their own pass (a finite sum: all finite); the last close and
    # the first high are read by no true range at all, and must be refused all the same (a NaN in row 0
    # would be a leading warm-up run, allowed; an infinity never is)
    f = candles.iloc[:200].copy()
    f.iloc[row, f.columns.get_loc(column)] = value
    h, lo, c = f["high"], f["low"], f["close"]
    for call in (lambda: ind.true_range(h, lo, c), lambda: ind.atr(h, lo, c, 14), lambda: ind.natr(h, lo, c, 14),
                 lambda: ind.rolling_max(f[column], 5), lambda: ind.rolling_min(f[column], 5),
                 lambda: ind.williams_r(h, lo, c, 14), lambda: ind.stochastic(h, lo, c),
                 lambda: ind.adx(h, lo, c, 14), lambda: ind.plus_di(h, lo, c, 14), lambda: ind.minus_di(h, lo, c, 14),
                 lambda: ind.rolling_std(f[column], 20), lambda: ind.roc(f[column], 10),
                 lambda: ind.mfi(h, lo, c, f["volume"], 14), lambda: ind.sma(f[column], 20),
                 lambda: ind.ema(f[column], 20), lambda: ind.wma(f[column], 20), lambda: ind.rsi(f[column], 14),
                 lambda: ind.momentum(f[column], 10)):
        with pytest.raises(DataError, match=rf"'{column}' at row {row} "):
            call()


def test_the_one_pass_check_still_accepts_an_upstream_warm_up():
    x = np.concatenate([np.full(5, np.nan), np.arange(1.0, 40.0)])
    out = ind.rolling_max(x, 3)
    assert np.isnan(out[: 5 + 2]).all()
    np.testing.assert_array_equal(out[7:], np.arange(3.0, 40.0))


def test_finite_inputs_whose_checksum_overflows_are_still_computed():
    x = np.full(10, 1e308)  # the sum overflows to inf although every value is finite
    np.testing.assert_array_equal(ind.rolling_max(x, 3)[2:], np.full(8, 1e308))
    np.testing.assert_array_equal(ind.true_range(x, x / 2, x)[1:], np.full(9, 5e307))
