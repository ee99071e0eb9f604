"""Live trading refuses keys that can withdraw, as reported by Binance's API-restrictions endpoint
(served here by a small local HTTP server speaking that one endpoint)."""

from __future__ import annotations

import asyncio
import threading

import ccxt
import pytest
from aiohttp import web

from thunes.core.errors import ConfigError
from thunes.services.safety import check_withdrawals_disabled


@pytest.fixture()
def restrictions_server():
    answer: dict = {"status": 200, "body": {}}
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict = {}

    async def handler(request: web.Request) -> web.Response:
        assert request.headers.get("X-MBX-APIKEY") == "key"
        return web.json_response(answer["body"], status=answer["status"])

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/sapi/v1/account/apiRestrictions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    started.wait(5)
    client = ccxt.binance({"apiKey": "key", "secret": "secret"})
    client.urls["api"]["sapi"] = f"http://127.0.0.1:{state['port']}/sapi/v1"
    yield client, answer
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_keys_that_can_withdraw_are_refused(restrictions_server):
    client, answer = restrictions_server
    answer["body"] = {"ipRestrict": False, "enableWithdrawals": True, "enableSpotAndMarginTrading": True}
    with pytest.raises(ConfigError, match="can withdraw"):
        check_withdrawals_disabled(client)


def test_trading_only_keys_pass_and_silence_is_reported_as_unknown(restrictions_server):
    client, answer = restrictions_server
    answer["body"] = {"enableWithdrawals": False, "enableSpotAndMarginTrading": True}
    assert check_withdrawals_disabled(client) == "disabled"
    answer["status"], answer["body"] = 404, {"code": -1, "msg": "not here"}
    assert check_withdrawals_disabled(client) == "unknown"
