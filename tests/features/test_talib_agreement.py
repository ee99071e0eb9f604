"""Indicators agree with TA-Lib (a test-only oracle) after the warm-up, with the same NaN positions.

Tolerance: max |ours - talib| <= 1e-8 x the scale of the output (the median price for price-like
outputs, 100 for oscillators, the median volume for volume averages, the total volume for OBV). Runs on
two real markets when ../shared/data is present. Deliberate differences (MFI on a window without any
money flow) are documented in docs/features.md and not compared here.
"""

from __future__ import annotations

import numpy as np
import pytest

talib = pytest.importorskip("talib")

from thunes.data.samples import load_sample_candles  # noqa: E402
from thunes.features import indicators as ind  # noqa: E402


@pytest.fixture(scope="module", params=[("BTC/USDT", "1h", 20_000), ("ETH/USDT", "5m", 30_000)],
                ids=["BTC-1h", "ETH-5m"])
def ohlcv(request):
    """Real candles from ../shared/data when present (two markets, two timeframes), else synthetic."""
    symbol, timeframe, rows = request.param
    f = load_sample_candles(symbol, timeframe, limit=rows).frame
    return tuple(f[c].to_numpy() for c in ("open", "high", "low", "close", "volume"))


def _agree(ours: np.ndarray, ref: np.ndarray, scale: float, name: str) -> None:
    ours, ref = np.asarray(ours, dtype="float64"), np.asarray(ref, dtype="float64")
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{name}: NaN positions differ")
    ok = ~np.isnan(ref)
    diff = np.max(np.abs(ours[ok] - ref[ok])) if ok.any() else 0.0
    assert diff <= 1e-8 * scale, f"{name}: max abs diff {diff:g} > {1e-8 * scale:g}"


CASES = [
    ("SMA", lambda o, h, l, c, v: ind.sma(c, 30), lambda o, h, l, c, v: talib.SMA(c, 30), "price"),
    ("EMA", lambda o, h, l, c, v: ind.ema(c, 21), lambda o, h, l, c, v: talib.EMA(c, 21), "price"),
    ("WMA", lambda o, h, l, c, v: ind.wma(c, 20), lambda o, h, l, c, v: talib.WMA(c, 20), "price"),
    ("RSI", lambda o, h, l, c, v: ind.rsi(c, 14), lambda o, h, l, c, v: talib.RSI(c, 14), 100.0),
    ("MACD", lambda o, h, l, c, v: ind.macd(c)[0], lambda o, h, l, c, v: talib.MACD(c)[0], "price"),
    ("MACD signal", lambda o, h, l, c, v: ind.macd(c)[1], lambda o, h, l, c, v: talib.MACD(c)[1], "price"),
    ("MACD hist", lambda o, h, l, c, v: ind.macd(c)[2], lambda o, h, l, c, v: talib.MACD(c)[2], "price"),
    ("TRANGE", lambda o, h, l, c, v: ind.true_range(h, l, c), lambda o, h, l, c, v: talib.TRANGE(h, l, c), "price"),
    ("ATR", lambda o, h, l, c, v: ind.atr(h, l, c, 14), lambda o, h, l, c, v: talib.ATR(h, l, c, 14), "price"),
    ("NATR", lambda o, h, l, c, v: ind.natr(h, l, c, 14), lambda o, h, l, c, v: talib.NATR(h, l, c, 14), 100.0),
    ("BBANDS middle", lambda o, h, l, c, v: ind.bollinger(c, 20, 2.0).middle,
     lambda o, h, l, c, v: talib.BBANDS(c, 20, 2.0, 2.0)[1], "price"),
    ("BBANDS upper", lambda o, h, l, c, v: ind.bollinger(c, 20, 2.0).upper,
     lambda o, h, l, c, v: talib.BBANDS(c, 20, 2.0, 2.0)[0], "price"),
    ("BBANDS lower", lambda o, h, l, c, v: ind.bollinger(c, 20, 2.0).lower,
     lambda o, h, l, c, v: talib.BBANDS(c, 20, 2.0, 2.0)[2], "price"),
    ("STOCH k", lambda o, h, l, c, v: ind.stochastic(h, l, c, 14, 3, 3)[0],
     lambda o, h, l, c, v: talib.STOCH(h, l, c, 14, 3, 0, 3, 0)[0], 100.0),
    ("STOCH d", lambda o, h, l, c, v: ind.stochastic(h, l, c, 14, 3, 3)[1],
     lambda o, h, l, c, v: talib.STOCH(h, l, c, 14, 3, 0, 3, 0)[1], 100.0),
    ("ADX", lambda o, h, l, c, v: ind.adx(h, l, c, 14), lambda o, h, l, c, v: talib.ADX(h, l, c, 14), 100.0),
    ("PLUS_DI", lambda o, h, l, c, v: ind.plus_di(h, l, c, 14), lambda o, h, l, c, v: talib.PLUS_DI(h, l, c, 14), 100.0),
    ("MINUS_DI", lambda o, h, l, c, v: ind.minus_di(h, l, c, 14), lambda o, h, l, c, v: talib.MINUS_DI(h, l, c, 14), 100.0),
    ("WILLR", lambda o, h, l, c, v: ind.williams_r(h, l, c, 14), lambda o, h, l, c, v: talib.WILLR(h, l, c, 14), 100.0),
    ("CCI", lambda o, h, l, c, v: ind.cci(h, l, c, 20), lambda o, h, l, c, v: talib.CCI(h, l, c, 20), 100.0),
    ("MFI", lambda o, h, l, c, v: ind.mfi(h, l, c, v, 14), lambda o, h, l, c, v: talib.MFI(h, l, c, v, 14), 100.0),
    ("ROC", lambda o, h, l, c, v: ind.roc(c, 10), lambda o, h, l, c, v: talib.ROC(c, 10), 100.0),
    ("MOM", lambda o, h, l, c, v: ind.momentum(c, 10), lambda o, h, l, c, v: talib.MOM(c, 10), "price"),
    ("STDDEV", lambda o, h, l, c, v: ind.rolling_std(c, 20), lambda o, h, l, c, v: talib.STDDEV(c, 20, 1.0), "price"),
    ("MAX", lambda o, h, l, c, v: ind.rolling_max(h, 20), lambda o, h, l, c, v: talib.MAX(h, 20), "price"),
    ("MIN", lambda o, h, l, c, v: ind.rolling_min(l, 20), lambda o, h, l, c, v: talib.MIN(l, 20), "price"),
    ("SMA volume", lambda o, h, l, c, v: ind.sma(v, 20), lambda o, h, l, c, v: talib.SMA(v, 20), "volume level"),
    ("EMA long", lambda o, h, l, c, v: ind.ema(c, 200), lambda o, h, l, c, v: talib.EMA(c, 200), "price"),
    ("RSI short", lambda o, h, l, c, v: ind.rsi(c, 2), lambda o, h, l, c, v: talib.RSI(c, 2), 100.0),
    ("OBV", lambda o, h, l, c, v: ind.obv(c, v), lambda o, h, l, c, v: talib.OBV(c, v), "volume"),
]


@pytest.mark.parametrize(("name", "ours", "ref", "scale"), CASES, ids=[c[0] for c in CASES])
def test_indicator_matches_talib(ohlcv, name, ours, ref, scale):
    o, h, l, c, v = ohlcv
    if scale == "price":
        scale = float(np.median(np.abs(c)))
    elif scale == "volume":  # OBV is a running total of volume
        scale = float(np.sum(v))
    elif scale == "volume level":
        scale = float(np.median(v))
    _agree(ours(o, h, l, c, v), ref(o, h, l, c, v), scale, name)
