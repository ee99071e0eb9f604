"""Request parameters of the local exchange, read through one typed parser per kind of parameter.

Every REST handler, the order engine and the WebSocket API read their parameters here, so a malformed value
(``limit=abc``, ``timestamp=inf``, ``recvWindow=nan``, ``quantity=0.001\\n``) gets Binance's 400 answer
instead of reaching ``int()``/``float()``/``Decimal()`` and coming back as a 500, or worse, being accepted.
Patterns are matched with :func:`re.fullmatch` and ASCII classes only (``[0-9]``, never ``\\d``): a ``$``
anchor matches before a trailing newline, and ``\\d`` matches Arabic-Indic and other Unicode digits.

Answers, from Binance's errors.md (the local exchange's choice where the docs are silent is marked *):

======  ==========================================================================================
-1100   "Illegal characters found in parameter '%s'; legal range is '%s'." (not the right shape)
-1101   "Duplicate values for a parameter detected." (a name sent twice)
-1102   "Mandatory parameter '%s' was not sent, was empty/null, or malformed."
-1104   "Not all sent parameters were read; read '%s' parameter(s) but was sent '%s'." (a name the endpoint
        does not know, e.g. ``reduceOnly`` on a spot order)
-1105   "Parameter '%s' was empty." (an optional parameter sent as ``name=``)
-1118   "New client order ID was empty." / -1119 "Original client order ID was empty."
-1120   "Invalid interval."
-1121   "Invalid symbol." (the caller checks the symbol is listed)
-1128   "Combination of optional parameters invalid." (``symbol`` and ``symbols`` together)*
-1130   "Data sent for parameter '%s' is not valid." (right shape, out of range, unknown enum value)
-1131   "recvWindow must be less than 60000" (recvWindow not in (0, 60000])
-1151   "Symbol is present multiple times in the list."
======  ==========================================================================================

:data:`ENDPOINT_PARAMS` lists the names each endpoint accepts (Binance's rest-api.md); those in
:data:`NOT_IMPLEMENTED` change what Binance does (stop, iceberg, pegged orders ...) and the local exchange
refuses them with -1130 rather than silently trading as if they were not there.*
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from thunes.exchange.sim._rules import Rejection

__all__ = [
    "CLIENT_ID_RANGE",
    "DECIMAL_RANGE",
    "ENDPOINT_PARAMS",
    "INTERVALS",
    "INT_RANGE",
    "NOT_IMPLEMENTED",
    "RECV_WINDOW_MAX_MS",
    "STP_MODES",
    "SYMBOLS_RANGE",
    "SYMBOL_RANGE",
    "SimReject",
    "bool_param",
    "check_names",
    "client_id_param",
    "decimal_param",
    "enum_param",
    "int_param",
    "order_extras",
    "parse_query",
    "recv_window_param",
    "reject",
    "symbol_param",
    "symbols_param",
    "timestamp_param",
    "ws_value",
]

# The legal ranges exactly as Binance writes them in its -1100 messages.
INT_RANGE = "^[0-9]{1,20}$"
DECIMAL_RANGE = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
RECV_WINDOW_RANGE = "^[0-9]{1,20}(\\.[0-9]{1,3})?$"  # recvWindow: up to 3 decimals (microseconds)
CLIENT_ID_RANGE = "^[a-zA-Z0-9-_]{1,36}$"
SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'

_INT = re.compile(r"[0-9]{1,20}")
_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")
_RECV_WINDOW = re.compile(r"[0-9]{1,20}(\.[0-9]{1,3})?")
_CLIENT_ID = re.compile(r"[a-zA-Z0-9_-]{1,36}")
_SYMBOL = re.compile(r"[A-Z0-9_.-]{1,20}")
_INT64_MAX = 2**63 - 1

#: Binance's kline intervals (enums.md); the replayed market may serve only some of them.
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
RECV_WINDOW_MAX_MS = 60_000
RECV_WINDOW_DEFAULT_MS = 5_000


_SIGNED = ("timestamp", "recvWindow", "signature")
_ORDER = ("symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price", "newClientOrderId",
          "strategyId", "strategyType", "stopPrice", "trailingDelta", "icebergQty", "newOrderRespType",
          "selfTradePreventionMode", "pegPriceType", "pegOffsetValue", "pegOffsetType") + _SIGNED
_KLINES = ("symbol", "interval", "startTime", "endTime", "timeZone", "limit")
_TICKER = ("symbol", "symbols", "symbolStatus")
#: (method, path) -> the parameter names Binance accepts there; anything else is -1104.
ENDPOINT_PARAMS: dict[tuple[str, str], frozenset[str]] = {k: frozenset(v) for k, v in {
    ("GET", "/api/v3/ping"): (),
    ("GET", "/api/v3/time"): (),
    ("GET", "/api/v3/exchangeInfo"): ("symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"),
    ("GET", "/api/v3/klines"): _KLINES,
    ("GET", "/api/v3/uiKlines"): _KLINES,
    ("GET", "/api/v3/ticker/24hr"): (*_TICKER, "type"),
    ("GET", "/api/v3/ticker/price"): _TICKER,
    ("GET", "/api/v3/ticker/bookTicker"): _TICKER,
    ("GET", "/api/v3/depth"): ("symbol", "limit", "symbolStatus"),
    ("GET", "/api/v3/avgPrice"): ("symbol",),
    ("GET", "/api/v3/account"): ("omitZeroBalances", *_SIGNED),
    ("POST", "/api/v3/order"): _ORDER,
    ("POST", "/api/v3/order/test"): (*_ORDER, "computeCommissionRates"),
    ("GET", "/api/v3/order"): ("symbol", "orderId", "origClientOrderId", *_SIGNED),
    ("DELETE", "/api/v3/order"): ("symbol", "orderId", "origClientOrderId", "newClientOrderId",
                                  "cancelRestrictions", *_SIGNED),
    ("GET", "/api/v3/openOrders"): ("symbol", *_SIGNED),
    ("DELETE", "/api/v3/openOrders"): ("symbol", *_SIGNED),
    ("GET", "/api/v3/allOrders"): ("symbol", "orderId", "startTime", "endTime", "limit", *_SIGNED),
    ("GET", "/api/v3/myTrades"): ("symbol", "orderId", "startTime", "endTime", "fromId", "limit", *_SIGNED),
}.items()}
#: Binance parameters whose behaviour the local exchange does not have; refused, never ignored.
NOT_IMPLEMENTED = frozenset({"stopPrice", "trailingDelta", "icebergQty", "pegPriceType", "pegOffsetValue",
                             "pegOffsetType", "cancelRestrictions", "timeZone", "symbolStatus", "permissions"})
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT")


def order_extras(params: Mapping[str, str]) -> None:
    """Validate the order parameters the local exchange accepts but does not act on (Binance's shapes)."""
    int_param(params, "strategyId")
    int_param(params, "strategyType", lo=1_000_000)
    enum_param(params, "selfTradePreventionMode", STP_MODES)


class SimReject(Exception):
    """Raised inside the local exchange; the server turns it into Binance's ``{"code","msg"}`` answer."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.code} {rejection.msg}")
        self.rejection = rejection


def reject(code: int, msg: str, status: int = 400) -> SimReject:
    return SimReject(Rejection(code, msg, status))


def _illegal(name: str, legal: str) -> SimReject:
    return reject(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def _mandatory(name: str) -> SimReject:
    return reject(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _invalid(name: str) -> SimReject:
    return reject(-1130, f"Data sent for parameter '{name}' is not valid.")


def parse_query(*parts: str) -> dict[str, str]:
    """The parameters of a query string and a form body together; a name sent twice is -1101.

    Percent-escapes that are not UTF-8 decode to U+FFFD, which no parameter pattern admits (-1100 later).
    """
    from urllib.parse import parse_qsl

    out: dict[str, str] = {}
    for part in parts:
        for name, value in parse_qsl(part, keep_blank_values=True):
            if name in out:
                raise reject(-1101, "Duplicate values for a parameter detected.")
            out[name] = value
    return out


def check_names(params: Mapping[str, str], method: str, path: str) -> None:
    """-1104 for a name the endpoint does not know; -1130 for one whose behaviour is not simulated."""
    allowed = ENDPOINT_PARAMS.get((method, path))
    if allowed is None:
        return  # not a REST endpoint of the table (404 comes later)
    read = sum(1 for name in params if name in allowed)
    if read != len(params):
        raise reject(-1104, f"Not all sent parameters were read; read '{read}' parameter(s) but was sent "
                            f"'{len(params)}'.")
    for name in params:
        if name in NOT_IMPLEMENTED:
            raise reject(-1130, f"Data sent for parameter '{name}' is not valid. (the local exchange does not "
                                f"implement {name})")


def _raw(params: Mapping[str, str], name: str, required: bool) -> str | None:
    """The raw value, ``None`` when absent; empty is -1102 when mandatory, -1105 otherwise."""
    raw = params.get(name)
    if raw is None:
        if required:
            raise _mandatory(name)
        return None
    if raw == "":
        raise _mandatory(name) if required else reject(-1105, f"Parameter '{name}' was empty.")
    return raw


def int_param(params: Mapping[str, str], name: str, *, required: bool = False, default: int | None = None,
              lo: int | None = None, hi: int | None = None) -> int | None:
    """A non-negative integer (Binance's ``^[0-9]{1,20}$``) within ``[lo, hi]`` when given (-1130 outside)."""
    raw = _raw(params, name, required)
    if raw is None:
        return default
    if not _INT.fullmatch(raw) or int(raw) > _INT64_MAX:
        raise _illegal(name, INT_RANGE)
    value = int(raw)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _invalid(name)
    return value


def decimal_param(params: Mapping[str, str], name: str, *, required: bool = False) -> Decimal | None:
    """A non-negative decimal written plainly (no sign, exponent, inf or nan); exact, never via float."""
    raw = _raw(params, name, required)
    if raw is None:
        return None
    if not _DECIMAL.fullmatch(raw):
        raise _illegal(name, DECIMAL_RANGE)
    return Decimal(raw)


def bool_param(params: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    """``true``/``false`` in any case, as Binance's boolean parameters; anything else is -1130."""
    raw = _raw(params, name, False)
    if raw is None:
        return default
    low = raw.lower()
    if low not in ("true", "false"):
        raise _invalid(name)
    return low == "true"


def enum_param(params: Mapping[str, str], name: str, choices: tuple[str, ...], *, required: bool = False,
               default: str | None = None, upper: bool = False, code: int = -1130,
               msg: str | None = None) -> str | None:
    """One of ``choices``; otherwise ``code``/``msg`` (Binance has a code per enum: -1115 TIF, -1116 type ...)."""
    raw = _raw(params, name, required)
    if raw is None:
        return default
    value = raw.upper() if upper else raw
    if not raw.isascii() or value not in choices:  # isascii: "ſell".upper() == "SELL"
        raise reject(code, msg) if msg is not None else _invalid(name)
    return value


def symbol_param(params: Mapping[str, str], name: str = "symbol", *, required: bool = True) -> str | None:
    """An exchange symbol, upper-cased (the local exchange forgives lower case); shape only, not listing."""
    raw = _raw(params, name, required)
    if raw is None:
        return None
    symbol = raw.upper()
    if not raw.isascii() or not _SYMBOL.fullmatch(symbol):  # isascii: "ſolusdt".upper() == "SOLUSDT"
        raise _illegal(name, SYMBOL_RANGE)
    return symbol


def symbols_param(params: Mapping[str, str], name: str = "symbols") -> list[str] | None:
    """A JSON list of symbols (``["BTCUSDT","ETHUSDT"]``), upper-cased; not together with ``symbol``."""
    raw = _raw(params, name, False)
    if raw is None:
        return None
    if params.get("symbol") is not None:
        raise reject(-1128, "Combination of optional parameters invalid.")
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        raise _illegal(name, SYMBOLS_RANGE) from None
    if not isinstance(parsed, list) or not all(
            isinstance(s, str) and s.isascii() and _SYMBOL.fullmatch(s.upper()) for s in parsed):
        raise _illegal(name, SYMBOLS_RANGE)
    if not parsed:
        raise _invalid(name)
    symbols = [s.upper() for s in parsed]
    if len(set(symbols)) != len(symbols):
        raise reject(-1151, "Symbol is present multiple times in the list.")
    return symbols


def client_id_param(params: Mapping[str, str], name: str) -> str | None:
    """A client order id (``newClientOrderId``, ``origClientOrderId``): ``[a-zA-Z0-9-_]{1,36}`` in full."""
    raw = params.get(name)
    if raw is None:
        return None
    if raw == "":
        raise reject(-1118, "New client order ID was empty.") if name == "newClientOrderId" else \
            reject(-1119, "Original client order ID was empty.")
    if not _CLIENT_ID.fullmatch(raw):
        raise _illegal(name, CLIENT_ID_RANGE)
    return raw


def timestamp_param(params: Mapping[str, str], name: str = "timestamp") -> int:
    """A signed request's timestamp in ms; µs (more than 14 digits' worth) is accepted and scaled down."""
    ts = int_param(params, name, required=True)
    assert ts is not None
    return ts // 1000 if ts > 10**14 else ts


def recv_window_param(params: Mapping[str, str]) -> Decimal:
    """recvWindow in ms: a finite number with up to 3 decimals in (0, 60000]; 5000 when not sent.

    ``nan`` and ``inf`` are refused: either would disable the timestamp check (``now - ts > nan`` is
    always false).
    """
    raw = _raw(params, "recvWindow", False)
    if raw is None:
        return Decimal(RECV_WINDOW_DEFAULT_MS)
    if not _RECV_WINDOW.fullmatch(raw):
        raise _illegal("recvWindow", RECV_WINDOW_RANGE)
    value = Decimal(raw)
    if not 0 < value <= RECV_WINDOW_MAX_MS:
        raise reject(-1131, "recvWindow must be less than 60000")
    return value


def ws_value(value: Any) -> str | None:
    """A WebSocket-API JSON parameter as the string the REST parsers read (``None`` stays absent).

    Integers become their decimal form; floats, booleans, lists and objects become a string no numeric
    pattern admits (a float such as ``1e400`` or ``NaN`` must not slip through ``int()``).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # "1e+400" is "inf", "nan": no numeric pattern admits them
    if isinstance(value, str):
        return value
    return json.dumps(value)
