"""The REST plumbing every route of the local exchange shares: its context, errors, signatures, middleware.

:class:`ServerContext` is what each route module receives: the exchange, its engine, options, faults, rate
limiter and websocket hub. :func:`exchange_middleware` wraps every REST request the way Binance answers it:
first the injected faults (stall, delay, 429/418 storm, Binance's server error codes, bare 5xx pages), then
one parser for every parameter (:data:`PARAMS`, names checked per endpoint), the request weight (429, then
the 418 ban), the handler, and every refusal as Binance's JSON ``{"code", "msg"}`` with the used-weight
header; an unexpected exception is a -1000, never a crash. Admin and websocket paths pass straight through.
:func:`authenticate` checks a signed (HMAC-SHA256) request; :func:`sign` is the client's side of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from thunes.exchange.sim import _params as P
from thunes.exchange.sim._faults import SERVER_ERRORS
from thunes.exchange.sim._limits import BAN_ADVICE, request_weight
from thunes.exchange.sim._params import SimReject
from thunes.exchange.sim._rules import Rejection

if TYPE_CHECKING:  # pragma: no cover
    from thunes.exchange.sim import LocalExchange, SimOptions
    from thunes.exchange.sim._engine import Engine
    from thunes.exchange.sim._faults import Faults, FaultState
    from thunes.exchange.sim._limits import RateLimiter
    from thunes.exchange.sim._ws import Hub

__all__ = [
    "PARAMS",
    "RAW_BODY",
    "ServerContext",
    "authenticate",
    "check_signature",
    "error_response",
    "exchange_middleware",
    "not_found",
    "sign",
]

log = logging.getLogger("thunes.exchange.sim")

PARAMS: web.RequestKey[Mapping[str, str]] = web.RequestKey("params", dict)  # query and body, parsed once
RAW_BODY: web.RequestKey[str] = web.RequestKey("raw_body", str)  # the body as sent: part of the signature

# Always fullmatch: "$" also matches before a trailing newline (see _params.py)
_KEY_FORMAT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_INTERNAL_ERROR = Rejection(-1000, "An unknown error occurred while processing the request.", 500)
_HTTP_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerContext:
    """What every route of the local exchange works with; one per running server."""

    sim: LocalExchange
    engine: Engine
    options: SimOptions
    faults: Faults
    limiter: RateLimiter
    hub: Hub

    def auth_now(self) -> int:
        """The time of signatures and ``/time``: the wall clock (ccxt signs with it) plus the skew fault."""
        return time.time_ns() // 1_000_000 + self.faults.state.clock_skew_ms

    def symbol_arg(self, params: Mapping[str, str], required: bool = True) -> str | None:
        """The ``symbol`` parameter, well formed and listed (-1100 / -1102 / -1121)."""
        symbol = P.symbol_param(params, required=required)
        if symbol is not None:
            self.engine.spec(symbol)
        return symbol

    def symbols_arg(self, params: Mapping[str, str]) -> list[str] | None:
        """``symbol`` as a one-item list, else the ``symbols`` JSON list, else ``None`` (all)."""
        many = P.symbols_param(params)
        if many is not None:
            for s in many:
                self.engine.spec(s)
            return many
        one = self.symbol_arg(params, required=False)
        return None if one is None else [one]

    def api_secret(self, api_key: str) -> str:
        """The secret of a well-formed, known API key (-2014 / -2015)."""
        if not _KEY_FORMAT.fullmatch(api_key):
            raise SimReject(Rejection(-2014, "API-key format invalid.", 401))
        account = self.engine.accounts.get(api_key)
        if account is None:
            raise SimReject(Rejection(-2015, "Invalid API-key, IP, or permissions for action.", 401))
        return account.spec.secret


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 hex digest, Binance's request signature."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_signature(secret: str, payload: str, given: str) -> None:
    """-1022 unless ``given`` is the signature of ``payload`` (hex, either case)."""
    # compare_digest raises TypeError on non-ASCII text: such a signature is simply not valid
    if not given.isascii() or not hmac.compare_digest(sign(secret, payload), given.lower()):
        raise SimReject(Rejection(-1022, "Signature for this request is not valid."))


def error_response(rej: Rejection, headers: dict[str, str] | None = None) -> web.Response:
    """A refusal as Binance sends it: ``{"code", "msg"}`` with the rejection's HTTP status."""
    return web.json_response({"code": rej.code, "msg": rej.msg}, status=rej.status, headers=headers)


def _strip_signature(raw: str) -> str:
    return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))


def authenticate(ctx: ServerContext, request: web.Request) -> str:
    """The API key of a signed REST request, after Binance's checks in Binance's order."""
    key = request.headers.get("X-MBX-APIKEY", "")
    secret = ctx.api_secret(key)
    params = request[PARAMS]
    if not params.get("timestamp"):
        raise P.reject(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    given = params.get("signature")
    if not given:
        raise P.reject(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    check_signature(secret, _strip_signature(request.rel_url.raw_query_string)
                    + _strip_signature(request[RAW_BODY]), given)
    ts = P.timestamp_param(params)  # ms (microseconds are scaled down)
    recv = P.recv_window_param(params)  # finite, in (0, 60000]
    now = ctx.auth_now()
    if ts >= now + 1000:
        raise P.reject(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - ts > recv:
        raise P.reject(-1021, "Timestamp for this request is outside of the recvWindow.")
    return key


async def not_found(request: web.Request) -> web.Response:
    """Any path the local exchange does not serve: a plain 404 that names it."""
    return web.Response(status=404, text=f"the local exchange does not serve {request.path}")


def exchange_middleware(ctx: ServerContext) -> Middleware:
    """The middleware of the REST routes (see the module docstring), bound to ``ctx``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin") or path.startswith("/ws") or path.startswith("/stream"):
            return await handler(request)
        state = ctx.faults.state
        if ctx.faults.applies(path):
            injected = await _injected_fault(ctx, state)
            if injected is not None:
                return injected
        return await _answer(ctx, request, handler)

    return middleware


async def _injected_fault(ctx: ServerContext, state: FaultState) -> web.Response | None:
    """Wait out a stall or delay, then the fault's answer if one fires (``None``: serve the request)."""
    faults = ctx.faults
    if state.stall:
        await asyncio.get_running_loop().run_in_executor(None, faults.cleared.wait, 60.0)
    if state.delay_ms:
        await asyncio.sleep(state.delay_ms / 1000)
    status, retry = faults.take_storm()
    if status == 429:
        return error_response(Rejection(-1003, "Too many requests; current limit of IP(127.0.0.1) is "
                                               f"{ctx.options.weight_limit} requests per minute.", 429),
                              {"Retry-After": str(retry)})
    if status == 418:
        until = ctx.auth_now() + retry * 1000
        return error_response(Rejection(-1003, f"Way too much request weight used; IP banned until {until}. "
                                               + BAN_ADVICE, 418), {"Retry-After": str(retry)})
    code = faults.take_error_code()
    if code:
        status, msg = SERVER_ERRORS[code]
        return error_response(Rejection(code, msg, status))
    http_error = faults.take_http_error()
    if http_error == 504:
        return web.Response(status=504, body=b"")
    if http_error:
        page = f"<html><body><h1>{http_error} {_HTTP_REASONS[http_error]}</h1></body></html>"
        return web.Response(status=http_error, text=page, content_type="text/html")
    return None


async def _answer(ctx: ServerContext, request: web.Request, handler: Handler) -> web.StreamResponse:
    """Parse, weigh and serve one REST request; every refusal is Binance's JSON error."""
    ip = request.remote or "127.0.0.1"
    limiter = ctx.limiter
    try:
        body = ""
        if request.method in ("POST", "PUT") and request.can_read_body:
            try:
                body = (await request.read()).decode("utf-8")
            except UnicodeDecodeError:
                raise P.reject(-1100, "Illegal characters found in a parameter.") from None
        # One parser for every parameter: malformed values are Binance's 4xx here or in the handlers.
        # The raw query: aiohttp's query_string is half-decoded (%0A becomes a newline, + a space), which
        # would both mangle values and break the signature, computed by the client over the encoded form.
        params = P.parse_query(request.rel_url.raw_query_string, body)
        P.check_names(params, request.method, request.path)
        request[PARAMS] = params
        request[RAW_BODY] = body
        rejection, retry = limiter.admit(ip, request_weight(request.method, request.path, params))
        if rejection is not None:
            return error_response(rejection, {"Retry-After": str(retry),
                                               "X-MBX-USED-WEIGHT-1M": str(limiter.used(ip))})
        response = await handler(request)
    except SimReject as exc:
        response = error_response(exc.rejection)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - an exchange answers, it does not crash
        log.exception("internal error on %s %s", request.method, request.path)
        response = error_response(_INTERNAL_ERROR)
    response.headers["X-MBX-USED-WEIGHT-1M"] = str(limiter.used(ip))
    return response
