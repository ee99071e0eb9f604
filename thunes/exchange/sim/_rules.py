"""The local exchange's own reading of Binance's symbol filters.

Deliberately independent of :mod:`thunes.execution.filters` (the client-side check): the two are tested
against each other, so sharing code would hide a shared mistake. Binance never rounds; a value off the grid or
out of range is rejected with ``-1013 Filter failure: <NAME>`` (static filters) or ``-2010`` (account-state
filters such as MAX_NUM_ORDERS). Filters are checked in this order, the first failure wins:
PRICE_FILTER, PERCENT_PRICE(_BY_SIDE), LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL/NOTIONAL, MAX_NUM_ORDERS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["Rejection", "SymbolSpec", "check_filters", "decimals_of"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A Binance error answer: HTTP status, code and message."""

    code: int
    msg: str
    status: int = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    info: Mapping[str, Any]
    filters: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    base_precision: int = 8
    quote_precision: int = 8

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> SymbolSpec:
        return cls(
            symbol=str(info["symbol"]),
            base=str(info["baseAsset"]),
            quote=str(info["quoteAsset"]),
            info=info,
            filters={str(f["filterType"]): f for f in info.get("filters", [])},
            base_precision=int(info.get("baseAssetPrecision", 8)),
            quote_precision=int(info.get("quoteAssetPrecision", info.get("quotePrecision", 8))),
        )

    @property
    def unified(self) -> str:
        return f"{self.base}/{self.quote}"

    def dec(self, filter_type: str, key: str) -> Decimal | None:
        f = self.filters.get(filter_type)
        if f is None or key not in f:
            return None
        return Decimal(str(f[key]))

    @property
    def tick(self) -> Decimal:
        return self.dec("PRICE_FILTER", "tickSize") or ZERO

    @property
    def step(self) -> Decimal:
        return self.dec("LOT_SIZE", "stepSize") or ZERO

    @property
    def max_num_orders(self) -> int:
        f = self.filters.get("MAX_NUM_ORDERS")
        return int(f.get("maxNumOrders", f.get("limit", 0))) if f else 0


def decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _off_grid(value: Decimal, step: Decimal) -> bool:
    return step > 0 and value % step != 0


def _fail(name: str) -> Rejection:
    return Rejection(-1013, f"Filter failure: {name}")


def check_filters(
    spec: SymbolSpec,
    *,
    side: str,
    order_type: str,
    qty: Decimal | None,
    quote_qty: Decimal | None,
    price: Decimal | None,
    avg_price: Decimal,
    open_orders: int,
) -> Rejection | None:
    """The first filter this order breaks, or ``None``. ``avg_price`` stands in for Binance's avgPrice."""
    is_market = order_type == "MARKET"
    if price is not None and not is_market:
        if (r := _price_filter(spec, price)) is not None:
            return r
        if (r := _percent_price(spec, side, price, avg_price)) is not None:
            return r
    if qty is not None:
        if (r := _lot(spec, "LOT_SIZE", qty)) is not None:
            return r
        if is_market and (r := _lot(spec, "MARKET_LOT_SIZE", qty)) is not None:
            return r
    if (r := _notional(spec, is_market, qty, quote_qty, price, avg_price)) is not None:
        return r
    limit = spec.max_num_orders
    # Every new order counts against MAX_NUM_ORDERS, a market order too (docs: POST /api/v3/order adds 1)
    if limit and open_orders >= limit:
        return Rejection(-2010, "Filter failure: MAX_NUM_ORDERS")
    return None


def _price_filter(spec: SymbolSpec, price: Decimal) -> Rejection | None:
    if "PRICE_FILTER" not in spec.filters:
        return None
    lo = spec.dec("PRICE_FILTER", "minPrice") or ZERO
    hi = spec.dec("PRICE_FILTER", "maxPrice") or ZERO
    tick = spec.tick
    # Each part is disabled when its value is 0 (Binance filters.md).
    if (lo > 0 and price < lo) or (hi > 0 and price > hi) or _off_grid(price, tick):
        return _fail("PRICE_FILTER")
    return None


def _percent_price(spec: SymbolSpec, side: str, price: Decimal, avg: Decimal) -> Rejection | None:
    if avg <= 0:
        return None
    if "PERCENT_PRICE_BY_SIDE" in spec.filters:
        pre = "bid" if side == "BUY" else "ask"
        up = spec.dec("PERCENT_PRICE_BY_SIDE", f"{pre}MultiplierUp")
        down = spec.dec("PERCENT_PRICE_BY_SIDE", f"{pre}MultiplierDown")
        name = "PERCENT_PRICE_BY_SIDE"
    elif "PERCENT_PRICE" in spec.filters:
        up = spec.dec("PERCENT_PRICE", "multiplierUp")
        down = spec.dec("PERCENT_PRICE", "multiplierDown")
        name = "PERCENT_PRICE"
    else:
        return None
    if (up is not None and price > avg * up) or (down is not None and price < avg * down):
        return _fail(name)
    return None


def _lot(spec: SymbolSpec, name: str, qty: Decimal) -> Rejection | None:
    if name not in spec.filters:
        return None
    lo = spec.dec(name, "minQty") or ZERO
    hi = spec.dec(name, "maxQty") or ZERO
    step = spec.dec(name, "stepSize") or ZERO
    if name == "MARKET_LOT_SIZE":
        # Live exchangeInfo shows stepSize 0 / minQty 0 here; zero is read as "disabled".
        if (lo > 0 and qty < lo) or (hi > 0 and qty > hi) or _off_grid(qty, step):
            return _fail(name)
        return None
    if qty < lo or (hi > 0 and qty > hi) or _off_grid(qty, step):
        return _fail(name)
    return None


def _notional(
    spec: SymbolSpec, is_market: bool, qty: Decimal | None, quote_qty: Decimal | None,
    price: Decimal | None, avg: Decimal,
) -> Rejection | None:
    if quote_qty is not None:
        notional = quote_qty
    elif qty is not None:
        ref = avg if is_market or price is None else price
        notional = qty * ref
    else:
        return None
    if "MIN_NOTIONAL" in spec.filters:
        f = spec.filters["MIN_NOTIONAL"]
        lo = spec.dec("MIN_NOTIONAL", "minNotional") or ZERO
        applies = (not is_market) or bool(f.get("applyToMarket", True))
        if applies and notional < lo:
            return _fail("MIN_NOTIONAL")
    if "NOTIONAL" in spec.filters:
        f = spec.filters["NOTIONAL"]
        lo = spec.dec("NOTIONAL", "minNotional") or ZERO
        hi = spec.dec("NOTIONAL", "maxNotional") or ZERO
        apply_min = (not is_market) or bool(f.get("applyMinToMarket", True))
        apply_max = (not is_market) or bool(f.get("applyMaxToMarket", False))
        if (apply_min and notional < lo) or (apply_max and hi > 0 and notional > hi):
            return _fail("NOTIONAL")
    return None
