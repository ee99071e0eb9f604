"""Streaming indicators equal the batch ones: on real candles, after a restart from saved state,
and across a gap in the candles.

The batch functions of :mod:`thunes.features.indicators` are the reference and are called through their public
API, so this keeps checking whatever their internals become. Recurrences (EMA, RSI, ATR, true range) must be
equal bit for bit; windowed sums (SMA, Bollinger) within ``SMA_TOLERANCE`` (1e-12) relative.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from thunes.data.samples import load_sample_candles
from thunes.features import indicators as ind
from thunes.features.streaming import (
    SMA_TOLERANCE,
    StreamingAtr,
    StreamingBollinger,
    StreamingEma,
    StreamingRsi,
    StreamingSma,
)


@pytest.fixture(scope="module")
def candles():
    """Real BTC/USDT 1h candles when the sample data is there (synthetic otherwise), with a 7-bar hole."""
    frame = load_sample_candles("BTC/USDT", "1h", limit=3000).frame
    return frame.drop(frame.index[1500:1507])


# (name, streaming factory, batch function, columns read, bit-exact?)
CASES = [
    ("sma_10", lambda: StreamingSma(10), lambda f: ind.sma(f.close, 10), ("close",), False),
    ("sma_50", lambda: StreamingSma(50), lambda f: ind.sma(f.close, 50), ("close",), False),
    ("ema_12", lambda: StreamingEma(12), lambda f: ind.ema(f.close, 12), ("close",), True),
    ("ema_200", lambda: StreamingEma(200), lambda f: ind.ema(f.close, 200), ("close",), True),
    ("rsi_14", lambda: StreamingRsi(14), lambda f: ind.rsi(f.close, 14), ("close",), True),
    ("rsi_2", lambda: StreamingRsi(2), lambda f: ind.rsi(f.close, 2), ("close",), True),
    ("atr_14", lambda: StreamingAtr(14), lambda f: ind.atr(f.high, f.low, f.close, 14), ("high", "low", "close"),
     True),
    ("true_range", lambda: StreamingAtr(0), lambda f: ind.true_range(f.high, f.low, f.close),
     ("high", "low", "close"), True),
    ("bollinger_20", lambda: StreamingBollinger(20, 2.0), lambda f: _bands(ind.bollinger(f.close, 20, 2.0)),
     ("close",), False),
]


def _bands(result) -> np.ndarray:
    """(upper, middle, lower) columns, read by name (``Bands``) or, from the older tuple (middle, upper,
    lower), by position."""
    upper, middle, lower = ((result.upper, result.middle, result.lower) if hasattr(result, "upper")
                            else (result[1], result[0], result[2]))
    return np.column_stack([np.asarray(upper), np.asarray(middle), np.asarray(lower)])


def _assert_same(stream: np.ndarray, batch: np.ndarray, exact: bool) -> None:
    batch = np.asarray(batch, dtype="float64")
    assert stream.shape == batch.shape
    np.testing.assert_array_equal(np.isnan(stream), np.isnan(batch))  # the warm-up ends on the same bar
    if exact:
        np.testing.assert_array_equal(stream, batch)
    else:
        np.testing.assert_allclose(stream, batch, rtol=SMA_TOLERANCE, atol=0)


@pytest.mark.parametrize("name, make, batch, cols, exact", CASES, ids=[c[0] for c in CASES])
def test_streaming_equals_batch_on_real_candles_across_a_gap(candles, name, make, batch, cols, exact):
    # Act: one candle at a time over every row (the 7 missing bars are simply never fed)
    stream = make().feed(*(candles[c].to_numpy() for c in cols))
    # Assert
    _assert_same(stream, batch(candles), exact)


@pytest.mark.parametrize("name, make, batch, cols, exact", CASES, ids=[c[0] for c in CASES])
def test_a_restart_from_saved_state_continues_exactly(candles, name, make, batch, cols, exact):
    # Arrange: a first process streams 1200 candles and saves its state (as JSON, like a state file)
    data = [candles[c].to_numpy() for c in cols]
    first = make()
    head = first.feed(*(d[:1200] for d in data))
    saved = json.loads(json.dumps(first.save()))
    # Act: a second process restores it and streams the rest
    second = make()
    second.restore(saved)
    tail = second.feed(*(d[1200:] for d in data))
    # Assert: the two halves are exactly the uninterrupted stream, which equals the batch
    whole = make().feed(*data)
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)
    _assert_same(whole, batch(candles), exact)


def test_a_saved_state_of_another_indicator_is_refused():
    with pytest.raises(ValueError, match="slots"):
        StreamingSma(10).restore(StreamingSma(20).save())
