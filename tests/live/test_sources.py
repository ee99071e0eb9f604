"""Candle sources: lockstep replay (order, backfill after a restart, the end) and websockets fanned in."""

from __future__ import annotations

import time

from thunes.core.candles import ts_ms
from thunes.core.clock import SimulatedClock
from thunes.core.events import FeedReconnected
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.live.assembly import feed_for
from thunes.live.sources import (
    CandleSource,
    ReplaySource,
    StreamKey,
    WebsocketSource,
    frame_fetch,
    port_fetch,
)

T0 = 1_704_067_200_000
M5, M15 = 300_000, 900_000


def _frames():
    return {("BTC/USDT", "5m"): generate_candles(200, timeframe="5m", start=T0, seed=1),
            ("ETH/USDT", "5m"): generate_candles(200, timeframe="5m", start=T0, start_price=2000, seed=2),
            ("SOL/USDT", "15m"): generate_candles(80, timeframe="15m", start=T0, start_price=100, seed=3)}


def _replay(clock, frames, end_ms=None):
    keys = [StreamKey(s, tf) for s, tf in frames]
    return ReplaySource(keys, fetch=frame_fetch(frames), now_ms=clock.now_ms,
                        advance_to=lambda t: clock.set_ms(t), end_ms=end_ms)


def _drain(src, n=10_000):
    out = []
    for _ in range(n):
        item = src.get(timeout=0)
        if item is None:
            break
        out.append(item)
    return out


def test_replay_hands_out_every_pair_in_lockstep_by_close_time():
    clock = SimulatedClock(T0 + 10 * M15)
    frames = _frames()
    src = _replay(clock, frames, end_ms=T0 + 16 * M15)
    assert isinstance(src, CandleSource)
    start = {k: T0 + 10 * M15 - (M5 if k.timeframe == "5m" else M15) for k in src.keys}
    got = _drain(src.start(start))
    closes = [(i.candle.ts_ms + (M5 if i.key.timeframe == "5m" else M15)) for i in got]
    assert closes == sorted(closes)
    by = {k: [i.candle.ts_ms for i in got if i.key == k] for k in src.keys}
    assert by[StreamKey("BTC/USDT", "5m")] == list(range(T0 + 10 * M15, T0 + 16 * M15, M5))
    assert by[StreamKey("SOL/USDT", "15m")] == list(range(T0 + 10 * M15, T0 + 16 * M15, M15))
    assert src.exhausted and clock.now_ms() == T0 + 16 * M15
    # The candle values are the stored ones.
    first = next(i for i in got if i.key.symbol == "ETH/USDT")
    eth = frames[("ETH/USDT", "5m")]
    row = int((ts_ms(eth) == first.candle.ts_ms).argmax())
    assert first.candle.close == float(eth["close"].iloc[row])


def test_after_a_restart_every_candle_closed_meanwhile_comes_first_then_the_clock_steps():
    clock = SimulatedClock(T0 + 20 * M5)  # the previous process handled BTC up to bar 12, ETH up to bar 15
    frames = {k: v for k, v in _frames().items() if k[1] == "5m"}
    src = _replay(clock, frames)
    src.start({StreamKey("BTC/USDT", "5m"): T0 + 12 * M5, StreamKey("ETH/USDT", "5m"): T0 + 15 * M5})
    backlog = _drain(src, n=11)
    btc = [i.candle.ts_ms for i in backlog if i.key.symbol == "BTC/USDT"]
    eth = [i.candle.ts_ms for i in backlog if i.key.symbol == "ETH/USDT"]
    assert btc == list(range(T0 + 13 * M5, T0 + 20 * M5, M5))
    assert eth == list(range(T0 + 16 * M5, T0 + 20 * M5, M5))
    assert clock.now_ms() == T0 + 20 * M5  # no step while the backlog lasts
    nxt = _drain(src, n=2)
    assert [i.candle.ts_ms for i in nxt] == [T0 + 20 * M5, T0 + 20 * M5] and clock.now_ms() == T0 + 21 * M5


def test_a_replay_through_the_exchange_port_matches_the_frames():
    frames = {("BTC/USDT", "5m"): generate_candles(400, timeframe="5m", start=T0, seed=1),
              ("ETH/USDT", "5m"): generate_candles(400, timeframe="5m", start=T0, start_price=2000, seed=2)}
    with LocalExchange(candles={s: f for (s, _), f in frames.items()}, start_ms=T0 + 300 * M5) as sim:
        port = CcxtExchange.for_local(sim)
        keys = [StreamKey(s, tf) for s, tf in frames]
        src = ReplaySource(keys, fetch=port_fetch(port), now_ms=sim.now_ms, advance_to=sim.advance_to,
                           end_ms=T0 + 310 * M5)
        got = _drain(src.start({k: T0 + 299 * M5 for k in keys}))
    assert len(got) == 20
    for item in got:
        frame = frames[(item.key.symbol, "5m")]
        row = int((ts_ms(frame) == item.candle.ts_ms).argmax())
        assert item.candle.close == float(frame["close"].iloc[row])


def test_websocket_source_merges_two_live_streams_and_reports_reconnects():
    frames = {"BTC/USDT": generate_candles(3000, timeframe="1m", start=T0, seed=1),
              "ETH/USDT": generate_candles(3000, timeframe="1m", start=T0, start_price=2000, seed=2)}
    with LocalExchange(candles=frames, start_ms=T0 + 600 * 60_000, speed=1200, tick_s=0.02) as sim:
        port = CcxtExchange.for_local(sim)
        seen = []
        feeds = {StreamKey(s, "1m"): feed_for(port, ws_url=sim.ws_url, symbol=s, timeframe="1m", stale_after_s=2.0,
                                              seed=1, backoff_initial_s=0.05, backoff_max_s=0.2) for s in frames}
        src = WebsocketSource(feeds, on_event=seen.append)
        src.start({k: None for k in feeds})
        got = []

        def collect(n: int) -> None:
            end = time.monotonic() + 30
            have = len(got)
            while time.monotonic() < end and len(got) < have + n:
                item = src.get(timeout=0.2)
                if item is not None:
                    got.append(item)

        collect(6)
        sim.faults.drop_ws()  # every websocket closes: both feeds reconnect and backfill
        collect(6)
        src.stop()
    assert {i.key.symbol for i in got} == set(frames)
    for sym in frames:
        bars = [i.candle.ts_ms for i in got if i.key.symbol == sym]
        assert bars == sorted(bars) and len(set(bars)) == len(bars)
    assert {e.symbol for e in seen if isinstance(e, FeedReconnected)} == set(frames)


def test_a_rate_limited_replay_waits_the_retry_after_and_skips_no_candle_nor_repeats_one():
    """A 429 while the replay fetches candles (here, the second pair of a step) does not end the bot: what was
    fetched is handed out, the rest is fetched again after the exchange's Retry-After, from where it stopped."""
    frames = {("BTC/USDT", "5m"): generate_candles(400, timeframe="5m", start=T0, seed=1),
              ("ETH/USDT", "5m"): generate_candles(400, timeframe="5m", start=T0, start_price=2000, seed=2)}
    with LocalExchange(candles={s: f for (s, _), f in frames.items()}, start_ms=T0 + 300 * M5) as sim:
        port = CcxtExchange.for_local(sim)
        keys = [StreamKey(s, tf) for s, tf in frames]
        src = ReplaySource(keys, fetch=port_fetch(port), now_ms=sim.now_ms, advance_to=sim.advance_to,
                           end_ms=T0 + 310 * M5).start({k: T0 + 299 * M5 for k in keys})
        got = _drain(src, n=4)  # two steps
        calls = {"n": 0}
        inner = src._fetch

        def fetch(*args):  # the next step's second fetch meets a 429 storm with Retry-After: 1
            calls["n"] += 1
            if calls["n"] == 2:
                sim.faults.set(storm_status=429, storm_count=1, storm_retry_after=1, paths=["/api/v3/klines"])
            return inner(*args)

        src._fetch = fetch
        started = time.monotonic()
        while not src.exhausted and time.monotonic() - started < 30:
            item = src.get(timeout=0.2)
            if item is not None:
                got.append(item)
    assert src.fetch_retries == 1 and time.monotonic() - started >= 1.0
    assert sorted((i.key.symbol, i.candle.ts_ms) for i in got) == sorted(
        (k.symbol, T0 + b * M5) for k in keys for b in range(300, 310))
