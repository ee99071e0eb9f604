"""The optional InfluxDB sink: every stored candle becomes one point, redelivery overwrites it."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import numpy as np

from thunes.data.store import open_store
from thunes.stream import EmbeddedTransport, IngestOptions, Ingestor
from thunes.stream.influx import InfluxSink

from .conftest import LOOKBACK, SYMBOLS, TIMEFRAMES, caught_up, start_of, step, store_rows, wait_for


def influx_rows(url: str, db: str, symbol: str, timeframe: str) -> np.ndarray:
    q = (f"SELECT open, high, low, close, volume FROM candles WHERE symbol = '{symbol}' "
         f"AND timeframe = '{timeframe}' ORDER BY time")
    with urllib.request.urlopen(f"{url}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})) as r:
        body = json.loads(r.read())
    series = body["results"][0].get("series") or [{"values": []}]
    return np.array(series[0]["values"], dtype="float64").reshape(-1, 6)


def test_influx_sink_holds_exactly_the_stored_candles(sim, port, tmp_path, influx_url):
    """Embedded ingestion with InfluxDB as extra sink, with a websocket drop in the middle (candles from
    the stream and from REST backfill): InfluxDB ends with the same candles as the store, value for value."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    symbols = SYMBOLS[:2]
    opts = IngestOptions(ws_url=sim.ws_url, symbols=symbols, timeframes=TIMEFRAMES, lookback=LOOKBACK,
                         backoff_initial_s=0.02, backoff_max_s=0.2, stale_after_s=5.0)
    with open_store(url) as store:
        with EmbeddedTransport(lambda: open_store(url), extras=(InfluxSink(influx_url, "candles_test"),)) as tr:
            with Ingestor(port, tr, opts) as ingestor:
                assert ingestor.wait_connected(10)
                step(sim, 3)
                sim.faults.drop_ws()
                step(sim, 3, pause_s=0.0)
                wait_for(lambda: sim.stream_counts()["market_streams"] == len(symbols) * len(TIMEFRAMES))
                step(sim, 2)
                wait_for(caught_up(store, sim, started_at, symbols=symbols))
                tr.flush(10)
            assert tr.writer.stats.extra_errors == 0
        for symbol in symbols:
            for tf in TIMEFRAMES:
                stored = store_rows(store, symbol, tf)
                assert stored[0, 0] == start_of(sim, tf, started_at)
                np.testing.assert_array_equal(influx_rows(influx_url, "candles_test", symbol, tf), stored)
