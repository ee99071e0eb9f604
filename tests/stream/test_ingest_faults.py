"""Ingestion through a bad day on the exchange: dropped sockets, serverShutdown, the connection lifetime
limit, REST errors during backfill. After each, the store equals the exchange's closed candles."""

from __future__ import annotations

import time

from thunes.data.store import open_store
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange, SimOptions
from thunes.stream import EmbeddedTransport, IngestOptions, Ingestor

from .conftest import LOOKBACK, SYMBOLS, TIMEFRAMES, assert_store_equals_exchange, caught_up, step, wait_for


def run_pipeline(sim, port, url, action) -> tuple[Ingestor, EmbeddedTransport]:
    started_at = sim.now_ms()
    opts = IngestOptions(ws_url=sim.ws_url, symbols=SYMBOLS, timeframes=TIMEFRAMES, lookback=LOOKBACK,
                         backoff_initial_s=0.02, backoff_max_s=0.2, stale_after_s=5.0)
    with open_store(url) as store:
        with EmbeddedTransport(lambda: open_store(url)) as transport:
            with Ingestor(port, transport, opts, seed=1) as ingestor:
                assert ingestor.wait_connected(10)
                wait_for(lambda: sim.stream_counts()["market_streams"] == len(SYMBOLS) * len(TIMEFRAMES))
                action(ingestor)
                wait_for(caught_up(store, sim, started_at), timeout=20, what="store caught up")
                transport.flush(10)
        assert_store_equals_exchange(store, sim, started_at)
    return ingestor, transport


def test_dropped_sockets_and_server_shutdown_are_backfilled(sim, port, tmp_path):
    """Candles that close while the sockets are down come back through REST on reconnect."""
    def action(ingestor: Ingestor) -> None:
        step(sim, 2)
        sim.faults.drop_ws()
        step(sim, 4, pause_s=0.0)  # closed while nobody is connected
        wait_for(lambda: sim.stream_counts()["market_streams"] == len(SYMBOLS) * len(TIMEFRAMES))
        step(sim, 2)
        sim.faults.server_shutdown()
        step(sim, 3, pause_s=0.0)
        wait_for(lambda: sim.stream_counts()["market_streams"] == len(SYMBOLS) * len(TIMEFRAMES))
        step(sim, 2)

    ingestor, _ = run_pipeline(sim, port, f"sqlite:///{tmp_path / 'c.sqlite'}", action)
    conns = ingestor.stats.connections
    assert all(c.reconnects >= 2 for c in conns)
    assert sum(c.backfilled for c in conns) > len(SYMBOLS) * LOOKBACK  # more than the first backfill


def test_rest_errors_during_backfill_are_retried_until_the_gap_is_filled(sim, port, tmp_path):
    """503s on /klines from the start (the start-up probe and the lookback backfill), then a 429 storm
    while the gap left by lost kline messages is backfilled: every error is retried, no candle skipped."""
    sim.faults.set(http_error=503, http_error_count=8, paths=["/api/v3/klines"])

    def action(ingestor: Ingestor) -> None:
        wait_for(lambda: sim.faults.state.http_error == 0, what="every injected 503 served")
        step(sim, 2)
        sim.faults.set(malformed_frames=-1)  # every frame of the next step is lost
        step(sim, 1)
        time.sleep(0.3)
        sim.faults.set(malformed_frames=0, storm_status=429, storm_count=3, storm_retry_after=0)
        step(sim, 2)  # the next closed klines skip a candle: backfill, through the storm
        wait_for(lambda: sim.faults.state.storm_status == 0, what="every injected 429 served")
        step(sim, 1)

    ingestor, _ = run_pipeline(sim, port, f"sqlite:///{tmp_path / 'c.sqlite'}", action)
    errors = sum(c.backfill_errors for c in ingestor.stats.connections) + ingestor.stats.repair_errors
    assert errors >= 8 + 3


def test_connection_lifetime_limit_reconnects_without_a_hole(tmp_path):
    """The exchange closes every connection after its lifetime (24 h on Binance, 1 s here)."""
    opts = SimOptions(symbols=SYMBOLS, synthetic_bars=2_000, history_bars=200, ws_max_lifetime_s=1.0,
                      ws_ping_interval_s=0.2)
    with LocalExchange(opts) as sim:
        port = CcxtExchange.for_local(sim, timeout_s=3)

        def action(ingestor: Ingestor) -> None:
            for _ in range(6):
                step(sim, 1, pause_s=0.4)

        ingestor, _ = run_pipeline(sim, port, f"sqlite:///{tmp_path / 'c.sqlite'}", action)
        port.close()
    assert all(c.connects >= 2 for c in ingestor.stats.connections)
