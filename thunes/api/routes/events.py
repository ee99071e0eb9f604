"""The live event stream: Server-Sent Events and WebSocket, filtered by event kind.

Browsers cannot set headers on EventSource/WebSocket, so both also accept the token as ``?token=``
(the server's access log is off, so it is never written down).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from thunes.api.auth import AuthError, Principal, Role
from thunes.api.context import ApiContext
from thunes.api.deps import bearer, context, principal_from_token
from thunes.api.stream import Client, parse_types
from thunes.core.errors import ConfigError
from thunes.core.events import EVENT_TYPES

router = APIRouter(prefix="/events", tags=["events"])
HEARTBEAT_S = 15.0


def _until_expiry(who: Principal) -> float:
    """Seconds the stream may go on: an access token's stream ends when the token does."""
    return float("inf") if who.expires_at is None else who.expires_at - time.time()


def _dropped_notice(client: Client) -> dict[str, Any] | None:
    """A ``Dropped`` notice when the client's queue overflowed since the last one (it reads too slowly)."""
    if client.dropped == client.reported:
        return None
    client.reported = client.dropped
    return {"kind": "Dropped", "dropped": client.dropped}


@router.get("/types", summary="The event kinds a stream can be filtered by")
def types(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict[str, Any]:
    principal_from_token(request.app.state.ctx, creds.credentials if creds else None, Role.READ)
    return {"types": sorted(EVENT_TYPES)}


@router.get("/stream", summary="Server-Sent Events: one `event: <kind>` per bus event",
            response_class=StreamingResponse)
async def stream(request: Request, types: str | None = Query(None, max_length=2000),
                 token: str | None = Query(None, max_length=4096),
                 creds: HTTPAuthorizationCredentials | None = Depends(bearer),
                 ctx: ApiContext = Depends(context)) -> StreamingResponse:
    who = principal_from_token(ctx, creds.credentials if creds else token, Role.READ)
    kinds = parse_types(types)
    client = ctx.hub.connect(kinds)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            while True:
                wait = _until_expiry(who)
                if wait <= 0:
                    yield b"event: TokenExpired\ndata: {\"kind\": \"TokenExpired\"}\n\n"
                    return
                try:
                    item = await asyncio.wait_for(client.queue.get(), timeout=min(HEARTBEAT_S, wait))
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": heartbeat\n\n"
                    continue
                for extra in (_dropped_notice(client), item):
                    if extra is not None:
                        yield f"event: {extra['kind']}\ndata: {json.dumps(extra, default=str)}\n\n".encode()
        finally:
            ctx.hub.disconnect(client)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.websocket("/ws")
async def ws(websocket: WebSocket, types: str | None = None, token: str | None = None) -> None:
    """One JSON object per event. Refusals are sent after the handshake, as close codes a browser can read:
    4401 (no or bad token), 4403 (role), 4400 (bad filter)."""
    ctx: ApiContext = websocket.app.state.ctx
    header = websocket.headers.get("authorization", "")
    bearer = header[7:] if header.lower().startswith("bearer ") else None
    await websocket.accept()
    try:
        who = principal_from_token(ctx, bearer or token, Role.READ)
        kinds = parse_types(types)
    except AuthError as exc:
        await websocket.close(code=4401 if exc.status == 401 else 4403, reason=str(exc)[:120])
        return
    except ConfigError as exc:
        await websocket.close(code=4400, reason=str(exc)[:120])
        return
    client = ctx.hub.connect(kinds)

    async def pump() -> None:
        while True:
            left = _until_expiry(who)
            if left <= 0:
                await websocket.close(code=4401, reason="the token has expired")
                return
            try:
                item = await asyncio.wait_for(client.queue.get(), timeout=min(HEARTBEAT_S, left))
            except TimeoutError:
                continue
            notice = _dropped_notice(client)
            if notice is not None:
                await websocket.send_json(notice)
            await websocket.send_json(item)

    async def watch() -> None:  # notices the client leaving (or the server shutting down) at once
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = [asyncio.create_task(pump()), asyncio.create_task(watch())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ctx.hub.disconnect(client)
