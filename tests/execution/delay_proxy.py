"""A loopback HTTP proxy that loses the answer to an order and delivers the request late.

``DelayProxy(upstream).start()`` serves on ``base_url`` (127.0.0.1, a free port) and forwards every request
to ``upstream`` unchanged: method, path, query, body and headers, so the signature still verifies. After
``arm(delay_s)`` the next ``POST /api/v3/order`` is answered ``502 Bad Gateway`` at once and the original
request, bytes untouched, reaches the exchange ``delay_s`` later, as a congested gateway would do it. What
the exchange answered to each delayed request is kept in ``delivered`` (status and JSON body), so a test can
tell an order that landed from one refused as stale (``-1021``).

It is used by the lost-answer tests and by the crash harness (whose placer processes talk to the exchange
through it). A real server on a real socket: the ccxt client under test cannot tell it from a gateway.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientSession, web

__all__ = ["DelayProxy", "Delivered"]

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the exchange answered to a request the proxy held back."""

    delay_s: float
    status: int
    body: Any

    @property
    def code(self) -> int | None:
        """The Binance error code of the answer, or None for an accepted order."""
        return self.body.get("code") if isinstance(self.body, dict) else None


class DelayProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._armed: list[float] = []
        self._lock = threading.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self.delivered: list[Delivered] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stop: asyncio.Event | None = None

    # -- control (any thread) ------------------------------------------------------------------------
    def arm(self, delay_s: float) -> None:
        """Lose the answer to the next order request and deliver that request ``delay_s`` later."""
        with self._lock:
            self._armed.append(float(delay_s))

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    @property
    def armed(self) -> int:
        with self._lock:
            return len(self._armed)

    def in_flight(self) -> int:
        """Held-back requests not delivered yet."""
        return len(self._pending)

    def wait_delivered(self, timeout_s: float = 30.0) -> None:
        """Block until every held-back request has reached the exchange and been answered."""
        loop = self._loop
        if loop is None:
            return

        async def drain() -> None:
            while self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout_s)

    @property
    def base_url(self) -> str:
        assert self._port is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._port}"

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> DelayProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the server ----------------------------------------------------------------------------------
    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        async with ClientSession(auto_decompress=False) as session:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", lambda request: self._handle(request, session))
            runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            assert site._server is not None
            self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            await self._stop.wait()
            for task in list(self._pending):
                task.cancel()
            await runner.cleanup()

    async def _forward(self, session: ClientSession, method: str, url: str, headers: dict[str, str],
                       body: bytes) -> tuple[int, dict[str, str], bytes]:
        async with session.request(method, url, headers=headers, data=body or None,
                                   allow_redirects=False) as resp:
            data = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_HEADERS}
            return resp.status, out, data

    async def _handle(self, request: web.Request, session: ClientSession) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        url = self.upstream + request.rel_url.raw_path_qs  # the query exactly as signed
        delay = None
        if request.method == "POST" and request.path == "/api/v3/order":
            with self._lock:
                delay = self._armed.pop(0) if self._armed else None
        if delay is None:
            try:
                status, out, data = await self._forward(session, request.method, url, headers, body)
            except ClientError:
                # The exchange dropped the connection (its lose_mode="drop" fault): so does the gateway.
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError from None
            return web.Response(status=status, headers=out, body=data)

        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                status, _out, data = await self._forward(session, request.method, url, headers, body)
            except ClientError as exc:
                self.delivered.append(Delivered(delay_s=delay, status=0, body=f"{type(exc).__name__}: {exc}"))
                return
            try:
                parsed: Any = json.loads(data)
            except ValueError:
                parsed = data.decode(errors="replace")
            self.delivered.append(Delivered(delay_s=delay, status=status, body=parsed))

        task = asyncio.get_running_loop().create_task(later())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                            content_type="text/html")
