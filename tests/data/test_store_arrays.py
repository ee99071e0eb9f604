"""``CandleStore.write_arrays``: the array write path refuses exactly what ``write`` refuses."""

from __future__ import annotations

import numpy as np

from thunes.data.store import frame_arrays, open_store
from thunes.data.synthetic import generate_candles


def test_write_arrays_validates_like_write_and_reaches_the_replica(tmp_path):
    """A row with high below close and a repeated timestamp are rejected with reasons; the good rows
    are stored bit-identical to what ``write`` stores, in the primary and in the replica."""
    frame = generate_candles(50, timeframe="1m", start="2024-01-01", seed=4)
    ts, o, h, lo, c, v = (a.copy() for a in frame_arrays(frame))
    h[7] = c[7] - 1.0  # high below close
    ts = np.r_[ts, ts[3]]  # a duplicate of row 3
    o, h, lo, c, v = (np.r_[a, a[3]] for a in (o, h, lo, c, v))
    primary, replica = f"sqlite:///{tmp_path / 'p.sqlite'}", f"sqlite:///{tmp_path / 'r.sqlite'}"
    with open_store(primary, replica_url=replica) as store:
        result = store.write_arrays("BTC/USDT", "1m", (ts, o, h, lo, c, v), source="stream")
        assert result.written == 49 and result.n_rejected == 2
        assert sorted(result.rejected["reason"]) == ["'high' is below max(open, close)",
                                                     "duplicate timestamp in the input (the first row was kept)"]
        again = store.write_arrays("BTC/USDT", "1m", (ts, o, h, lo, c, v), source="stream")
        assert again.written == 0  # upsert of identical values changes nothing
    expected = frame.drop(frame.index[7])
    for url in (primary, replica):
        with open_store(url) as s:
            got = s.load("BTC/USDT", "1m")
            np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
            assert (got.index == expected.index).all()
