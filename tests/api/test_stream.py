"""The live event stream: fills arrive over SSE and WebSocket as they happen, filtered by kind."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from thunes.services import bot as svc


def _sse_events(response, stop_after: int, timeout: float) -> list[tuple[str, dict]]:
    events, kind = [], None
    end = time.monotonic() + timeout
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
            if len(events) >= stop_after:
                break
        if time.monotonic() > end:
            break
    return events


def test_sse_delivers_fills_as_they_happen_and_only_the_kinds_asked(paper_api):
    api, session, _thread, _out = paper_api
    with api.client() as c:
        with c.stream("GET", "/events/stream", params={"types": "OrderFilled,PositionOpened",
                                                      "token": api.tokens["viewer"]}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            t0 = time.monotonic()
            got = _sse_events(r, stop_after=3, timeout=40)
    assert len(got) == 3 and time.monotonic() - t0 < 40
    assert {k for k, _ in got} <= {"OrderFilled", "PositionOpened"}
    fill = next(d for k, d in got if k == "OrderFilled")
    assert fill["kind"] == "OrderFilled" and fill["status"] == "FILLED" and isinstance(fill["qty"], str)
    # The same fill is in the bot's event log: the stream carries what the bus carried.
    logged = {e.client_order_id for e in svc.events(session.stack.state_dir, kinds={"OrderFilled"})}
    assert fill["client_order_id"] in logged


def test_websocket_streams_filtered_events_and_refuses_without_a_token(paper_api):
    api, _session, _thread, _out = paper_api
    ws_url = api.url.replace("http://", "ws://") + "/events/ws"
    with connect(f"{ws_url}?types=CandleClosed", additional_headers={"Authorization": f"Bearer {api.tokens['viewer']}"},
                 open_timeout=10) as ws:
        items = [json.loads(ws.recv(timeout=20)) for _ in range(8)]
    assert {i["kind"] for i in items} == {"CandleClosed"}
    assert len({(i["symbol"], i["bar_ts"]) for i in items}) == 8  # eight distinct candles, in order of closing
    with connect(f"{ws_url}?types=OrderFilled&token={api.tokens['viewer']}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=40))["kind"] == "OrderFilled"

    for url in (ws_url, f"{ws_url}?token=bad"):
        with connect(url, open_timeout=10) as ws:
            with pytest.raises(ConnectionClosedError) as exc:
                ws.recv(timeout=10)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401
    with connect(f"{ws_url}?types=NoSuchEvent&token={api.tokens['viewer']}", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosedError) as exc:
            ws.recv(timeout=10)
    assert exc.value.rcvd is not None and exc.value.rcvd.code == 4400 and "unknown event type" in exc.value.rcvd.reason


def test_sse_refuses_an_unknown_kind_and_a_missing_token(api):
    with api.client("viewer") as c:
        r = c.get("/events/stream", params={"types": "Nope"})
        assert r.status_code == 400 and r.json()["error"].startswith("unknown event type(s) 'Nope'; known: ")
        assert c.get("/events/types").json()["types"][0] == "BotStateChanged"
    with api.client() as c:
        assert c.get("/events/stream").status_code == 401


def test_without_a_bot_in_the_process_the_stream_follows_the_event_log(api):
    """`thunes api serve` next to a bot in another process: events come from <state_dir>/events.jsonl."""
    state = api.ctx.state_dir
    state.mkdir(parents=True, exist_ok=True)
    log = state / "events.jsonl"
    with api.client() as c:
        with c.stream("GET", "/events/stream", params={"types": "OrderFilled", "token": api.tokens["viewer"]}) as r:
            def write() -> None:
                time.sleep(0.5)
                with log.open("a") as fh:
                    fh.write(json.dumps({"kind": "CandleClosed", "ts_ms": 1, "symbol": "BTC/USDT"}) + "\n")
                    fh.write(json.dumps({"kind": "OrderFilled", "ts_ms": 2, "symbol": "BTC/USDT", "qty": "0.1"}) + "\n")
            threading.Thread(target=write, daemon=True).start()
            got = _sse_events(r, stop_after=1, timeout=15)
    assert got == [("OrderFilled", {"kind": "OrderFilled", "ts_ms": 2, "symbol": "BTC/USDT", "qty": "0.1"})]


def test_a_stream_ends_when_its_access_token_expires(api):
    import jwt

    from tests.api.conftest import SECRET

    def short() -> str:  # valid for two more seconds
        now = int(time.time())
        return jwt.encode({"sub": "viewer", "role": "read", "typ": "access", "iat": now, "exp": now + 2, "jti": "t"},
                          SECRET, algorithm="HS256")

    with api.client() as c:
        with c.stream("GET", "/events/stream", params={"token": short()}) as r:
            assert r.status_code == 200
            t0 = time.monotonic()
            got = _sse_events(r, stop_after=1, timeout=20)
    assert got == [("TokenExpired", {"kind": "TokenExpired"})] and time.monotonic() - t0 < 10
    ws_url = api.url.replace("http://", "ws://") + f"/events/ws?token={short()}"
    with connect(ws_url, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosedError) as exc:
            ws.recv(timeout=20)
    assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401 and exc.value.rcvd.reason == "the token has expired"


def test_a_slow_client_loses_events_and_is_told_how_many():
    import asyncio

    from thunes.api.routes.events import _dropped_notice
    from thunes.api.stream import Client

    async def scenario() -> list:
        c = Client(frozenset({"OrderFilled"}), queue=asyncio.Queue(maxsize=2))
        for i in range(5):
            c.offer({"kind": "OrderFilled", "n": i})
            c.offer({"kind": "CandleClosed", "n": i})  # filtered out, never counted
        return [c.queue.qsize(), c.dropped, _dropped_notice(c), _dropped_notice(c)]

    assert asyncio.run(scenario()) == [2, 3, {"kind": "Dropped", "dropped": 3}, None]
