"""The candle feed: every closed candle exactly once, in order, through drops, lost messages and stalls."""

from __future__ import annotations

import time

import numpy as np
import pytest

from thunes.core.backoff import Backoff
from thunes.core.errors import ConfigError, ExchangeUnavailable
from thunes.data.synthetic import generate_candles
from thunes.live.feed import CandleFeed, FeedOptions

from ._ws_server import KlineServer


def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def drain(feed: CandleFeed, n: int, timeout: float = 10.0) -> list:
    out = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        c = feed.get(timeout=0.05)
        if c is not None:
            out.append(c)
    return out


@pytest.fixture()
def server():
    frame = generate_candles(60, timeframe="1h", seed=3)
    srv = KlineServer(frame).start()
    yield srv
    srv.stop()


def options(url: str, **kw) -> FeedOptions:
    base = dict(ws_url=url, symbol="BTC/USDT", exchange_symbol="BTCUSDT", timeframe="1h",
                backoff_initial_s=0.02, backoff_max_s=0.1, stale_after_s=5.0)
    base.update(kw)
    return FeedOptions(**base)


def test_backoff_grows_exponentially_caps_and_jitters_downwards():
    policy = options("ws://127.0.0.1:9/ws", backoff_initial_s=0.5, backoff_max_s=8.0, backoff_factor=2.0, jitter=0.5).backoff()
    assert [policy.delay(a, u=0.0) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(3, u=0.5) == pytest.approx(4.0 * 0.75)
    assert policy.delay(3, u=0.999) == pytest.approx(4.0 * (1 - 0.4995))
    assert isinstance(policy, Backoff) and policy.retries is None  # the feed holds on until stopped


def test_feed_options_refuse_bad_values():
    with pytest.raises(ConfigError, match="jitter"):
        options("ws://x", jitter=1.5)
    assert options("ws://x").stream_name == "btcusdt@kline_1h"


def test_closed_candles_arrive_in_order_with_values(server):
    feed = CandleFeed(options(server.url), fetch=server.fetch, rng=np.random.default_rng(1)).start()
    try:
        assert feed.wait_connected(5)
        wait_for(lambda: server._clients)
        for _ in range(6):
            server.advance()
        got = drain(feed, 5)
    finally:
        feed.stop()
    assert [c.ts_ms for c in got] == [int(t) for t in server.ts[:5]]
    first = server.frame.iloc[0]
    assert (got[0].open, got[0].high, got[0].low, got[0].close) == (first.open, first.high, first.low, first.close)
    assert all(c.source == "stream" for c in got)


def test_lost_messages_and_a_dropped_connection_are_backfilled_over_rest(server):
    feed = CandleFeed(options(server.url), fetch=server.fetch, rng=np.random.default_rng(1)).start()
    try:
        wait_for(lambda: server._clients)
        for _ in range(4):
            server.advance()  # bars 0..2 closed
        assert [c.ts_ms for c in drain(feed, 3)] == [int(t) for t in server.ts[:3]]
        server.mute = True
        for _ in range(3):
            server.advance()  # bars 3..5 close while nothing reaches the client
        server.mute = False
        server.drop_all()
        wait_for(lambda: server.connections >= 2 and server._clients)
        server.advance()  # the first kline after resubscribe reveals the hole (bar 6 closes, 7 opens)
        got = drain(feed, 4)
    finally:
        feed.stop()
    assert [c.ts_ms for c in got] == [int(t) for t in server.ts[3:7]]
    assert [c.source for c in got] == ["backfill", "backfill", "backfill", "stream"]
    assert feed.stats.reconnects >= 1


def test_a_stalled_stream_is_detected_and_replaced(server):
    feed = CandleFeed(options(server.url, stale_after_s=0.3), fetch=server.fetch,
                      rng=np.random.default_rng(1)).start()
    try:
        wait_for(lambda: server._clients)
        server.advance()
        wait_for(lambda: feed.stats.stale >= 1, timeout=5)  # nothing arrives for 0.3 s: stale
        wait_for(lambda: server.connections >= 2)
    finally:
        feed.stop()
    assert feed.stats.reconnects >= 1


def test_malformed_frames_are_counted_and_skipped(server):
    feed = CandleFeed(options(server.url), fetch=server.fetch, rng=np.random.default_rng(1)).start()
    try:
        wait_for(lambda: server._clients)
        server.advance()
        server.send_raw("{not json")
        server.send_raw('{"e": "kline", "k": {"t": "x", "i": "1h"}}')
        server.advance()
        got = drain(feed, 1)
    finally:
        feed.stop()
    assert [c.ts_ms for c in got] == [int(server.ts[0])]
    assert feed.stats.malformed == 2


def test_backfill_retries_transient_rest_failures(server):
    failures = {"left": 2}

    def flaky(since: int, limit: int):
        if failures["left"]:
            failures["left"] -= 1
            raise ExchangeUnavailable("502 Bad Gateway")
        return server.fetch(since, limit)

    for _ in range(5):
        server.advance()  # bars 0..3 closed before the feed starts
    feed = CandleFeed(options(server.url), fetch=flaky, rng=np.random.default_rng(1))
    feed.start(last_ts=int(server.ts[0]))
    try:
        wait_for(lambda: server._clients)
        server.advance()  # bar 4 closes, 5 opens
        got = drain(feed, 4)
    finally:
        feed.stop()
    assert [c.ts_ms for c in got] == [int(t) for t in server.ts[1:5]]
    assert feed.stats.backfill_errors == 2


def test_closed_candles_are_upserted_into_the_store_with_their_source_before_they_are_handed_out(server, tmp_path):
    import sqlite3

    from thunes.data.store import open_store

    url = f"sqlite:///{tmp_path / 'candles.sqlite'}"
    feed = CandleFeed(options(server.url), fetch=server.fetch, sink_factory=lambda: open_store(url),
                      rng=np.random.default_rng(1)).start()
    try:
        wait_for(lambda: server._clients)
        for _ in range(3):
            server.advance()  # bars 0..1 closed, bar 2 open (its updates are never stored)
        first = drain(feed, 2)
        server.mute = True
        server.advance()  # bar 2 closes unheard
        server.mute = False
        server.advance()  # bar 3 closes: bar 2 is backfilled over REST first
        second = drain(feed, 2)
    finally:
        feed.stop()
    with sqlite3.connect(tmp_path / "candles.sqlite") as db:
        rows = db.execute("SELECT ts, source, close FROM ohlcv ORDER BY ts").fetchall()
    assert [c.ts_ms for c in first + second] == [int(t) for t in server.ts[:4]]
    assert [(ts, source) for ts, source, _ in rows] == [
        (int(server.ts[0]), "stream"), (int(server.ts[1]), "stream"), (int(server.ts[2]), "backfill"),
        (int(server.ts[3]), "stream")]
    assert [close for *_, close in rows] == list(server.frame.close.iloc[:4])
    assert feed.stats.stored == 4
