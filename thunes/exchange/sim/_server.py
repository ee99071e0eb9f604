"""The HTTP and websocket face of the local exchange (aiohttp), speaking Binance Spot as ccxt uses it.

REST under ``/api/v3`` (public and HMAC-SHA256 signed endpoints, request weights, 429/418), market streams
under ``/ws``, ``/ws/<anything>`` and ``/stream?streams=``, the WebSocket API under ``/ws-api/v3`` for the
user data stream (``executionReport``), and an admin surface under ``/admin`` (faults, clock). See
``docs/exchange.md`` for the list and ``../shared/docs/binance-spot-api.md`` for the reference.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from thunes.exchange.sim import _params as P
from thunes.exchange.sim._engine import fmt
from thunes.exchange.sim._faults import SERVER_ERRORS
from thunes.exchange.sim._params import SimReject
from thunes.exchange.sim._rules import Rejection

if TYPE_CHECKING:  # pragma: no cover
    from thunes.exchange.sim import LocalExchange

__all__ = ["build_app", "sign"]

log = logging.getLogger("thunes.exchange.sim")

# Always fullmatch: "$" also matches before a trailing newline (see _params.py)
_KEY_FORMAT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_STREAM = re.compile(r"[a-z0-9]+@(trade|aggTrade|kline_[0-9]+[smhdwM]|bookTicker|depth[0-9]*(@100ms)?|ticker|miniTicker)")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PARAMS = web.RequestKey("params", dict)
RAW_BODY = web.RequestKey("raw_body", str)


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 hex digest, Binance's request signature."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _strip_signature(raw: str) -> str:
    return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))


def _error(rej: Rejection, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": rej.code, "msg": rej.msg}, status=rej.status, headers=headers)


# -- weights (Binance's, docs rest-api.md) ----------------------------------------------------------------
def _weight(method: str, path: str, params: dict[str, str]) -> int:
    tail = path.removeprefix("/api/v3/")
    if tail == "exchangeInfo" or tail == "account" or tail == "myTrades" or tail == "allOrders":
        return 20
    if tail == "depth":
        limit = P.int_param(params, "limit", default=100)  # malformed: -1100 here, before any weight counts
        assert limit is not None
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if tail in ("ticker/24hr", "ticker/price", "ticker/bookTicker"):
        return 2 if params.get("symbol") else 80
    if tail == "openOrders":
        return 6 if params.get("symbol") else 80
    if tail == "order" and method == "GET":
        return 4
    if tail in ("klines", "uiKlines", "avgPrice"):
        return 2
    return 1


class RateLimiter:
    """Per-IP request weight per wall-clock minute and per-account order counts, with 429 then 418."""

    def __init__(self, weight_limit: int, orders_10s: int, orders_1d: int, ban_after: int, ban_s: int) -> None:
        self.weight_limit, self.orders_10s, self.orders_1d = weight_limit, orders_10s, orders_1d
        self.ban_after, self.ban_s = ban_after, ban_s
        self._weights: dict[tuple[str, int], int] = defaultdict(int)
        self._orders: dict[tuple[str, str, int], int] = defaultdict(int)
        self._strikes: dict[str, int] = defaultdict(int)
        self._banned_until: dict[str, float] = {}

    def used(self, ip: str) -> int:
        return self._weights[(ip, int(time.time() // 60))]

    def admit(self, ip: str, weight: int) -> tuple[Rejection | None, int]:
        """(rejection, retry_after) for a request of ``weight``; counts it when admitted."""
        now = time.time()
        until = self._banned_until.get(ip, 0.0)
        if until > now:
            return Rejection(-1003, f"Way too much request weight used; IP banned until {int(until * 1000)}. "
                                    "Please use WebSocket Streams for live updates to avoid bans.", 418), \
                int(until - now) + 1
        minute = int(now // 60)
        if self._weights[(ip, minute)] + weight > self.weight_limit:
            self._strikes[ip] += 1
            if self._strikes[ip] > self.ban_after:
                self._banned_until[ip] = now + self.ban_s
                self._strikes[ip] = 0
                return self.admit(ip, weight)
            return Rejection(-1003, f"Too many requests; current limit of IP({ip}) is {self.weight_limit} "
                                    "requests per minute. Please use the websocket for live updates to avoid "
                                    "polling the API.", 429), int(60 - now % 60) + 1
        self._strikes[ip] = 0
        self._weights[(ip, minute)] += weight
        return None, 0

    def order(self, account: str) -> tuple[Rejection | None, dict[str, str]]:
        now = time.time()
        k10, kday = int(now // 10), int(now // 86400)
        n10, nday = self._orders[(account, "10s", k10)], self._orders[(account, "1d", kday)]
        if n10 >= self.orders_10s:
            return Rejection(-1015, f"Too many new orders; current limit is {self.orders_10s} orders per "
                                    "10 SECOND.", 429), {"Retry-After": str(int(10 - now % 10) + 1)}
        if nday >= self.orders_1d:
            return Rejection(-1015, f"Too many new orders; current limit is {self.orders_1d} orders per "
                                    "DAY.", 429), {"Retry-After": str(int(86400 - now % 86400) + 1)}
        self._orders[(account, "10s", k10)] = n10 + 1
        self._orders[(account, "1d", kday)] = nday + 1
        return None, {"X-MBX-ORDER-COUNT-10S": str(n10 + 1), "X-MBX-ORDER-COUNT-1D": str(nday + 1)}


class Hub:
    """Websocket connections and the streams each one follows; fans engine events out to them."""

    def __init__(self, sim: "LocalExchange") -> None:
        self.sim = sim
        self.market: dict[web.WebSocketResponse, dict[str, Any]] = {}
        self.user: dict[web.WebSocketResponse, dict[int, str]] = {}  # ws -> {subscriptionId: api_key}
        self._sub_ids = 0

    async def send(self, ws: web.WebSocketResponse, payload: Any) -> None:
        if ws.closed:
            return
        try:
            if self.sim.faults.take("malformed_frames"):
                await ws.send_str('{"e":"trade","E":')  # truncated JSON
                return
            await ws.send_str(json.dumps(payload))
        except (ConnectionError, RuntimeError):  # peer went away mid-send
            pass

    def dispatch(self, event: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        loop.create_task(self._dispatch(event))

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "execution":
            for ws, subs in list(self.user.items()):
                for sub_id, key in subs.items():
                    if key == event["account"]:
                        await self.send(ws, {"subscriptionId": sub_id, "event": event["payload"]})
            return
        if kind == "trade":
            symbol = event["symbol"]
            payload = {"e": "trade", "E": event["time"], "s": symbol, "t": event["id"], "p": fmt(event["price"]),
                       "q": fmt(event["qty"]), "T": event["time"], "m": bool(event["buyer_maker"]), "M": True}
            await self._publish(f"{symbol.lower()}@trade", payload)
            return
        if kind == "tick":
            await self._on_tick(event["prev"], event["time"])

    async def _publish(self, stream: str, payload: dict[str, Any]) -> None:
        for ws, state in list(self.market.items()):
            if stream in state["streams"]:
                await self.send(ws, {"stream": stream, "data": payload} if state["combined"] else payload)

    async def _on_tick(self, prev: int, now: int) -> None:
        wanted: set[str] = set()
        for state in self.market.values():
            wanted |= state["streams"]
        engine = self.sim.engine
        for stream in sorted(wanted):
            sym, _, kind = stream.partition("@")
            symbol = sym.upper()
            if symbol not in engine.feeds:
                continue
            feed = engine.feeds[symbol]
            if kind.startswith("kline_"):
                interval = kind.removeprefix("kline_")
                try:
                    iv_ms = _interval_ms(interval)
                except ValueError:
                    continue
                if not feed.supports(iv_ms):
                    continue
                with engine.lock:
                    rows = feed.klines(iv_ms, now, start=None, end=None, limit=2)
                for row in rows:
                    closed = row[9]
                    if closed and not (row[0] <= prev <= row[6]):
                        continue  # closed before the previous tick: already sent
                    await self._publish(stream, _kline_event(symbol, interval, row, now))
            elif kind == "trade" and engine.opts.market_trades:
                with engine.lock:
                    lo, hi, volume = feed.range_between(prev, now)
                    price = engine.last_price(symbol, now)
                    qty = engine._step_floor(engine.specs[symbol], _dec(volume))
                    trade_id = next(engine._trade_ids[symbol]) if qty > 0 else 0
                if qty > 0:
                    payload = {"e": "trade", "E": now, "s": symbol, "t": trade_id, "p": fmt(price), "q": fmt(qty),
                               "T": now, "m": bool(now % 2), "M": True}
                    await self._publish(stream, payload)

    async def close_all(self, *, shutdown: bool) -> None:
        now = self.sim.engine.clock.now_ms()
        for ws in list(self.market) + list(self.user):
            if shutdown:
                await self.send(ws, {"e": "serverShutdown", "E": now} if ws in self.market else
                                {"subscriptionId": 0, "event": {"e": "serverShutdown", "E": now}})
            await ws.close(code=1001 if shutdown else 1006, message=b"server shutdown" if shutdown else b"dropped")


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _interval_ms(interval: str) -> int:
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    m = re.fullmatch(r"([0-9]+)([smhdw])", interval)
    if not m:
        raise ValueError(f"unsupported interval {interval!r}")
    return int(m.group(1)) * units[m.group(2)]


def _kline_event(symbol: str, interval: str, row: tuple, now: int) -> dict[str, Any]:
    t, o, h, low, c, v, close_ms, qv, n, closed = row
    return {"e": "kline", "E": now, "s": symbol, "k": {
        "t": t, "T": close_ms, "s": symbol, "i": interval, "f": 0, "L": n, "o": fmt(o), "c": fmt(c),
        "h": fmt(h), "l": fmt(low), "v": fmt(v), "n": n, "x": closed, "q": fmt(qv), "V": fmt(v / 2),
        "Q": fmt(qv / 2), "B": "0"}}


def _kline_row(row: tuple) -> list[Any]:
    t, o, h, low, c, v, close_ms, qv, n, _ = row
    return [t, fmt(o), fmt(h), fmt(low), fmt(c), fmt(v), close_ms, fmt(qv), n, fmt(v / 2), fmt(qv / 2), "0"]


def build_app(sim: "LocalExchange") -> web.Application:
    opts = sim.options
    engine = sim.engine
    faults = sim.faults
    limiter = RateLimiter(opts.weight_limit, opts.orders_per_10s, opts.orders_per_day, opts.ban_after_429s,
                          opts.ban_seconds)
    hub = Hub(sim)
    sim._hub = hub

    def auth_now() -> int:
        return time.time_ns() // 1_000_000 + faults.state.clock_skew_ms

    def symbol_arg(params: dict[str, str], required: bool = True) -> str | None:
        """The ``symbol`` parameter, well formed and listed (-1100 / -1102 / -1121)."""
        symbol = P.symbol_param(params, required=required)
        if symbol is not None:
            engine.spec(symbol)
        return symbol

    def symbols_arg(params: dict[str, str]) -> list[str] | None:
        """``symbol`` as a one-item list, else the ``symbols`` JSON list, else ``None`` (all)."""
        many = P.symbols_param(params)
        if many is not None:
            for s in many:
                engine.spec(s)
            return many
        one = symbol_arg(params, required=False)
        return None if one is None else [one]

    # -- middleware: faults, weights, errors ---------------------------------------------------------
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin") or path.startswith("/ws") or path.startswith("/stream"):
            return await handler(request)
        state = faults.state
        faulty = faults.applies(path)
        if faulty and state.stall:
            await asyncio.get_running_loop().run_in_executor(None, faults.cleared.wait, 60.0)
        if faulty and state.delay_ms:
            await asyncio.sleep(state.delay_ms / 1000)
        if faulty:
            status, retry = faults.take_storm()
            if status == 429:
                return _error(Rejection(-1003, "Too many requests; current limit of IP(127.0.0.1) is "
                                               f"{opts.weight_limit} requests per minute.", 429),
                              {"Retry-After": str(retry)})
            if status == 418:
                until = auth_now() + retry * 1000
                return _error(Rejection(-1003, f"Way too much request weight used; IP banned until {until}. "
                                               "Please use WebSocket Streams for live updates to avoid bans.",
                                        418), {"Retry-After": str(retry)})
            code = faults.take_error_code()
            if code:
                status, msg = SERVER_ERRORS[code]
                return _error(Rejection(code, msg, status))
            http_error = faults.take_http_error()
            if http_error == 504:
                return web.Response(status=504, body=b"")
            if http_error:
                reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[http_error]
                return web.Response(status=http_error, text=f"<html><body><h1>{http_error} {reason}</h1></body></html>",
                                    content_type="text/html")
        ip = request.remote or "127.0.0.1"
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
            P.check_names(params, request.method, path)
            request[PARAMS] = params
            request[RAW_BODY] = body
            rejection, retry = limiter.admit(ip, _weight(request.method, path, params))
            if rejection is not None:
                return _error(rejection, {"Retry-After": str(retry),
                                          "X-MBX-USED-WEIGHT-1M": str(limiter.used(ip))})
            response = await handler(request)
        except SimReject as exc:
            response = _error(exc.rejection)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - an exchange answers, it does not crash
            log.exception("internal error on %s %s", request.method, path)
            response = _error(Rejection(-1000, "An unknown error occurred while processing the request.", 500))
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(limiter.used(ip))
        return response

    # -- signed requests -----------------------------------------------------------------------------
    def authenticate(request: web.Request) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key or not _KEY_FORMAT.fullmatch(key):
            raise SimReject(Rejection(-2014, "API-key format invalid.", 401))
        account = engine.accounts.get(key)
        if account is None:
            raise SimReject(Rejection(-2015, "Invalid API-key, IP, or permissions for action.", 401))
        params = request[PARAMS]
        if not params.get("timestamp"):
            raise SimReject(Rejection(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or "
                                             "malformed."))
        given = params.get("signature")
        if not given:
            raise SimReject(Rejection(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or "
                                             "malformed."))
        payload = _strip_signature(request.rel_url.raw_query_string) + _strip_signature(request[RAW_BODY])
        # compare_digest raises TypeError on non-ASCII text: such a signature is simply not valid
        if not given.isascii() or not hmac.compare_digest(sign(account.spec.secret, payload), given.lower()):
            raise SimReject(Rejection(-1022, "Signature for this request is not valid."))
        ts = P.timestamp_param(params)  # ms (microseconds are scaled down)
        recv = P.recv_window_param(params)  # finite, in (0, 60000]
        now = auth_now()
        if ts >= now + 1000:
            raise SimReject(Rejection(-1021, "Timestamp for this request was 1000ms ahead of the server's time."))
        if now - ts > recv:
            raise SimReject(Rejection(-1021, "Timestamp for this request is outside of the recvWindow."))
        return key

    # -- public endpoints ----------------------------------------------------------------------------
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async def server_time(request: web.Request) -> web.Response:
        return web.json_response({"serverTime": auth_now()})

    async def exchange_info(request: web.Request) -> web.Response:
        wanted = symbols_arg(request[PARAMS])
        P.bool_param(request[PARAMS], "showPermissionSets")
        symbols = []
        for name in wanted or list(engine.specs):
            symbols.append(dict(engine.spec(name).info))
        return web.json_response({
            "timezone": "UTC", "serverTime": auth_now(), "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": opts.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": opts.orders_per_10s},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": opts.orders_per_day},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}],
            "exchangeFilters": [], "symbols": symbols})

    async def klines(request: web.Request) -> web.Response:
        params = request[PARAMS]
        symbol = symbol_arg(params)
        interval = P.enum_param(params, "interval", P.INTERVALS, required=True, code=-1120, msg="Invalid interval.")
        assert symbol is not None and interval is not None
        if interval == "1M":
            raise SimReject(Rejection(-1120, "Invalid interval. (the local exchange has no calendar-month candles)"))
        iv_ms = _interval_ms(interval)
        feed = engine.feeds[symbol]
        if not feed.supports(iv_ms):
            raise SimReject(Rejection(-1120, f"Invalid interval. (this local market replays {feed.tf_ms // 60000}m "
                                              "candles; ask for a multiple of that)"))
        limit = P.int_param(params, "limit", default=500, lo=1, hi=1000)
        start, end = P.int_param(params, "startTime"), P.int_param(params, "endTime")
        assert limit is not None
        with engine.lock:
            rows = feed.klines(iv_ms, engine.clock.now_ms(), start=start, end=end, limit=limit)
        return web.json_response([_kline_row(r) for r in rows])

    def ticker_payload(symbol: str) -> dict[str, Any]:
        with engine.lock:
            now = engine.clock.now_ms()
            o, h, low, last, vol = engine.feeds[symbol].day_stats(now)
            bids, asks = engine.book(symbol, 1)
            lastp = engine.last_price(symbol)
        change = float(lastp) - o
        vwap = (h + low + float(lastp)) / 3
        return {
            "symbol": symbol, "priceChange": fmt(change), "priceChangePercent": f"{100 * change / o:.3f}",
            "weightedAvgPrice": fmt(vwap), "prevClosePrice": fmt(o), "lastPrice": fmt(lastp),
            "lastQty": fmt(bids[0][1] / 100 if bids else 0), "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1]),
            "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1]), "openPrice": fmt(o), "highPrice": fmt(h),
            "lowPrice": fmt(low), "volume": fmt(vol), "quoteVolume": fmt(vol * vwap),
            "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 1, "count": 1}

    def one_or_many(params: dict[str, str], rows: Callable[[str], dict[str, Any]]) -> web.Response:
        """Binance's ticker shape: an object for ``symbol``, a list for ``symbols`` or for all."""
        wanted = symbols_arg(params)
        if wanted is not None and params.get("symbol") is not None:
            return web.json_response(rows(wanted[0]))
        return web.json_response([rows(s) for s in (wanted or list(engine.specs))])

    async def ticker_24hr(request: web.Request) -> web.Response:
        P.enum_param(request[PARAMS], "type", ("FULL",), code=-1130,
                     msg="Data sent for parameter 'type' is not valid. (the local exchange serves FULL only)")
        return one_or_many(request[PARAMS], ticker_payload)

    async def ticker_price(request: web.Request) -> web.Response:
        return one_or_many(request[PARAMS], lambda s: {"symbol": s, "price": fmt(engine.last_price(s))})

    def book_row(s: str) -> dict[str, Any]:
        with engine.lock:
            bids, asks = engine.book(s, 1)
        return {"symbol": s, "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1]),
                "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1])}

    async def book_ticker(request: web.Request) -> web.Response:
        return one_or_many(request[PARAMS], book_row)

    async def depth(request: web.Request) -> web.Response:
        params = request[PARAMS]
        symbol = symbol_arg(params)
        limit = min(P.int_param(params, "limit", default=100, lo=1) or 100, 5000)  # Binance truncates at 5000
        assert symbol is not None
        with engine.lock:
            bids, asks = engine.book(symbol, limit)
            update_id = engine.clock.now_ms()
        return web.json_response({"lastUpdateId": update_id, "bids": [[fmt(p), fmt(q)] for p, q in bids],
                                  "asks": [[fmt(p), fmt(q)] for p, q in asks]})

    async def avg_price(request: web.Request) -> web.Response:
        symbol = symbol_arg(request[PARAMS])
        return web.json_response({"mins": 5, "price": fmt(engine.last_price(symbol)),
                                  "closeTime": engine.clock.now_ms()})

    # -- signed endpoints ----------------------------------------------------------------------------
    async def account(request: web.Request) -> web.Response:
        key = authenticate(request)
        info = engine.account_info(key)
        if P.bool_param(request[PARAMS], "omitZeroBalances"):
            info["balances"] = [b for b in info["balances"] if Decimal(b["free"]) or Decimal(b["locked"])]
        return web.json_response(info)

    async def new_order(request: web.Request) -> web.StreamResponse:
        key = authenticate(request)
        params = request[PARAMS]
        resp_type = P.enum_param(params, "newOrderRespType", ("ACK", "RESULT", "FULL"), default="FULL", upper=True)
        P.order_extras(params)
        rejection, headers = limiter.order(key)
        if rejection is not None:
            return _error(rejection, headers)
        order, fills = engine.place(key, params)
        if faults.applies(request.path) and faults.take("lose_order_responses"):
            if faults.state.lose_mode == "drop":
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError  # nothing goes back: the socket is gone
            return web.Response(status=504, body=b"")
        body: dict[str, Any] = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
                                "clientOrderId": order.client_order_id, "transactTime": order.time}
        if resp_type in ("RESULT", "FULL"):
            view = order.view()
            for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
                      "side", "workingTime", "selfTradePreventionMode"):
                body[k] = view[k]
            body["origQuoteOrderQty"] = view["origQuoteOrderQty"]
        if resp_type == "FULL":
            body["fills"] = fills
        return web.json_response(body, headers=headers)

    async def test_order(request: web.Request) -> web.Response:
        key = authenticate(request)
        params = request[PARAMS]
        symbol = symbol_arg(params)
        side = P.enum_param(params, "side", ("BUY", "SELL"), required=True, upper=True, code=-1117,
                            msg="Invalid side.")
        otype = P.enum_param(params, "type", ("LIMIT", "MARKET", "LIMIT_MAKER"), required=True, upper=True,
                             code=-1116, msg="Invalid orderType.")
        P.enum_param(params, "timeInForce", ("GTC", "IOC", "FOK"), code=-1115, msg="Invalid timeInForce.")
        P.client_id_param(params, "newClientOrderId")
        P.enum_param(params, "newOrderRespType", ("ACK", "RESULT", "FULL"), upper=True)
        P.bool_param(params, "computeCommissionRates")
        P.order_extras(params)
        qty, quote_qty, price = (P.decimal_param(params, n) for n in ("quantity", "quoteOrderQty", "price"))
        assert symbol is not None and side is not None and otype is not None
        with engine.lock:
            spec = engine.spec(symbol)
            from thunes.exchange.sim._rules import check_filters  # local: test-only path
            rej = check_filters(spec, side=side, order_type="MARKET" if otype == "MARKET" else "LIMIT",
                                qty=qty, quote_qty=quote_qty, price=price,
                                avg_price=engine.last_price(spec.symbol), open_orders=0)
        del key
        if rej is not None:
            raise SimReject(rej)
        return web.json_response({})

    async def get_order(request: web.Request) -> web.Response:
        key = authenticate(request)
        return web.json_response(engine.query(key, request[PARAMS]))

    async def cancel_order(request: web.Request) -> web.Response:
        key = authenticate(request)
        return web.json_response(engine.cancel(key, request[PARAMS]))

    async def open_orders(request: web.Request) -> web.Response:
        key = authenticate(request)
        symbol = symbol_arg(request[PARAMS], required=False)
        return web.json_response(engine.open_orders(key, symbol))

    async def cancel_open_orders(request: web.Request) -> web.Response:
        key = authenticate(request)
        symbol = symbol_arg(request[PARAMS])
        out = []
        for o in engine.open_orders(key, symbol):
            out.append(engine.cancel(key, {"symbol": symbol or "", "orderId": str(o["orderId"])}))
        return web.json_response(out)

    async def all_orders(request: web.Request) -> web.Response:
        key = authenticate(request)
        params = request[PARAMS]
        symbol = symbol_arg(params)
        limit = P.int_param(params, "limit", default=500, lo=1, hi=1000)
        from_id = P.int_param(params, "orderId")
        start, end = P.int_param(params, "startTime"), P.int_param(params, "endTime")
        assert limit is not None
        with engine.lock:
            rows = [o.view() for (s, _), o in sorted(engine._orders.items()) if s == symbol and o.account == key
                    and (from_id is None or o.order_id >= from_id) and (start is None or o.time >= start)
                    and (end is None or o.time <= end)]
        # Binance: from orderId (or startTime) forward, else the most recent ones
        return web.json_response(rows[:limit] if from_id is not None or start is not None else rows[-limit:])

    async def my_trades(request: web.Request) -> web.Response:
        key = authenticate(request)
        return web.json_response(engine.my_trades(key, request[PARAMS]))

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text=f"the local exchange does not serve {request.path}")

    # -- admin ---------------------------------------------------------------------------------------
    async def admin_faults(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            faults.clear()
        elif request.method == "POST":
            payload = await request.json()
            action = payload.pop("action", None)
            if payload:
                try:
                    faults.set(**payload)
                except Exception as exc:  # noqa: BLE001 - report to the caller
                    return web.json_response({"error": str(exc)}, status=400)
            if action == "drop_ws":
                await hub.close_all(shutdown=False)
            elif action == "server_shutdown":
                await hub.close_all(shutdown=True)
            elif action is not None:
                return web.json_response({"error": f"unknown action {action!r}"}, status=400)
        import dataclasses
        return web.json_response(dataclasses.asdict(faults.state))

    async def admin_clock(request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = await request.json()
                to, steps = payload.get("to"), payload.get("steps")
                if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (to, steps)):
                    raise ValueError
            except (ValueError, AttributeError):
                return web.json_response({"error": "expected a JSON object {\"to\": ms} or {\"steps\": n}"},
                                         status=400)
            loop = asyncio.get_running_loop()
            if to is not None:
                await loop.run_in_executor(None, sim.advance_to, to)
            elif steps is not None:
                await loop.run_in_executor(None, sim.step, steps)
        return web.json_response({"now": engine.clock.now_ms(), "speed": opts.speed})

    # -- websockets ----------------------------------------------------------------------------------
    async def _pinger(ws: web.WebSocketResponse, state: dict[str, Any]) -> None:
        interval, timeout = opts.ws_ping_interval_s, opts.ws_pong_timeout_s
        started = time.monotonic()
        while not ws.closed:
            await asyncio.sleep(min(interval, 0.5) if interval > 0.5 else interval)
            now = time.monotonic()
            if now - started > opts.ws_max_lifetime_s:
                await ws.close(code=1000, message=b"24h connection lifetime reached")
                return
            if now - state["last_ping"] >= interval:
                state["last_ping"] = now
                try:
                    await ws.ping(str(int(now * 1000)).encode())
                except (ConnectionError, RuntimeError):
                    return
            if now - state["last_pong"] > timeout:
                await ws.close(code=1008, message=b"pong timeout")
                return

    async def market_ws(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        streams: set[str] = set()
        if combined:
            streams |= {s for s in request.query.get("streams", "").split("/") if s}
        else:
            tail = request.match_info.get("tail", "")
            streams |= {s for s in tail.split("/") if "@" in s}
        state = {"streams": streams, "combined": combined}
        hub.market[ws] = state
        return await _converse(ws, state, _control, hub.market)

    async def _converse(ws: web.WebSocketResponse, state: dict[str, Any],
                        on_text: Callable[[web.WebSocketResponse, dict[str, Any], str], Awaitable[None]],
                        registry: dict[web.WebSocketResponse, Any]) -> web.WebSocketResponse:
        """Serve one websocket until it closes: server pings, pong bookkeeping, text frames to ``on_text``."""
        now = time.monotonic()
        state.update(last_pong=now, last_ping=now)
        pinger = asyncio.get_running_loop().create_task(_pinger(ws, state))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    state["last_pong"] = time.monotonic()
                elif msg.type == WSMsgType.TEXT:
                    await on_text(ws, state, msg.data)
        finally:
            pinger.cancel()
            registry.pop(ws, None)
        return ws

    async def _control(ws: web.WebSocketResponse, state: dict[str, Any], text: str) -> None:
        try:
            msg = json.loads(text)
            method, req_id = msg.get("method"), msg.get("id")
        except (ValueError, AttributeError):
            await hub.send(ws, {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
            return
        params = msg.get("params") or []
        if not isinstance(params, list):
            await hub.send(ws, {"error": {"code": 2, "msg": "Invalid request: 'params' must be a list"}, "id": req_id})
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [p for p in params if not isinstance(p, str) or not _STREAM.fullmatch(p)]
            if bad:
                await hub.send(ws, {"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r}"},
                                    "id": req_id})
                return
            if method == "SUBSCRIBE":
                state["streams"] |= set(params)
            else:
                state["streams"] -= set(params)
            await hub.send(ws, {"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await hub.send(ws, {"result": sorted(state["streams"]), "id": req_id})
        elif method == "SET_PROPERTY" and params and params[0] == "combined":
            state["combined"] = bool(params[1])
            await hub.send(ws, {"result": None, "id": req_id})
        elif method == "GET_PROPERTY" and params and params[0] == "combined":
            await hub.send(ws, {"result": state["combined"], "id": req_id})
        else:
            await hub.send(ws, {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                                "id": req_id})

    async def ws_api(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        hub.user[ws] = {}
        return await _converse(ws, {"session_key": None}, _api_request, hub.user)

    def _ws_verify(params: dict[str, Any]) -> str:
        key = str(params.get("apiKey", ""))
        if not _KEY_FORMAT.fullmatch(key):
            raise SimReject(Rejection(-2014, "API-key format invalid.", 401))
        account = engine.accounts.get(key)
        if account is None:
            raise SimReject(Rejection(-2015, "Invalid API-key, IP, or permissions for action.", 401))
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        given = str(params.get("signature", ""))
        if not given.isascii() or not hmac.compare_digest(sign(account.spec.secret, payload), given.lower()):
            raise SimReject(Rejection(-1022, "Signature for this request is not valid."))
        # JSON values go through the REST parsers: 1e400, NaN, "abc" or a list is a -1100, never a crash
        fields = {k: v for k in ("timestamp", "recvWindow") if (v := P.ws_value(params.get(k))) is not None}
        ts, recv = P.timestamp_param(fields), P.recv_window_param(fields)
        now = auth_now()
        if ts >= now + 1000 or now - ts > recv:
            raise SimReject(Rejection(-1021, "Timestamp for this request is outside of the recvWindow."))
        return key

    async def _api_request(ws: web.WebSocketResponse, state: dict[str, Any], text: str) -> None:
        try:
            msg = json.loads(text)
            req_id, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("params is not an object")
        except (ValueError, AttributeError):
            await hub.send(ws, {"id": None, "status": 400, "error": {"code": -1100, "msg": "Malformed request."}})
            return
        try:
            if method == "userDataStream.subscribe.signature":
                key = _ws_verify(params)
                hub._sub_ids += 1
                hub.user[ws][hub._sub_ids] = key
                result: Any = {"subscriptionId": hub._sub_ids}
            elif method == "session.logon":
                state["session_key"] = _ws_verify(params)
                result = {"apiKey": state["session_key"], "authorizedSince": auth_now(), "serverTime": auth_now()}
            elif method == "userDataStream.subscribe":
                if not state["session_key"]:
                    raise SimReject(Rejection(-2015, "Invalid API-key, IP, or permissions for action.", 401))
                hub._sub_ids += 1
                hub.user[ws][hub._sub_ids] = state["session_key"]
                result = {"subscriptionId": hub._sub_ids}
            elif method == "userDataStream.unsubscribe":
                sub = P.int_param({"subscriptionId": v} if (v := P.ws_value(params.get("subscriptionId"))) is not None
                                  else {}, "subscriptionId")
                if sub is None:
                    hub.user[ws].clear()
                else:
                    hub.user[ws].pop(sub, None)
                result = {}
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": auth_now()}
            else:
                raise SimReject(Rejection(-1000, f"Unsupported method {method!r} on the local exchange."))
            await hub.send(ws, {"id": req_id, "status": 200, "result": result})
        except SimReject as exc:
            await hub.send(ws, {"id": req_id, "status": exc.rejection.status,
                                "error": {"code": exc.rejection.code, "msg": exc.rejection.msg}})

    app = web.Application(middlewares=[middleware])
    r = app.router
    r.add_get("/api/v3/ping", ping)
    r.add_get("/api/v3/time", server_time)
    r.add_get("/api/v3/exchangeInfo", exchange_info)
    r.add_get("/api/v3/klines", klines)
    r.add_get("/api/v3/uiKlines", klines)
    r.add_get("/api/v3/ticker/24hr", ticker_24hr)
    r.add_get("/api/v3/ticker/price", ticker_price)
    r.add_get("/api/v3/ticker/bookTicker", book_ticker)
    r.add_get("/api/v3/depth", depth)
    r.add_get("/api/v3/avgPrice", avg_price)
    r.add_get("/api/v3/account", account)
    r.add_post("/api/v3/order", new_order)
    r.add_post("/api/v3/order/test", test_order)
    r.add_get("/api/v3/order", get_order)
    r.add_delete("/api/v3/order", cancel_order)
    r.add_get("/api/v3/openOrders", open_orders)
    r.add_delete("/api/v3/openOrders", cancel_open_orders)
    r.add_get("/api/v3/allOrders", all_orders)
    r.add_get("/api/v3/myTrades", my_trades)
    r.add_route("*", "/admin/faults", admin_faults)
    r.add_route("*", "/admin/clock", admin_clock)
    r.add_get("/ws", market_ws)
    r.add_get("/ws/{tail:.*}", market_ws)
    r.add_get("/stream", market_ws)
    r.add_get("/ws-api/v3", ws_api)
    r.add_route("*", "/{tail:.*}", not_found)

    def on_ws_action(action: str) -> None:
        loop = sim._loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(hub.close_all(shutdown=action == "shutdown"), loop).result(5)

    faults.on_ws_action(on_ws_action)
    return app
