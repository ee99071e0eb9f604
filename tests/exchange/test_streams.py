"""Market streams (raw and combined), control messages, trade payloads, and the typed streaming port."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp

from thunes.core.enums import OrderStatus
from thunes.exchange.ccxt_adapter import make_local_exchange_client
from thunes.exchange.streams import CcxtStreams, StreamOptions


def _run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _next_json(ws, predicate, limit: int = 50):
    for _ in range(limit):
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(msg.data)
        if predicate(data):
            return data
    raise AssertionError("expected frame never came")


def test_combined_stream_wraps_events_with_the_stream_name(sim):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            url = f"{sim.base_url.replace('http', 'ws')}/stream?streams=btcusdt@kline_1h/btcusdt@trade"
            async with session.ws_connect(url) as ws:
                await asyncio.sleep(0.1)
                await asyncio.get_running_loop().run_in_executor(None, sim.step)
                kline = await _next_json(ws, lambda d: d.get("stream") == "btcusdt@kline_1h")
                trade = await _next_json(ws, lambda d: d.get("stream") == "btcusdt@trade")
                return kline, trade

    kline, trade = _run(scenario())
    assert kline["data"]["e"] == "kline" and kline["data"]["k"]["i"] == "1h"
    t = trade["data"]
    assert t["e"] == "trade" and t["s"] == "BTCUSDT"
    assert set(t) >= {"E", "t", "p", "q", "T", "m"}
    assert Decimal(t["p"]) > 0 and Decimal(t["q"]) > 0


def test_subscribe_list_unsubscribe_and_errors(sim):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_url}/0") as ws:
                replies = []
                for req in (
                    {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@kline_1m"], "id": 1},
                    {"method": "LIST_SUBSCRIPTIONS", "id": "two"},
                    {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3},
                    {"method": "LIST_SUBSCRIPTIONS", "id": 4},
                    {"method": "SUBSCRIBE", "params": ["not a stream"], "id": 5},
                    {"method": "FLY", "id": 6},
                ):
                    await ws.send_str(json.dumps(req))
                    replies.append(json.loads((await ws.receive(timeout=5)).data))
                return replies

    replies = _run(scenario())
    assert replies[0] == {"result": None, "id": 1}
    assert replies[1] == {"result": ["btcusdt@trade", "ethusdt@kline_1m"], "id": "two"}
    assert replies[2] == {"result": None, "id": 3}
    assert replies[3] == {"result": ["ethusdt@kline_1m"], "id": 4}
    assert replies[4]["id"] == 5 and replies[4]["error"]["code"] == 2
    assert replies[5]["id"] == 6 and replies[5]["error"]["code"] == 2


def test_our_own_fill_appears_on_the_public_trade_stream(sim, client):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_url}/btcusdt@trade") as ws:
                await asyncio.sleep(0.1)
                loop = asyncio.get_running_loop()
                order = await loop.run_in_executor(None, lambda: client.create_order(
                    "BTC/USDT", "market", "buy", 0.002))
                trade = await _next_json(ws, lambda d: d.get("e") == "trade")
                return order, trade

    order, trade = _run(scenario())
    assert Decimal(trade["q"]) == Decimal("0.002")
    assert float(trade["p"]) == order["trades"][0]["price"]
    assert trade["m"] is False  # a taker buy: the buyer is not the maker


def test_ccxt_pro_watch_trades_parses_the_payload(sim):
    client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)

    async def scenario():
        try:
            await client.load_markets()
            waiter = asyncio.ensure_future(client.watch_trades("BTC/USDT"))
            loop = asyncio.get_running_loop()
            for _ in range(50):
                await asyncio.sleep(0.1)
                await loop.run_in_executor(None, sim.step)
                if waiter.done():
                    break
            return await asyncio.wait_for(waiter, 5)
        finally:
            await client.close()

    trades = _run(scenario())
    assert trades[-1]["symbol"] == "BTC/USDT"
    assert trades[-1]["price"] > 0 and trades[-1]["amount"] > 0 and trades[-1]["side"] in ("buy", "sell")


def test_streaming_port_reports_typed_order_updates_through_fill_and_cancel(sim):
    async def scenario():
        async with CcxtStreams.for_local(sim, StreamOptions(stale_after_s=5)) as streams:
            rest = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)
            seen: list = []

            async def collect():  # re-watches synchronously after each batch, so no update slips between
                async for batch in streams.orders("BTC/USDT"):
                    seen.extend(batch)

            async def until(predicate):
                for _ in range(100):
                    if predicate():
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"condition not met; seen {seen}")

            collector = asyncio.ensure_future(collect())
            try:
                await rest.load_markets()
                await until(lambda: sim.stream_counts()["user_subscriptions"] > 0)
                price = float((sim.last_price("BTC/USDT") * Decimal("0.5")).quantize(Decimal("0.01")))
                await rest.create_order("BTC/USDT", "limit", "buy", 0.001, price,
                                        params={"newClientOrderId": "wsp-1"})
                await until(lambda: any(o.client_order_id == "wsp-1" for o in seen))
                await rest.cancel_order(None, "BTC/USDT", params={"origClientOrderId": "wsp-1"})
                await until(lambda: any(o.status is OrderStatus.CANCELED for o in seen))
                return seen
            finally:
                collector.cancel()
                await rest.close()

    seen = _run(scenario())
    mine = [o for o in seen if o.client_order_id == "wsp-1"]
    assert mine[0].status is OrderStatus.NEW
    assert mine[-1].status is OrderStatus.CANCELED
    assert mine[-1].qty == Decimal("0.001")


def test_the_order_stream_reconnects_after_a_dropped_socket_and_keeps_reporting(sim):
    """A dropped websocket rejects ccxt.pro's pending watch with a NetworkError; CcxtStreams translates it
    (a retryable ExchangeUnavailable), waits by its backoff, watches again, and the next update arrives."""
    stream_options = StreamOptions(stale_after_s=5, initial_backoff_s=0.05)

    async def scenario():
        async with CcxtStreams.for_local(sim, stream_options) as streams:
            rest = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3, pro=True)
            seen: list = []

            async def collect():
                async for batch in streams.orders("BTC/USDT"):
                    seen.extend(batch)

            async def until(predicate):
                for _ in range(100):
                    if predicate():
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"condition not met; seen {seen}, reconnects {streams.reconnects}")

            collector = asyncio.ensure_future(collect())
            try:
                await rest.load_markets()
                await until(lambda: sim.stream_counts()["user_subscriptions"] > 0)
                sim.faults.drop_ws()
                await until(lambda: streams.reconnects >= 1 and sim.stream_counts()["user_subscriptions"] > 0)
                price = float((sim.last_price("BTC/USDT") * Decimal("0.5")).quantize(Decimal("0.01")))
                await rest.create_order("BTC/USDT", "limit", "buy", 0.001, price,
                                        params={"newClientOrderId": "wsp-drop"})
                await until(lambda: any(o.client_order_id == "wsp-drop" for o in seen))
                return streams.reconnects, seen
            finally:
                collector.cancel()
                await rest.cancel_order(None, "BTC/USDT", params={"origClientOrderId": "wsp-drop"})
                await rest.close()

    reconnects, seen = _run(scenario())
    assert reconnects >= 1
    assert next(o.status for o in seen if o.client_order_id == "wsp-drop") is OrderStatus.NEW
