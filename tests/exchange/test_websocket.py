"""Websocket streams through ccxt.pro: klines, trades, user order updates, and reconnection."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest

from thunes.exchange.ccxt_adapter import make_local_exchange_client


def _run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _until(sim, key: str, at_least: int = 1) -> None:
    """Wait (at most 5 s) until the exchange counts ``at_least`` of ``key`` (see ``stream_counts``)."""
    for _ in range(100):
        if sim.stream_counts()[key] >= at_least:
            return
        await asyncio.sleep(0.05)


def test_raw_stream_subscribe_and_kline_payload(sim):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_url}") as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1h"], "id": 1}))
                ack = json.loads((await ws.receive()).data)
                assert ack == {"result": None, "id": 1}
                await asyncio.get_running_loop().run_in_executor(None, sim.step)
                while True:
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("e") == "kline":
                        return msg

    event = _run(scenario())
    k = event["k"]
    assert event["s"] == "BTCUSDT" and k["i"] == "1h"
    assert set(k) >= {"t", "T", "o", "h", "l", "c", "v", "x"}
    assert float(k["l"]) <= float(k["o"]) <= float(k["h"])


def test_ccxt_pro_watch_ohlcv_survives_a_dropped_connection(sim):
    import ccxt

    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)

    async def scenario():
        try:
            await client.load_markets()
            loop = asyncio.get_running_loop()
            first = asyncio.ensure_future(client.watch_ohlcv("BTC/USDT", "1h"))
            await _until(sim, "market_streams")
            await loop.run_in_executor(None, sim.step)
            before = await first
            dropped_at = sim.now_ms()  # the newest candle any frame sent before the drop can carry opens here
            sim.faults.drop_ws()
            got, errors = None, 0
            for _ in range(40):  # keep watching, as a trading loop does: a NetworkError, then a new connection
                try:
                    waiter = asyncio.ensure_future(client.watch_ohlcv("BTC/USDT", "1h"))
                    await asyncio.sleep(0.05)
                    await loop.run_in_executor(None, sim.step)
                    got = await asyncio.wait_for(waiter, 3)
                    if got[-1][0] > dropped_at:  # a candle that opened after the drop: the new connection's
                        break
                except ccxt.NetworkError:
                    errors += 1
            return before, dropped_at, got, errors, sim.stream_counts()["market_connections"]
        finally:
            await client.close()

    before, dropped_at, after, errors, connections = _run(scenario(), 40)
    assert before[-1][0] <= dropped_at
    assert after[-1][0] > dropped_at  # fresh data, which only a reconnected stream can deliver
    assert connections == 1 and errors <= 1


def test_ccxt_pro_watch_orders_receives_execution_reports(sim):
    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)

    async def scenario():
        try:
            await client.load_markets()
            waiter = asyncio.ensure_future(client.watch_orders("BTC/USDT"))
            await _until(sim, "user_subscriptions")
            await client.create_order("BTC/USDT", "market", "buy", None,
                                      params={"quoteOrderQty": "50", "newClientOrderId": "ws-1"})
            return await asyncio.wait_for(waiter, 5)
        finally:
            await client.close()

    orders = _run(scenario())
    assert any(o["clientOrderId"] == "ws-1" for o in orders)


@pytest.mark.parametrize("action", ["drop", "shutdown"])
def test_connection_faults_close_market_streams(sim, action):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_url}/btcusdt@trade") as ws:
                await _until(sim, "market_connections")
                (sim.faults.drop_ws if action == "drop" else sim.faults.server_shutdown)()
                seen = []
                while True:
                    msg = await ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return seen
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        seen.append(json.loads(msg.data))

    seen = _run(scenario())
    if action == "shutdown":
        assert any(m.get("e") == "serverShutdown" for m in seen)


def test_place_fill_cancel_and_query_orders_through_ccxt_pro(sim):
    """The issue's "done" test on the async client: REST calls through ccxt.pro, updates through its websocket."""
    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)
    far = float((sim.last_price("BTC/USDT") * Decimal("0.5")).quantize(Decimal("0.01")))
    seen: list[dict] = []

    async def collect():
        while True:
            seen.extend(await client.watch_orders("BTC/USDT"))

    async def until(predicate):
        for _ in range(100):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never seen; updates so far: {[(o['clientOrderId'], o['status']) for o in seen]}")

    async def scenario():
        try:
            await client.load_markets()
            collector = asyncio.ensure_future(collect())
            await _until(sim, "user_subscriptions")
            filled = await client.create_order("BTC/USDT", "market", "buy", 0.002,
                                               params={"newClientOrderId": "pro-fill"})
            resting = await client.create_order("BTC/USDT", "limit", "buy", 0.001, far,
                                                params={"newClientOrderId": "pro-rest"})
            open_before = await client.fetch_open_orders("BTC/USDT")
            canceled = await client.cancel_order(resting["id"], "BTC/USDT")
            queried = await client.fetch_order(filled["id"], "BTC/USDT")
            open_after = await client.fetch_open_orders("BTC/USDT")
            await until(lambda: {("pro-fill", "closed"), ("pro-rest", "canceled")}
                        <= {(o["clientOrderId"], o["status"]) for o in seen})
            collector.cancel()
            return filled, open_before, canceled, queried, open_after
        finally:
            await client.close()

    filled, open_before, canceled, queried, open_after = _run(scenario())
    assert filled["status"] == "closed" and filled["filled"] == 0.002
    assert [o["clientOrderId"] for o in open_before] == ["pro-rest"]
    assert canceled["status"] == "canceled"
    assert (queried["clientOrderId"], queried["status"], queried["filled"]) == ("pro-fill", "closed", 0.002)
    assert open_after == []
