"""The WebSocket API's session flow and the market streams' control messages, frame by frame.

ccxt.pro only uses ``userDataStream.subscribe.signature`` and ``SUBSCRIBE`` (covered in test_websocket.py);
these are the other requests the local exchange answers, with the answers Binance gives.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from thunes.exchange.sim._server import sign


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def _signed(sim: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": sim.api_key, "timestamp": int(time.time() * 1000)}
    params["signature"] = sign(sim.secret, "&".join(f"{k}={params[k]}" for k in sorted(params)))
    return params


async def _ask(ws: aiohttp.ClientWebSocketResponse, req_id: int, method: str,
               **params: Any) -> dict[str, Any]:
    await ws.send_str(json.dumps({"id": req_id, "method": method, "params": params}))
    return json.loads((await ws.receive(timeout=5)).data)


def test_ws_api_logon_then_subscribe_delivers_execution_reports_until_unsubscribed(sim, client):
    """A subscription needs a logged-on session; it carries the account's executionReports, and stops."""

    async def scenario() -> tuple[dict[str, Any], ...]:
        loop = asyncio.get_running_loop()
        buy = lambda: client.create_order("BTC/USDT", "market", "buy", 0.001)  # noqa: E731
        async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_api_url) as ws:
            early = await _ask(ws, 1, "userDataStream.subscribe")
            logon = await _ask(ws, 2, "session.logon", **_signed(sim))
            sub = await _ask(ws, 3, "userDataStream.subscribe")
            await loop.run_in_executor(None, buy)
            while (report := json.loads((await ws.receive(timeout=5)).data))["event"]["x"] != "TRADE":
                pass
            gone = await _ask(ws, 4, "userDataStream.unsubscribe",
                              subscriptionId=sub["result"]["subscriptionId"])
            await loop.run_in_executor(None, buy)
            after = await _ask(ws, 5, "ping")  # the next frame: no report for the second order
            return early, logon, sub, report, gone, after

    early, logon, sub, report, gone, after = _run(scenario())
    assert (early["status"], early["error"]["code"]) == (401, -2015)
    assert logon["status"] == 200 and logon["result"]["apiKey"] == sim.api_key
    assert report["subscriptionId"] == sub["result"]["subscriptionId"]
    assert report["event"]["e"] == "executionReport" and report["event"]["s"] == "BTCUSDT"
    assert (gone["id"], gone["status"], gone["result"]) == (4, 200, {})
    assert (after["id"], after["status"], after["result"]) == (5, 200, {})


def test_ws_api_answers_time_and_refuses_unknown_methods_and_malformed_frames(sim):
    """``time`` is the server time; an unknown method is -1000, a frame that is not JSON -1100 (id null)."""

    async def scenario() -> tuple[dict[str, Any], ...]:
        async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_api_url) as ws:
            server_time = await _ask(ws, 1, "time")
            unknown = await _ask(ws, 2, "order.place", symbol="BTCUSDT")
            await ws.send_str("not json")
            malformed = json.loads((await ws.receive(timeout=5)).data)
            return server_time, unknown, malformed

    before = int(time.time() * 1000)
    server_time, unknown, malformed = _run(scenario())
    assert before <= server_time["result"]["serverTime"] <= int(time.time() * 1000)
    assert (unknown["id"], unknown["status"], unknown["error"]["code"]) == (2, 400, -1000)
    assert (malformed["id"], malformed["status"], malformed["error"]["code"]) == (None, 400, -1100)


_CONTROL: list[tuple[str, Any]] = [
    ("GET_PROPERTY", ["combined"]), ("SET_PROPERTY", ["combined", True]), ("GET_PROPERTY", ["combined"]),
    ("UNSUBSCRIBE", ["btcusdt@trade"]), ("LIST_SUBSCRIPTIONS", []),
    ("RESET", []), ("SUBSCRIBE", "btcusdt@trade"),  # an unknown method; params that are not a list
]


def test_market_stream_control_messages_change_and_report_the_connection(sim):
    """SET/GET_PROPERTY ``combined``, UNSUBSCRIBE and LIST_SUBSCRIPTIONS; bad requests get error code 2."""

    async def scenario() -> list[dict[str, Any]]:
        answers = []
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"{sim.ws_url}/btcusdt@trade/btcusdt@kline_1h") as ws:
            for req_id, (method, params) in enumerate(_CONTROL, start=1):
                await ws.send_str(json.dumps({"id": req_id, "method": method, "params": params}))
                answers.append(json.loads((await ws.receive(timeout=5)).data))
        return answers

    answers = _run(scenario())
    assert answers[:5] == [{"result": False, "id": 1}, {"result": None, "id": 2}, {"result": True, "id": 3},
                           {"result": None, "id": 4}, {"result": ["btcusdt@kline_1h"], "id": 5}]
    assert [(a["id"], a["error"]["code"]) for a in answers[5:]] == [(6, 2), (7, 2)]
