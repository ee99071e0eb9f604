"""The embedded pipeline: websocket -> in-process queue -> store, with no server to run."""

from __future__ import annotations

import numpy as np
import pytest

from thunes.data.store import open_store
from thunes.stream import EmbeddedTransport, IngestOptions, Ingestor, SeriesKey

from .conftest import LOOKBACK, SYMBOLS, TIMEFRAMES, assert_store_equals_exchange, caught_up, step, wait_for


def ingest_options(sim, **kw) -> IngestOptions:
    base = dict(ws_url=sim.ws_url, symbols=SYMBOLS, timeframes=TIMEFRAMES, lookback=LOOKBACK,
                backoff_initial_s=0.02, backoff_max_s=0.2, stale_after_s=5.0)
    base.update(kw)
    return IngestOptions(**base)


@pytest.mark.parametrize("per_connection", [200, 4])
def test_embedded_ingestion_stores_every_closed_candle_of_every_series_once(sim, port, tmp_path, per_connection):
    """Three symbols x two timeframes, on one websocket (or two, at four streams per connection): the
    store ends equal to the exchange's closed candles (lookback backfill + live klines), and the candle
    forming now is not stored."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    with EmbeddedTransport(lambda: open_store(url)) as transport:
        with Ingestor(port, transport, ingest_options(sim, streams_per_connection=per_connection)) as ingestor:
            assert ingestor.wait_connected(10)
            wait_for(lambda: sim.stream_counts()["market_streams"] == len(SYMBOLS) * len(TIMEFRAMES))
            assert sim.stream_counts()["market_connections"] == (1 if per_connection == 200 else 2)
            step(sim, 12)
            with open_store(url) as store:
                wait_for(caught_up(store, sim, started_at), what="store caught up")
                transport.flush(10)
                assert_store_equals_exchange(store, sim, started_at)
        assert transport.writer.stats.revised == 0


def test_embedded_ingestion_resumes_from_the_store_after_a_restart(sim, port, tmp_path):
    """Stop the pipeline, let the exchange move on, start again: the candles closed meanwhile are
    backfilled from the store's last candle, so the store has no hole and no duplicate."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    with open_store(url) as store:
        with EmbeddedTransport(lambda: open_store(url)) as transport:
            with Ingestor(port, transport, ingest_options(sim, symbols=SYMBOLS[:1])) as ingestor:
                assert ingestor.wait_connected(10)
                step(sim, 3)
                wait_for(caught_up(store, sim, started_at, symbols=SYMBOLS[:1]))
        step(sim, 17)  # nobody listening
        resume = lambda s: store.last_ts(s.symbol, s.timeframe)  # noqa: E731
        with EmbeddedTransport(lambda: open_store(url)) as transport:
            with Ingestor(port, transport, ingest_options(sim, symbols=SYMBOLS[:1]), resume=resume) as ing:
                assert ing.wait_connected(10)
                step(sim, 2)
                wait_for(caught_up(store, sim, started_at, symbols=SYMBOLS[:1]))
                transport.flush(10)
        assert_store_equals_exchange(store, sim, started_at, symbols=SYMBOLS[:1])


def test_a_revised_closed_candle_is_upserted_and_logged(tmp_path, caplog):
    """An exchange correction (same candle, new values) replaces the stored row and is logged with the
    old and new values; a plain redelivery (same values) changes nothing and logs nothing."""
    from thunes.stream import candle_array

    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    series = SeriesKey.of("binance", "BTC/USDT", "1m")
    ts = np.arange(5, dtype="int64") * 60_000 + 1_704_067_200_000
    ones = np.ones(5)
    first = candle_array(ts, ones * 10, ones * 11, ones * 9, ones * 10.5, ones * 3)
    with EmbeddedTransport(lambda: open_store(url)) as transport:
        transport.publish(series, first)
        transport.flush(10)
        transport.publish(series, first[1:3])  # redelivery
        transport.flush(10)
        assert transport.writer.stats.revised == 0
        fixed = first[2:3].copy()
        fixed["close"] = 10.25
        with caplog.at_level("WARNING", logger="thunes.stream.writer"):
            transport.publish(series, fixed)
            transport.flush(10)
        assert transport.writer.stats.revised == 1
    assert "revised after close" in caplog.text and "c=10.5" in caplog.text and "c=10.25" in caplog.text
    with open_store(url) as store:
        frame = store.load("BTC/USDT", "1m")
    assert len(frame) == 5
    assert frame["close"].tolist() == [10.5, 10.5, 10.25, 10.5, 10.5]


def test_a_combined_feed_is_one_connection_with_distinct_series():
    """Series of one combined feed share a connection, so they must share its URL; a series given twice
    is refused (it would be written twice)."""
    from thunes.core.errors import ConfigError
    from thunes.live.feed import CandleFeed, FeedOptions

    def opts(url: str, symbol: str = "BTC/USDT") -> FeedOptions:
        return FeedOptions(ws_url=url, symbol=symbol, exchange_symbol=symbol.replace("/", ""), timeframe="1m")

    fetch = lambda o: (lambda since, limit: None)  # noqa: E731 - never called: the feed is not started
    with pytest.raises(ConfigError, match="one connection"):
        CandleFeed.combined([opts("ws://a/ws"), opts("ws://b/ws", "ETH/USDT")], fetch=fetch)
    with pytest.raises(ConfigError, match="given twice"):
        CandleFeed.combined([opts("ws://a/ws"), opts("ws://a/ws")], fetch=fetch)
    feed = CandleFeed.combined([opts("ws://a/ws"), opts("ws://a/ws", "ETH/USDT")], fetch=fetch)
    assert feed.last_ts_of("ETH/USDT", "1m") is None


def test_the_pipeline_exposes_messages_batches_and_sink_latency_as_prometheus_metrics(sim, port, tmp_path):
    """Every candle taken in from the feed is counted in, every row committed is counted out (with its batch
    size and sink latency), and the /metrics endpoint serves them in the Prometheus text format."""
    import urllib.request

    from thunes.ops.pipeline_metrics import PipelineMetrics

    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    metrics = PipelineMetrics()
    server = metrics.serve(port=0)
    try:
        with EmbeddedTransport(lambda: open_store(url), metrics=metrics) as transport:
            with Ingestor(port, transport, ingest_options(sim, symbols=SYMBOLS[:1])) as ingestor:
                assert ingestor.wait_connected(10)
                step(sim, 5)
                with open_store(url) as store:
                    wait_for(caught_up(store, sim, started_at, symbols=SYMBOLS[:1]))
                    transport.flush(10)
                    stored = sum(len(store.load(SYMBOLS[0], tf)) for tf in TIMEFRAMES)
        text = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    value = lambda name, **labels: metrics.registry.get_sample_value(name, labels)  # noqa: E731
    taken_in = value("thunes_pipeline_messages_in_total", source="websocket")
    written = value("thunes_pipeline_messages_out_total", sink="candle_store")
    assert taken_in >= stored > 0  # a candle seen twice (backfill and live) is counted in twice, stored once
    assert written >= stored
    assert value("thunes_pipeline_batch_size_messages_count", sink="candle_store") >= 1
    assert value("thunes_pipeline_sink_latency_seconds_sum", sink="candle_store") > 0
    assert 'thunes_pipeline_messages_out_total{sink="candle_store"}' in text
