"""``thunes stream run`` end to end in its own process: the README's one-command embedded pipeline."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from thunes.core.candles import ts_ms
from thunes.data.store import open_store


def test_stream_run_embedded_fills_the_store_without_gaps(tmp_path):
    """Local exchange in-process at 600x, two symbols x two timeframes, a few seconds: every series is
    stored contiguous (lookback backfill + live candles), and the summary line reports what it did."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    out = subprocess.run(
        [sys.executable, "-m", "thunes", "stream", "run", "--symbols", "BTC/USDT,ETH/USDT", "--timeframes", "1m,5m",
         "--local-speed", "600", "--lookback", "30", "--duration", "3", "--db", url],
        capture_output=True, text=True, timeout=120, env={**os.environ, "THUNES_LOGGING__DIR": str(tmp_path)},
        cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "candles:" in out.stderr and "backfilled" in out.stderr
    with open_store(url) as store:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            for tf, step in (("1m", 60_000), ("5m", 300_000)):
                ts = ts_ms(store.load(symbol, tf))
                assert len(ts) >= 30, (symbol, tf, len(ts))
                assert (np.diff(ts) == step).all(), f"{symbol} {tf} has a gap or a duplicate"
