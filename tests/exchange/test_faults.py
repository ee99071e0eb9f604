"""Every injectable fault, seen through the real ccxt client (and the adapter's error tree)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from decimal import Decimal

import aiohttp
import ccxt
import numpy as np
import pytest

from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import ConfigError, ExchangeUnavailable, RequestTimeout
from thunes.exchange.ccxt_adapter import CcxtExchange, make_local_exchange_client
from thunes.exchange.sim import LocalExchange, SimOptions
from thunes.exchange.types import OrderRequest
from thunes.live.feed import CandleFeed, FeedOptions


def _run(coro, timeout: float = 15.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_delay_past_the_client_timeout_is_request_timeout(sim):
    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=0.3)
    sim.faults.set(delay_ms=800)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_time()
    sim.faults.set(delay_ms=50)
    t0 = time.perf_counter()
    client.fetch_time()  # a delay within the timeout only slows the answer
    assert time.perf_counter() - t0 >= 0.05


def test_stall_holds_requests_until_cleared(sim):
    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
    sim.faults.set(stall=True)
    threading.Timer(0.4, sim.faults.clear).start()
    t0 = time.perf_counter()
    assert client.fetch_time() > 0
    assert time.perf_counter() - t0 >= 0.35


def test_504_is_request_timeout_and_500_is_unavailable(client, sim):
    port = CcxtExchange.for_local(sim, timeout_s=3)
    sim.faults.set(http_error=504, http_error_count=2)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_ticker("BTC/USDT")
    with pytest.raises(RequestTimeout):
        port.fetch_ticker("BTC/USDT")
    sim.faults.set(http_error=500, http_error_count=1)
    with pytest.raises(ExchangeUnavailable):
        port.fetch_ticker("BTC/USDT")
    assert port.fetch_ticker("BTC/USDT").last > 0  # counted faults stop by themselves


def test_faults_can_target_paths(client, sim):
    sim.faults.set(http_error=503, paths=["/api/v3/order"])
    assert client.fetch_ticker("BTC/USDT")["last"] > 0
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USDT", "market", "buy", None, params={"quoteOrderQty": "20"})


def test_lost_response_by_dropped_socket_still_executes_the_order(port, sim):
    sim.faults.set(lose_order_responses=1, lose_mode="drop")
    req = OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET, quote_qty=Decimal("30"),
                       client_order_id="drop-1")
    with pytest.raises(ExchangeUnavailable):
        port.place_order(req)
    assert port.fetch_order("BTC/USDT", "drop-1").status is OrderStatus.FILLED


def test_fault_names_and_values_are_validated(sim):
    with pytest.raises(ConfigError, match="unknown fault"):
        sim.faults.set(explode=True)
    with pytest.raises(ConfigError, match="http_error"):
        sim.faults.set(http_error=404)


def test_admin_endpoint_drops_websockets_and_clears_faults(sim):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_url}/btcusdt@trade") as ws:
                async with session.post(f"{sim.base_url}/admin/faults", json={"action": "drop_ws"}) as resp:
                    assert resp.status == 200
                msg = await ws.receive()
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            async with session.post(f"{sim.base_url}/admin/faults", json={"delay_ms": 5}) as resp:
                assert (await resp.json())["delay_ms"] == 5
            async with session.delete(f"{sim.base_url}/admin/faults") as resp:
                assert (await resp.json())["delay_ms"] == 0

    _run(scenario())


def test_malformed_frames_are_sent_then_streams_recover(sim):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_url}/btcusdt@kline_1h") as ws:
                sim.faults.set(malformed_frames=1)
                await asyncio.get_running_loop().run_in_executor(None, sim.step)
                frames = []
                while len(frames) < 2:
                    frames.append((await ws.receive(timeout=5)).data)
                return frames

    bad, good = _run(scenario())
    with pytest.raises(ValueError):
        json.loads(bad)
    assert json.loads(good)["e"] == "kline"


def test_the_candle_feed_skips_a_malformed_frame_and_misses_no_closed_candle(sim):
    """The one websocket kline client (``thunes.live.feed.CandleFeed``; ccxt.pro's ``watch_ohlcv`` is not
    used for candles: an unparsable frame silently kills its receive loop) counts and skips the local
    exchange's mangled frame, and still hands out every closed candle once, in order (the one whose
    closing kline was mangled comes from the REST backfill through the adapter)."""
    exchange = CcxtExchange.for_local(sim, timeout_s=3)

    def fetch(since: int, limit: int):  # noqa: ANN202
        return exchange.fetch_candles("BTC/USDT", "1h", since=since, limit=limit)

    opts = FeedOptions(ws_url=sim.ws_url, symbol="BTC/USDT", exchange_symbol="BTCUSDT", timeframe="1h",
                       stale_after_s=5.0, backoff_initial_s=0.05, backoff_max_s=0.2)
    start = sim.now_ms() - 3_600_000  # the last closed candle: the feed starts right after it
    feed = CandleFeed(opts, fetch=fetch, rng=np.random.default_rng(1)).start(last_ts=start - 3_600_000)
    got = []
    try:
        assert feed.wait_connected(5)
        deadline = time.monotonic() + 5
        while sim.stream_counts()["market_streams"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        sim.step()
        sim.faults.set(malformed_frames=1)
        for _ in range(4):
            sim.step()
            time.sleep(0.1)
        end = sim.now_ms() - 3_600_000  # the newest closed candle
        deadline = time.monotonic() + 10
        while (not got or got[-1].ts_ms < end) and time.monotonic() < deadline:
            candle = feed.get(timeout=0.2)
            if candle is not None:
                got.append(candle)
    finally:
        feed.stop()
        exchange.close()
    stamps = [c.ts_ms for c in got]
    assert feed.stats.malformed >= 1
    assert stamps == list(range(start, end + 1, 3_600_000))
    assert all(c.high >= c.low for c in got)


def test_server_pings_and_drops_a_client_that_never_pongs():
    with LocalExchange(SimOptions(synthetic_bars=800, history_bars=100, ws_ping_interval_s=0.2,
                                  ws_pong_timeout_s=0.6)) as sim:
        async def scenario():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(sim.ws_url, autoping=False) as ws:
                    pings, t0 = 0, time.monotonic()
                    while True:
                        msg = await ws.receive(timeout=5)
                        if msg.type == aiohttp.WSMsgType.PING:
                            pings += 1
                        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                            return pings, time.monotonic() - t0, msg.data

        pings, elapsed, code = _run(scenario())
    assert pings >= 2
    assert 0.5 <= elapsed < 3
    assert code == 1008


@pytest.mark.parametrize("answers", [True, False])
def test_a_client_that_answers_pings_stays_connected(answers):
    with LocalExchange(SimOptions(synthetic_bars=800, history_bars=100, ws_ping_interval_s=0.2,
                                  ws_pong_timeout_s=0.6)) as sim:
        async def scenario():
            async with aiohttp.ClientSession() as session:
                # aiohttp answers a ping only while the client reads, so read for 1.5 s (2.5 pong timeouts)
                async with session.ws_connect(sim.ws_url, autoping=answers) as ws:
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 1.5
                    while (left := deadline - loop.time()) > 0:
                        try:
                            # (not receive(timeout=): it restarts its timer after each ping it answers)
                            msg = await asyncio.wait_for(ws.receive(), left)
                        except TimeoutError:
                            break
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                            return "closed by the server", sim.stream_counts()["market_connections"]
                    return "connected", sim.stream_counts()["market_connections"]

        outcome = _run(scenario())
    # the counter-case (no pongs) shows the reading loop would notice a disconnect
    assert outcome == (("connected", 1) if answers else ("closed by the server", 0))


def test_connection_lifetime_limit_disconnects():
    with LocalExchange(SimOptions(synthetic_bars=800, history_bars=100, ws_max_lifetime_s=0.5)) as sim:
        async def scenario():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(sim.ws_url) as ws:
                    msg = await ws.receive(timeout=5)
                    return msg.type

        assert _run(scenario()) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def test_admin_clock_moves_the_market(sim):
    before = sim.now_ms()
    req = urllib.request.Request(f"{sim.base_url}/admin/clock", data=json.dumps({"steps": 2}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as resp:
        now = json.loads(resp.read())["now"]
    assert now == before + 2 * 3_600_000 == sim.now_ms()


@pytest.mark.parametrize(("code", "ccxt_class", "thunes_class"), [
    (-1001, ccxt.OperationFailed, ExchangeUnavailable),
    (-1006, ccxt.OperationFailed, ExchangeUnavailable),
    (-1007, ccxt.RequestTimeout, RequestTimeout),
    (-1008, ccxt.ExchangeError, ExchangeUnavailable),  # OperationFailed against api.binance.com
])
def test_binance_server_error_codes_reach_ccxt_and_the_adapter(client, port, sim, code, ccxt_class, thunes_class):
    sim.faults.set(error_code=code, error_code_count=2)
    with pytest.raises(ccxt_class) as raw:
        client.fetch_ticker("BTC/USDT")
    assert str(code) in str(raw.value)
    with pytest.raises(thunes_class):
        port.fetch_ticker("BTC/USDT")
    assert port.fetch_ticker("BTC/USDT").last > 0  # two answers, then the fault is spent


def test_connection_refused_is_exchange_unavailable():
    with LocalExchange(SimOptions(synthetic_bars=800, history_bars=100)) as sim:
        port = CcxtExchange.for_local(sim, timeout_s=3)
        client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
    # the exchange has stopped: nothing listens on its port any more
    with pytest.raises(ccxt.NetworkError):
        client.fetch_time()
    with pytest.raises(ExchangeUnavailable):
        port.fetch_ticker("BTC/USDT")


def test_a_dropped_connection_fails_the_pending_ccxt_pro_watch_with_network_error(sim):
    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)

    async def scenario():
        try:
            await client.load_markets()
            pending = asyncio.ensure_future(client.watch_trades("BTC/USDT"))
            for _ in range(100):
                if sim.stream_counts()["market_streams"]:
                    break
                await asyncio.sleep(0.05)
            sim.faults.drop_ws()
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 5)
        finally:
            await client.close()

    _run(scenario())
