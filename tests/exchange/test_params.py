"""Malformed request parameters get Binance's 4xx answer from the local exchange, never a 5xx or a fill.

Rules (Binance errors.md; thunes/exchange/sim/_params.py holds the one parser every endpoint uses):
a value not of its parameter's shape is -1100, a mandatory one missing or empty -1102, an optional one sent
empty -1105, a well-formed value out of range -1130 (an enum has its own code: -1115 timeInForce, -1116 type,
-1117 side, -1120 interval), a name sent twice -1101, recvWindow outside (0, 60000] -1131. Real HTTP against a
started LocalExchange, signed the way Binance documents it.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from thunes.exchange.sim import LocalExchange, SimOptions
from thunes.exchange.sim._params import ENDPOINT_PARAMS, NOT_IMPLEMENTED, STP_MODES
from thunes.exchange.sim._server import sign

LISTED = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def sim():
    """A small synthetic market whose rate limits never get in the way of the fuzzing."""
    opts = SimOptions(synthetic_bars=400, history_bars=100, weight_limit=10**9, orders_per_10s=10**9,
                      orders_per_day=10**9)
    with LocalExchange(opts) as running:
        yield running


def _call(sim: LocalExchange, method: str, path: str, params: dict[str, str], *, signed: bool,
          timestamp: str | None = None, body: bytes | None = None) -> tuple[int, dict]:
    """One request; signed ones carry a fresh timestamp (unless given) and sign query + body as sent."""
    fields = dict(params)
    if signed and "timestamp" not in fields:
        fields["timestamp"] = timestamp if timestamp is not None else str(int(time.time() * 1000))
    encoded = urllib.parse.urlencode(fields)
    query, form = ("", encoded) if method == "POST" else (encoded, "")
    if body is not None:
        form = body.decode("latin-1")
    if signed:
        signature = "signature=" + sign(sim.secret, query + form)
        if method == "POST" and body is None:
            form += "&" + signature
        else:
            query = f"{query}&{signature}" if query else signature
    host, port = urllib.parse.urlsplit(sim.base_url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        headers = {"X-MBX-APIKEY": sim.api_key, "Content-Type": "application/x-www-form-urlencoded"}
        joiner = "&" if "?" in path else "?"
        conn.request(method, path + (f"{joiner}{query}" if query else ""),
                     body=body if body is not None else (form.encode() if form else None), headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, {"raw": raw.decode("utf-8", "replace")}


def _near_price(sim: LocalExchange) -> str:
    return str(sim.last_price("BTC/USDT").normalize())


# -- the cases from the issue --------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "params", "signed"), [
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "abc"}, False),
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "abc"}, False),
    ("/api/v3/allOrders", {"symbol": "BTCUSDT", "limit": "abc"}, True),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"}, False),
    ("/api/v3/myTrades", {"symbol": "BTCUSDT", "fromId": "abc"}, True),
    ("/api/v3/exchangeInfo", {"symbols": "notjson"}, False),
    ("/api/v3/account", {}, True),  # timestamp=inf, below
])
def test_malformed_values_reported_in_the_issue_are_400_and_1100(sim, path, params, signed):
    status, body = _call(sim, "GET", path, params, signed=signed, timestamp="inf" if not params else None)
    assert status == 400
    assert body["code"] == -1100
    assert body["msg"].startswith("Illegal characters found in parameter '")


def test_limit_abc_names_the_parameter_and_binance_legal_range(sim):
    status, body = _call(sim, "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "abc"},
                         signed=False)
    assert (status, body) == (400, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'; "
                                                          "legal range is '^[0-9]{1,20}$'."})


@pytest.mark.parametrize("recv_window", ["nan", "NaN", "inf", "-inf", "1e400", "-5", " 5000", "5000\n"])
def test_a_non_finite_or_malformed_recv_window_never_disables_the_timestamp_check(sim, recv_window):
    # Arrange: an hour-old timestamp, which a recvWindow of nan would let through to a fill (now - ts > nan is false)
    stale = str(int(time.time() * 1000) - 3_600_000)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001", "recvWindow": recv_window,
             "newClientOrderId": "stale-recv"}
    # Act
    status, body = _call(sim, "POST", "/api/v3/order", order, signed=True, timestamp=stale)
    # Assert: refused, and no order exists
    assert (status, body["code"]) == (400, -1100)
    assert "recvWindow" in body["msg"]
    assert not any(o["clientOrderId"] == "stale-recv" for o in
                   _call(sim, "GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}, signed=True)[1])


@pytest.mark.parametrize("recv_window", ["0", "0.000", "60000.001", "60001", "99999999999999999999"])
def test_recv_window_outside_0_to_60000_is_1131(sim, recv_window):
    status, body = _call(sim, "GET", "/api/v3/account", {"recvWindow": recv_window}, signed=True)
    assert (status, body) == (400, {"code": -1131, "msg": "recvWindow must be less than 60000"})


def test_recv_window_with_three_decimals_is_accepted(sim):
    assert _call(sim, "GET", "/api/v3/account", {"recvWindow": "5000.125"}, signed=True)[0] == 200


def test_a_stale_timestamp_is_still_1021_with_a_valid_recv_window(sim):
    stale = str(int(time.time() * 1000) - 3_600_000)
    status, body = _call(sim, "GET", "/api/v3/account", {"recvWindow": "60000"}, signed=True, timestamp=stale)
    assert (status, body["code"]) == (400, -1021)


@pytest.mark.parametrize(("name", "value"), [
    ("quantity", "0.001\n"), ("quantity", "\n0.001"), ("newClientOrderId", "x\n"), ("price", "1e5"),
    ("quantity", "١"),  # an Arabic-Indic digit: int() and Decimal() read it, Binance does not
])
def test_trailing_newline_and_unicode_digits_are_illegal_characters(sim, name, value):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
             "price": _near_price(sim), "newClientOrderId": "nl-case", name: value}
    status, body = _call(sim, "POST", "/api/v3/order", order, signed=True)
    assert (status, body["code"]) == (400, -1100)
    assert f"parameter '{name}'" in body["msg"]
    assert not any(o["clientOrderId"] in ("nl-case", "x\n") for o in
                   _call(sim, "GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}, signed=True)[1])


def test_a_parameter_sent_twice_is_1101(sim):
    status, body = _call(sim, "GET", "/api/v3/depth?limit=5", {"symbol": "BTCUSDT", "limit": "10"}, signed=False)
    assert (status, body) == (400, {"code": -1101, "msg": "Duplicate values for a parameter detected."})


@pytest.mark.parametrize("signature", ["ü" * 64, "zz", "%00"])
def test_a_non_hex_or_non_ascii_signature_is_1022_not_a_crash(sim, signature):
    query = urllib.parse.urlencode({"timestamp": str(int(time.time() * 1000)), "signature": signature})
    host, port = urllib.parse.urlsplit(sim.base_url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": sim.api_key})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert (resp.status, body) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})


def test_a_body_that_is_not_utf8_is_1100(sim):
    status, body = _call(sim, "POST", "/api/v3/order", {}, signed=True, body=b"symbol=BTC\xff\xfeUSDT&side=BUY")
    assert (status, body["code"]) == (400, -1100)


@pytest.mark.parametrize(("path", "params", "code"), [
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": ""}, -1105),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": ""}, -1102),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "0m"}, -1120),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1130),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1001"}, -1130),
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "-5"}, -1100),
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "99999999999999999999"}, -1100),  # beyond int64
    ("/api/v3/depth", {"symbol": "BTC USDT"}, -1100),
    ("/api/v3/depth", {"symbol": "NOPEUSDT"}, -1121),
    ("/api/v3/exchangeInfo", {"symbols": '["BTCUSDT","BTCUSDT"]'}, -1151),
    ("/api/v3/exchangeInfo", {"symbols": "[]"}, -1130),
    ("/api/v3/exchangeInfo", {"symbols": '["BTCUSDT"]', "symbol": "BTCUSDT"}, -1128),
    ("/api/v3/ticker/price", {"symbols": '{"a": 1}'}, -1100),
])
def test_public_parameter_answers(sim, path, params, code):
    status, body = _call(sim, "GET", path, params, signed=False)
    assert (status, body["code"]) == (400, code)


def test_symbols_json_list_is_served(sim):
    status, body = _call(sim, "GET", "/api/v3/ticker/price", {"symbols": '["BTCUSDT","ETHUSDT"]'}, signed=False)
    assert status == 200
    assert [row["symbol"] for row in body] == ["BTCUSDT", "ETHUSDT"]


# -- fuzzing: every endpoint, every parameter ------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """A parameter's kind and the answer Binance gives to a value of the wrong shape or range."""

    name: str
    required: bool = False
    choices: tuple[str, ...] = ()
    code: int = -1130  # for an enum value outside its choices
    lo: int | None = None
    hi: int | None = None
    upper: bool = False  # the local exchange forgives lower case for this enum


def _expected(kind: Kind, value: str) -> int | None:
    """The code for ``value``, written from the rules in the module docstring; ``None`` if it is valid."""
    if value == "":
        if kind.name == "client_id":
            return None  # -1118/-1119, checked below by name
        return -1102 if kind.required else -1105
    if kind.name in ("int", "timestamp"):
        if not re.fullmatch(r"[0-9]{1,20}", value) or int(value) > 2**63 - 1:
            return -1100
        v = int(value)
        return -1130 if (kind.lo is not None and v < kind.lo) or (kind.hi is not None and v > kind.hi) else None
    if kind.name == "decimal":
        return None if re.fullmatch(r"[0-9]{1,20}(\.[0-9]{1,20})?", value) else -1100
    if kind.name == "recv_window":
        if not re.fullmatch(r"[0-9]{1,20}(\.[0-9]{1,3})?", value):
            return -1100
        return None if 0 < float(value) <= 60000 else -1131
    if kind.name == "bool":
        return None if value.lower() in ("true", "false") else -1130
    if kind.name == "enum":
        return None if value.isascii() and (value.upper() if kind.upper else value) in kind.choices else kind.code
    if kind.name == "symbol":
        if not (value.isascii() and re.fullmatch(r"[A-Z0-9_.-]{1,20}", value.upper())):
            return -1100
        return None if value.upper() in LISTED else -1121
    if kind.name == "symbols":
        try:
            parsed = json.loads(value)
        except ValueError:
            return -1100
        if not isinstance(parsed, list) or not all(
                isinstance(s, str) and s.isascii() and re.fullmatch(r"[A-Z0-9_.-]{1,20}", s.upper()) for s in parsed):
            return -1100
        return None  # well-formed lists: covered by test_public_parameter_answers
    if kind.name == "client_id":
        return None if re.fullmatch(r"[a-zA-Z0-9_-]{1,36}", value) else -1100
    raise AssertionError(kind)


INT = Kind("int")
DECIMAL = Kind("decimal")
SYMBOL = Kind("symbol", required=True)
SYMBOL_OPT = Kind("symbol")
SYMBOLS = Kind("symbols")
CLIENT_ID = Kind("client_id")
LIMIT_1000 = Kind("int", lo=1, hi=1000)
SIDE = Kind("enum", required=True, choices=("BUY", "SELL"), code=-1117, upper=True)
TYPE = Kind("enum", required=True, choices=("LIMIT", "MARKET", "LIMIT_MAKER"), code=-1116, upper=True)
TIF = Kind("enum", choices=("GTC", "IOC", "FOK"), code=-1115)
RESP = Kind("enum", choices=("ACK", "RESULT", "FULL"), upper=True)
# Binance's intervals (enums.md) but 1M: the local exchange has no calendar months (-1120 like any other)
INTERVAL = Kind("enum", required=True, code=-1120, choices=("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h",
                                                            "6h", "8h", "12h", "1d", "3d", "1w"))
SIGNED = {"timestamp": Kind("timestamp", required=True), "recvWindow": Kind("recv_window")}
ORDER = {"symbol": SYMBOL, "side": SIDE, "type": TYPE, "timeInForce": TIF, "quantity": DECIMAL, "price": DECIMAL,
         "quoteOrderQty": DECIMAL, "newClientOrderId": CLIENT_ID, "newOrderRespType": RESP, "strategyId": INT,
         "strategyType": Kind("int", lo=1_000_000), "selfTradePreventionMode": Kind("enum", choices=STP_MODES)}
KLINES = {"symbol": SYMBOL, "interval": INTERVAL,
          "limit": LIMIT_1000, "startTime": INT, "endTime": INT}
TICKER = {"symbol": SYMBOL_OPT, "symbols": SYMBOLS}

# (method, path, signed, valid base parameters, the parameters to fuzz)
ENDPOINTS = [
    ("GET", "/api/v3/exchangeInfo", False, {}, {**TICKER, "showPermissionSets": Kind("bool")}),
    ("GET", "/api/v3/klines", False, {"symbol": "BTCUSDT", "interval": "1m"}, KLINES),
    ("GET", "/api/v3/uiKlines", False, {"symbol": "BTCUSDT", "interval": "1m"}, KLINES),
    ("GET", "/api/v3/depth", False, {"symbol": "BTCUSDT"}, {"symbol": SYMBOL, "limit": Kind("int", lo=1)}),
    ("GET", "/api/v3/avgPrice", False, {"symbol": "BTCUSDT"}, {"symbol": SYMBOL}),
    ("GET", "/api/v3/ticker/24hr", False, {}, {**TICKER, "type": Kind("enum", choices=("FULL",))}),
    ("GET", "/api/v3/ticker/price", False, {}, TICKER),
    ("GET", "/api/v3/ticker/bookTicker", False, {}, TICKER),
    ("GET", "/api/v3/account", True, {}, {"omitZeroBalances": Kind("bool")}),
    ("POST", "/api/v3/order", True, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                     "quantity": "0.001", "price": "PRICE"}, ORDER),
    ("POST", "/api/v3/order/test", True, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                          "timeInForce": "GTC", "quantity": "0.001", "price": "PRICE"},
     {**ORDER, "computeCommissionRates": Kind("bool")}),
    ("GET", "/api/v3/order", True, {"symbol": "BTCUSDT", "orderId": "1"},
     {"symbol": SYMBOL, "orderId": INT, "origClientOrderId": CLIENT_ID}),
    ("DELETE", "/api/v3/order", True, {"symbol": "BTCUSDT", "orderId": "1"},
     {"symbol": SYMBOL, "orderId": INT, "origClientOrderId": CLIENT_ID, "newClientOrderId": CLIENT_ID}),
    ("GET", "/api/v3/openOrders", True, {}, {"symbol": SYMBOL_OPT}),
    ("DELETE", "/api/v3/openOrders", True, {"symbol": "BTCUSDT"}, {"symbol": SYMBOL}),
    ("GET", "/api/v3/allOrders", True, {"symbol": "BTCUSDT"},
     {"symbol": SYMBOL, "orderId": INT, "startTime": INT, "endTime": INT, "limit": LIMIT_1000}),
    ("GET", "/api/v3/myTrades", True, {"symbol": "BTCUSDT"},
     {"symbol": SYMBOL, "orderId": INT, "startTime": INT, "endTime": INT, "fromId": INT, "limit": LIMIT_1000}),
]
CASES = [pytest.param(m, p, s, base, name, kind, id=f"{m} {p} {name}")
         for m, p, s, base, params in ENDPOINTS
         for name, kind in {**params, **(SIGNED if s else {})}.items()]

# Values that broke, or could break, a parser: non-numeric, non-finite, signed, exponent, huge, whitespace,
# a trailing newline, Unicode digits and letters, JSON and URL garbage, NUL.
NASTY = ["abc", "inf", "-inf", "Infinity", "nan", "NaN", "-1", "-0", "+1", "1e3", "0x10", "1_000", "1.5", "1.",
         ".5", "99999999999999999999", "9" * 40, " 1", "1 ", "1\n", "\n1", "1\r\n", "\t", "١٢٣", "１２", "ß", "ſell",
         "buy\n", "BTCUSDT\n", "btcusdt", "[", "[]", "{}", "null", "true", '["BTCUSDT"', '["BTC USDT"]', "%",
         "%00", "&", "=", "\x00", "💥", "a" * 37, ""]
# Run for every parameter on top of the random draws: the cases from the issue and their relatives.
ALWAYS = ["abc", "inf", "nan", "-1", "1e3", "99999999999999999999", "1\n", " 1", "١٢٣", "[", "💥", ""]
VALUES = st.one_of(st.sampled_from(NASTY), st.text(max_size=30),
                   st.from_regex(r"-?[0-9]{0,25}(\.[0-9]{0,25})?", fullmatch=True))


def test_the_fuzz_covers_every_endpoint_and_every_parameter_the_local_exchange_reads():
    """A new endpoint or parameter cannot escape the fuzz: the tables here must list all of them."""
    fuzzed = {(m, p): set(params) | ({"timestamp", "recvWindow", "signature"} if s else set())
              for m, p, s, _, params in ENDPOINTS}
    fuzzed |= {("GET", "/api/v3/ping"): set(), ("GET", "/api/v3/time"): set()}
    assert fuzzed.keys() == ENDPOINT_PARAMS.keys()
    for key, names in ENDPOINT_PARAMS.items():
        assert names - NOT_IMPLEMENTED == fuzzed[key], key


@pytest.mark.parametrize(("method", "path", "signed"), [(m, p, s) for m, p, s, *_ in ENDPOINTS]
                         + [("GET", "/api/v3/ping", False), ("GET", "/api/v3/time", False)])
def test_a_parameter_the_endpoint_does_not_know_is_1104(sim, method, path, signed):
    base = next((b for m, p, _, b, _ in ENDPOINTS if (m, p) == (method, path)), {})
    params = {k: (_near_price(sim) if v == "PRICE" else v) for k, v in base.items()}
    status, body = _call(sim, method, path, {**params, "reduceOnly": "true"}, signed=signed)
    sent = len(params) + 1 + (2 if signed else 0)  # + reduceOnly, + timestamp and signature when signed
    assert status == 400 and body["code"] == -1104, body
    assert body["msg"] == f"Not all sent parameters were read; read '{sent - 1}' parameter(s) but was sent '{sent}'."


@pytest.mark.parametrize("name", sorted(NOT_IMPLEMENTED & ENDPOINT_PARAMS[("POST", "/api/v3/order")]))
def test_an_order_parameter_the_local_exchange_does_not_simulate_is_refused_not_ignored(sim, name):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002",
             "price": _near_price(sim), name: "1"}
    status, body = _call(sim, "POST", "/api/v3/order", order, signed=True)
    assert (status, body["code"]) == (400, -1130)
    assert f"does not implement {name}" in body["msg"]


def _always(test):
    """Hypothesis ``@example`` for each of ALWAYS."""
    for v in reversed(ALWAYS):
        test = example(value=v)(test)
    return test


@pytest.mark.parametrize(("method", "path", "signed", "base", "name", "kind"), CASES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@_always
@given(value=VALUES)
def test_fuzzed_parameter_is_never_a_5xx_and_gets_the_documented_code(sim, method, path, signed, base, name, kind,
                                                                      value):
    # Arrange: valid parameters around the fuzzed one, so its answer is the only possible error
    params = {k: (_near_price(sim) if v == "PRICE" else v) for k, v in base.items()}
    if name == "symbols":
        params.pop("symbol", None)
    expected = _expected(kind, value)
    if name == "timestamp":
        # Act (a valid timestamp would be refused as stale: only shape errors are fuzzed here)
        status, body = _call(sim, method, path, params, signed=True, timestamp=value)
        if expected is None:
            assert status < 500
            return
    else:
        params[name] = value
        status, body = _call(sim, method, path, params, signed=signed)
    # Assert
    assert status < 500, (status, body)
    if kind.name == "client_id" and value == "":
        assert (status, body["code"]) == (400, -1118 if name == "newClientOrderId" else -1119)
    elif expected is not None:
        assert (status, body["code"]) == (400, expected), body
        if expected == -1100:
            assert f"parameter '{name}'" in body["msg"]


# -- the WebSocket API reads its JSON parameters through the same parsers --------------------------------
@pytest.mark.parametrize(("extra", "code"), [
    ({"recvWindow": float("nan")}, -1100), ({"recvWindow": float("inf")}, -1100), ({"recvWindow": "abc"}, -1100),
    ({"recvWindow": 0}, -1131), ({"timestamp": 1e400}, -1100), ({"timestamp": "12\n"}, -1100),
    ({"timestamp": [1]}, -1100), ({"timestamp": True}, -1100),
])
def test_ws_api_logon_with_malformed_timestamp_or_recv_window_is_answered_and_the_socket_lives(sim, extra, code):
    import asyncio

    import aiohttp

    params = {"apiKey": sim.api_key, "timestamp": int(time.time() * 1000) - 3_600_000, **extra}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = sign(sim.secret, payload)

    async def scenario():
        async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_api_url) as ws:
            await ws.send_str(json.dumps({"id": 1, "method": "session.logon", "params": params}))
            answer = json.loads((await ws.receive(timeout=5)).data)
            await ws.send_str(json.dumps({"id": 2, "method": "ping"}))
            return answer, json.loads((await ws.receive(timeout=5)).data)

    answer, pong = asyncio.run(scenario())
    assert (answer["status"], answer["error"]["code"]) == (400, code)
    assert (pong["id"], pong["status"]) == (2, 200)  # the connection survived the bad request


def test_ws_subscribe_to_a_stream_name_with_a_trailing_newline_is_refused(sim):
    import asyncio

    import aiohttp

    async def scenario():
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(sim.base_url.replace("http", "ws") + "/ws") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade\n"], "id": 1}))
            return json.loads((await ws.receive(timeout=5)).data)

    answer = asyncio.run(scenario())
    assert answer["id"] == 1 and answer["error"]["code"] == 2
