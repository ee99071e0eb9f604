"""The FastAPI application and its server: ``create_app(ctx)`` and ``serve(ctx)``.

Every route lives under ``/api/v1`` (:mod:`thunes.api.routes`) and calls :mod:`thunes.services` only; the
schema is at ``/api/v1/openapi.json`` and the interactive docs at ``/api/v1/docs``.

Errors are one-line JSON ``{"error": "...", "status": N}``, mapped by what the caller must do:

=====================================  =====
bad or unknown input (validation)       422
ConfigError, DataError, StrategyError   400 (bad request: fix it)
*NotFound (trade, run, task)            404
BotNotRunning, BotAlreadyRunning        409
no/invalid/expired token                401 (``WWW-Authenticate: Bearer``)
role too low                            403
login rate limit                        429 (``Retry-After``)
exchange unreachable                    503
=====================================  =====

Anything else is a bug: logged with its traceback, answered 500 without details.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from thunes import __version__
from thunes.api.auth import AuthError
from thunes.api.context import ApiContext
from thunes.api.routes import ROUTERS
from thunes.api.settings import is_loopback
from thunes.core.errors import ConfigError, ExchangeError, RetryableError, ThunesError
from thunes.live.control import BotNotRunning
from thunes.ops.api_metrics import ApiMetrics
from thunes.services import chart
from thunes.services.catalog import RunNotFound
from thunes.services.history import TradeNotFound
from thunes.services.runner import BotAlreadyRunning
from thunes.services.tasks import TaskNotFound

__all__ = ["PREFIX", "ServerThread", "build_server", "check_bind", "create_app", "serve"]

log = logging.getLogger(__name__)
PREFIX = "/api/v1"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _status_of(exc: ThunesError) -> int:
    if isinstance(exc, (TradeNotFound, RunNotFound, TaskNotFound)):
        return 404
    if isinstance(exc, (BotNotRunning, BotAlreadyRunning)):
        return 409
    if isinstance(exc, RetryableError):
        return 503
    if isinstance(exc, ExchangeError):
        return 502
    return 400


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(ctx: ApiContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events_file = None
        if ctx.runner.state_dir is None:
            events_file = ctx.state_dir / "events.jsonl"
        ctx.hub.start(asyncio.get_running_loop(), events_file)
        # The dashboard's first chart should not pay for the loader's import and the kernels' compilation.
        try:
            await asyncio.to_thread(chart.warm_up)
        except Exception as exc:  # noqa: BLE001 - a slower first chart is no reason not to serve
            log.warning("chart warm-up failed (the first chart will be slower): %s: %s", type(exc).__name__, exc)
        try:
            yield
        finally:
            await ctx.hub.close()
            if ctx.runner.status().owned:
                await asyncio.to_thread(ctx.runner.stop, "API server shutting down")
            if ctx.tasks is not None:
                ctx.tasks.close()

    app = FastAPI(title="THUNES API", version=__version__, openapi_url=f"{PREFIX}/openapi.json",
                  docs_url=f"{PREFIX}/docs", redoc_url=None, lifespan=lifespan,
                  description="Watch and steer a THUNES bot. Every call but /ping needs a bearer token; calls "
                              "that change something need the trader role. See docs/api.md.")
    app.state.ctx = ctx
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    _mount_dashboard(app)
    if ctx.api.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(ctx.api.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])

    metrics = ApiMetrics()
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """The API's own request metrics in the Prometheus text format (no secrets, no ids: bounded labels)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(getattr(route, "path", None), request.method, response.status_code,
                        time.perf_counter() - started)
        # Our own access log: method, path and status only (a query string may carry a token).
        log.info("%s %s %s", request.method, request.url.path, response.status_code,
                 extra={"fields": {"client": request.client.host if request.client else None,
                                   "status": response.status_code}})
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        if request.url.path == "/ui/report.html":
            # A run's report (plotly, inline scripts) in a sandboxed frame: scripts run, nothing is fetched or sent.
            response.headers["Content-Security-Policy"] = (
                "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
                "img-src data: blob:; font-src data:")
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
        else:
            response.headers.setdefault("X-Frame-Options", "DENY")
        if request.url.path.startswith("/ui/") and request.url.path != "/ui/report.html":
            # The dashboard loads only its own files (vendored, no CDN) and talks to this API only.
            response.headers.setdefault(
                "Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; "
                "style-src 'self' 'unsafe-inline'; frame-src 'self'; connect-src 'self'; object-src 'none'; "
                "base-uri 'none'; frame-ancestors 'none'")
        return response

    @app.exception_handler(AuthError)
    async def auth_error(_request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            headers = {"Retry-After": str(max(1, int(retry + 0.999)))}
        return _error(exc.status, str(exc), headers)

    @app.exception_handler(ThunesError)
    async def thunes_error(_request: Request, exc: ThunesError) -> JSONResponse:
        return _error(_status_of(exc), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc,
                  exc_info=exc)
        return _error(500, "internal error (logged on the server)")

    return app


def _mount_dashboard(app: FastAPI) -> None:
    """The web dashboard (``thunes/api/static``, plain ES modules: no build step) at ``/``; it calls the API only."""
    from pathlib import Path

    from fastapi.responses import RedirectResponse
    from fastapi.staticfiles import StaticFiles

    static = Path(__file__).with_name("static")

    @app.get("/", include_in_schema=False)
    def dashboard_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=static, html=True), name="dashboard")


def check_bind(ctx: ApiContext) -> None:
    """The server refuses a non-loopback address without a configured secret."""
    if not is_loopback(ctx.api.host) and ctx.api.secret is None:
        raise ConfigError(f"refusing to listen on {ctx.api.host} without a secret: set THUNES_API__SECRET "
                          "(`thunes api secret` prints one), or listen on 127.0.0.1")


def build_server(ctx: ApiContext) -> Any:
    """A configured ``uvicorn.Server`` (not started); the access log is off (tokens may sit in query strings)."""
    import uvicorn

    check_bind(ctx)
    config = uvicorn.Config(create_app(ctx), host=ctx.api.host, port=ctx.api.port, access_log=False,
                            log_level="warning", lifespan="on", ws="websockets-sansio", server_header=False)
    return uvicorn.Server(config)


def serve(ctx: ApiContext) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM)."""
    build_server(ctx).run()


class ServerThread:
    """The server on a background thread (``thunes bot run --api``, tests): ``start()`` waits until it listens."""

    def __init__(self, ctx: ApiContext) -> None:
        import threading

        self.server = build_server(ctx)
        self._thread = threading.Thread(target=self.server.run, name="thunes-api", daemon=True)

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        for s in servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    def start(self, timeout: float = 20.0) -> ServerThread:
        import time

        self._thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise ConfigError(f"the API server did not start on {self.server.config.host}:"
                                  f"{self.server.config.port} (port in use?)")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
