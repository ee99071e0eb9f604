"""Bots read candles from the topic: each pair in order, exactly once, however the producer delivered them."""

from __future__ import annotations

import numpy as np
import pytest

from thunes.stream import SeriesKey, candle_array

pytest.importorskip("confluent_kafka")

from thunes.stream.kafka import KafkaPublisher  # noqa: E402
from thunes.stream.source import KafkaCandleSource  # noqa: E402

T0 = 1_704_067_200_000
MIN = 60_000


def candles(idx: list[int], source: str = "stream") -> np.ndarray:
    ts = T0 + np.asarray(idx, dtype="int64") * MIN
    base = 100.0 + np.asarray(idx, dtype="float64")
    return candle_array(ts, base, base + 1, base - 1, base + 0.5, np.full(len(idx), 2.0), source=source)


def collect(src: KafkaCandleSource, n: int, timeout: float = 15.0) -> list:
    out = []
    for _ in range(n):
        item = src.next(timeout)
        assert item is not None, f"only {len(out)} of {n} candles arrived"
        out.append(item)
    return out


def test_two_bots_read_the_same_candles_in_order_without_duplicates(broker):
    """A repair that arrives late (candle 2 after 3 and 4) is put back in order, a redelivered candle is
    dropped, and a second source (another bot) sees the same sequence of each series: sources share nothing."""
    btc, eth = SeriesKey.of("binance", "BTC/USDT", "1m"), SeriesKey.of("binance", "ETH/USDT", "1m")
    with KafkaPublisher(broker.bootstrap, partitions=3, confirm_group=None) as pub:
        pub.publish(btc, candles([0, 1, 3, 4]))
        pub.publish(eth, candles([0, 1]))
        pub.publish(btc, candles([1, 2], source="backfill"))  # a duplicate and the missing candle
        pub.publish(SeriesKey.of("binance", "BTC/USDT", "5m"), candles([0]))  # a pair nobody asked for
        assert pub.flush(10)
        bots = [KafkaCandleSource(broker.bootstrap, [("BTC/USDT", "1m"), ("ETH/USDT", "1m")],
                                  after={("BTC/USDT", "1m"): T0 - MIN, ("ETH/USDT", "1m"): T0 - MIN}).start()
                for _ in range(2)]
        try:
            seen = [collect(bot, 7) for bot in bots]
            for got in seen:
                btc_ts = [(c.ts_ms - T0) // MIN for s, tf, c in got if s == "BTC/USDT"]
                eth_ts = [(c.ts_ms - T0) // MIN for s, tf, c in got if s == "ETH/USDT"]
                assert btc_ts == [0, 1, 2, 3, 4] and eth_ts == [0, 1]
                candle2 = next(c for s, _, c in got if s == "BTC/USDT" and c.ts_ms == T0 + 2 * MIN)
                assert (candle2.open, candle2.close, candle2.source) == (102.0, 102.5, "backfill")
            # The same sequence per series (across series the interleaving follows partition fetches).
            per_series = [{key: [c for s, tf, c in got if (s, tf) == key] for key in (("BTC/USDT", "1m"),
                                                                                      ("ETH/USDT", "1m"))}
                          for got in seen]
            assert per_series[0] == per_series[1]
            assert bots[0].next(0.5) is None  # nothing else: the 5m candle and the duplicate are not handed out
            assert bots[0].stats.duplicates == 1
        finally:
            for bot in bots:
                bot.stop()


def test_single_pair_source_is_a_drop_in_for_the_trader_feed(broker):
    """``start(last_ts)`` / ``get(timeout)`` / ``running`` / ``stop()``, like CandleFeed: candles after
    ``last_ts`` only; a hole that is never filled is skipped after ``gap_wait_s`` and counted."""
    btc = SeriesKey.of("binance", "BTC/USDT", "1m")
    with KafkaPublisher(broker.bootstrap, partitions=2, confirm_group=None) as pub:
        pub.publish(btc, candles([0, 1, 2, 5, 6]))
        assert pub.flush(10)
        src = KafkaCandleSource(broker.bootstrap, [("BTC/USDT", "1m")], gap_wait_s=0.5).start(last_ts=T0 + MIN)
        try:
            assert src.running
            got = [src.get(10)]
            stream = src.candles()
            got += [next(stream), next(stream)]
            assert [(c.ts_ms - T0) // MIN for c in got] == [2, 5, 6]
            assert src.stats.gaps == 1 and src.last_ts == T0 + 6 * MIN
        finally:
            src.stop()
        assert not src.running and src.get(0.1) is None


def test_a_source_started_before_the_topic_exists_reads_it_once_it_appears(broker):
    """A bot may start before the ingestion has ever run: it waits for the topic, then reads it."""
    btc = SeriesKey.of("binance", "BTC/USDT", "1m")
    src = KafkaCandleSource(broker.bootstrap, [("BTC/USDT", "1m")]).start(last_ts=T0 - MIN)
    try:
        assert src.get(0.3) is None
        with KafkaPublisher(broker.bootstrap, partitions=2, confirm_group=None) as pub:
            pub.publish(btc, candles([0, 1]))
            assert pub.flush(10)
            got = [src.get(10), src.get(10)]
        assert [c.ts_ms for c in got] == [T0, T0 + MIN]
    finally:
        src.stop()
