"""The Kafka path against a real broker (Tansu): producer -> topic -> sink group -> store.

After every fault the store must equal the exchange's closed candles exactly: none missing, none
duplicated, none open.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from thunes.data.store import open_store
from thunes.stream import IngestOptions, Ingestor
from thunes.stream.kafka import KafkaPublisher
from thunes.stream.sink import KafkaSink, session_overrides

from .conftest import (
    LOOKBACK,
    SYMBOLS,
    TIMEFRAMES,
    assert_store_equals_exchange,
    caught_up,
    start_of,
    step,
    truth,
    wait_for,
)

pytest.importorskip("confluent_kafka")

FAST_GROUP = session_overrides(2.0)  # Tansu's join takes about half the session timeout


class SinkThread:
    """A KafkaSink running in a thread of the test process."""

    def __init__(self, broker, url: str, **kw) -> None:
        self.sink = KafkaSink(broker.bootstrap, lambda: open_store(url), consumer_overrides=FAST_GROUP,
                              wait_s=0.05, **kw)
        self.thread = threading.Thread(target=self.sink.run, daemon=True)

    def start(self) -> SinkThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.sink.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()


def pipeline(sim, port, broker, symbols=SYMBOLS, **publisher_kw):
    box: list[Ingestor] = []
    publisher = KafkaPublisher(broker.bootstrap, partitions=4, confirm_interval_s=0.2,
                               on_lost=lambda s, ts: box[0].request_backfill(s, ts), **publisher_kw).start()
    ingestor = Ingestor(port, publisher, IngestOptions(ws_url=sim.ws_url, symbols=symbols, timeframes=TIMEFRAMES,
                                                       lookback=LOOKBACK, backoff_initial_s=0.02,
                                                       backoff_max_s=0.2, stale_after_s=5.0))
    box.append(ingestor)
    return publisher, ingestor.start()


def test_kafka_pipeline_stores_every_closed_candle_once(sim, port, broker, tmp_path):
    """Keyed messages through the broker into SQLite by a sink group; offsets committed after the rows."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    sink = SinkThread(broker, url).start()
    publisher, ingestor = pipeline(sim, port, broker)
    try:
        assert ingestor.wait_connected(10)
        step(sim, 8)
        with open_store(url) as store:
            wait_for(caught_up(store, sim, started_at), what="store caught up")
            assert publisher.wait_confirmed(15), "the sink group never committed every candle"
            assert_store_equals_exchange(store, sim, started_at)
    finally:
        ingestor.stop()
        publisher.close()
        sink.stop()
    assert sink.sink.stats.commits >= 1 and sink.sink.writer.stats.revised == 0


def test_broker_restart_loses_the_topic_and_the_producer_backfills_it(sim, port, broker, tmp_path):
    """A memory broker restarted with candles acknowledged but not yet stored: the producer notices the
    log went back to offset 0, recreates the topic, asks REST for every unconfirmed candle, and the
    restarted sink stores them: the store ends equal to the exchange."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    publisher, ingestor = pipeline(sim, port, broker, symbols=SYMBOLS[:2])
    sink = None
    try:
        assert ingestor.wait_connected(10)
        step(sim, 4)
        assert publisher.flush(10)
        assert publisher.stats.unconfirmed > 0  # acknowledged by the broker, stored by nobody yet
        broker.restart()  # memory storage: topic, messages and group offsets are gone
        step(sim, 3)
        sink = SinkThread(broker, url).start()
        with open_store(url) as store:
            wait_for(caught_up(store, sim, started_at, symbols=SYMBOLS[:2]), timeout=30, what="store caught up")
            assert publisher.wait_confirmed(20)
            assert_store_equals_exchange(store, sim, started_at, symbols=SYMBOLS[:2])
        assert publisher.stats.resets >= 1 and ingestor.stats.repaired_candles > 0
    finally:
        ingestor.stop()
        publisher.close()
        if sink is not None:
            sink.stop()


def test_two_sinks_rebalance_without_losing_or_doubling_a_candle(sim, port, broker, postgres_url):
    """A second sink joins the group mid-stream (partitions move), then the first leaves: every candle
    reaches PostgreSQL exactly once, and both members wrote some."""
    started_at = sim.now_ms()
    first = SinkThread(broker, postgres_url).start()
    publisher, ingestor = pipeline(sim, port, broker)
    second = None
    try:
        assert ingestor.wait_connected(10)
        step(sim, 3)
        wait_for(lambda: first.sink.stats.messages > 0, what="first sink writing")
        second = SinkThread(broker, postgres_url).start()
        wait_for(lambda: second.sink.assigned and first.sink.assigned, timeout=20, what="partitions shared")
        step(sim, 3)
        first.stop()  # leaves the group: its partitions go to the second sink
        wait_for(lambda: len(second.sink.assigned) == 4, timeout=20, what="second sink owns every partition")
        step(sim, 3)
        with open_store(postgres_url) as store:
            wait_for(caught_up(store, sim, started_at), timeout=30, what="store caught up")
            assert publisher.wait_confirmed(20)
            assert_store_equals_exchange(store, sim, started_at)
        assert first.sink.stats.messages > 0 and second.sink.stats.messages > 0
    finally:
        ingestor.stop()
        publisher.close()
        if second is not None:
            second.stop()


def test_sink_killed_mid_batch_and_restarted_leaves_no_hole_and_no_duplicate(sim, port, broker, tmp_path):
    """``thunes stream sink`` in its own process, SIGKILLed while writing small batches: the offsets
    of the batch in flight were not committed, the restarted sink reads it again, and the upsert
    writes each candle once."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    started_at = sim.now_ms()
    env = {**os.environ, "THUNES_EXCHANGE__ID": "binance"}
    cmd = [sys.executable, "-m", "thunes", "stream", "sink", "--kafka", broker.bootstrap, "--db", url,
           "--batch", "40", "--session-timeout", "2"]
    publisher, ingestor = pipeline(sim, port, broker)
    procs = []
    try:
        assert ingestor.wait_connected(10)
        step(sim, 30)
        assert publisher.flush(10)
        total = sum(len(truth(sim, s, tf, start_of(sim, tf, started_at))) for s in SYMBOLS for tf in TIMEFRAMES)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with open_store(url) as store:
            stored = lambda: sum(store.count(s, tf) for s in SYMBOLS for tf in TIMEFRAMES)  # noqa: E731
            wait_for(lambda: stored() > 100, timeout=30, what="first sink writing")
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(10)
            partial = stored()
            assert partial < total, "the sink finished before it was killed: nothing was tested"
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            step(sim, 2)
            wait_for(caught_up(store, sim, started_at), timeout=30, what="store caught up")
            assert publisher.wait_confirmed(20)
            assert_store_equals_exchange(store, sim, started_at)
    finally:
        ingestor.stop()
        publisher.close()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)


def test_sink_survives_its_database_connection_being_killed(sim, port, broker, postgres_url):
    """PostgreSQL drops the sink's connection (a database restart, a failover): the batch is not
    committed, the sink reopens the store and writes the batch again; nothing is lost."""
    import psycopg

    started_at = sim.now_ms()
    sink = SinkThread(broker, postgres_url, retry_s=0.1).start()
    publisher, ingestor = pipeline(sim, port, broker, symbols=SYMBOLS[:2])
    try:
        assert ingestor.wait_connected(10)
        step(sim, 2)
        wait_for(lambda: sink.sink.stats.commits > 0, what="sink writing")
        admin, _, db = postgres_url.rpartition("/")
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()", (db,)).fetchone()[0]
        assert killed >= 1
        step(sim, 4)
        with open_store(postgres_url) as store:
            wait_for(caught_up(store, sim, started_at, symbols=SYMBOLS[:2]), timeout=30, what="store caught up")
            assert publisher.wait_confirmed(20)
            assert_store_equals_exchange(store, sim, started_at, symbols=SYMBOLS[:2])
        assert sink.sink.stats.store_failures >= 1
    finally:
        ingestor.stop()
        publisher.close()
        sink.stop()


def test_a_candle_the_broker_never_acknowledged_is_asked_for_again(broker):
    """The broker is gone longer than the delivery timeout: the producer reports each undelivered
    candle to ``on_lost`` (the ingestion then fetches it from REST) instead of dropping it silently."""
    import numpy as np

    from thunes.stream import SeriesKey, candle_array

    lost: list[tuple[SeriesKey, int]] = []
    series = SeriesKey.of("binance", "BTC/USDT", "1m")
    ts = 1_704_067_200_000 + np.arange(3, dtype="int64") * 60_000
    ones = np.ones(3)
    with KafkaPublisher(broker.bootstrap, partitions=2, on_lost=lambda s, t: lost.append((s, t)),
                        producer_config={"message.timeout.ms": 1500}) as pub:
        broker.stop(kill=True)
        pub.publish(series, candle_array(ts, ones, ones * 2, ones / 2, ones, ones))
        wait_for(lambda: len(lost) == 3, timeout=15, what="three failed deliveries")
    assert sorted(lost) == [(series, int(t)) for t in ts] and pub.stats.failed == 3
