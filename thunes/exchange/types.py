"""Typed domain values that cross the exchange port.

Raw ccxt dictionaries (floats, free strings) never leave the adapter; callers get these frozen values with
``Decimal`` prices and quantities built from the exchange's own strings, and ``OrderStatus``/``Side`` enums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from thunes.core.enums import OrderStatus, OrderType, Side, TimeInForce
from thunes.core.errors import ConfigError

__all__ = ["Balance", "Fill", "OrderRequest", "OrderResult", "Ticker", "Trade"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """What we ask the exchange to do. Exactly one of ``qty`` / ``quote_qty`` (quote only for MARKET).

    ``client_order_id`` makes the request idempotent: derive it from the intent
    (:func:`thunes.core.ids.client_order_id`) so a resend after a crash is recognised.
    """

    symbol: str
    side: Side
    type: OrderType
    client_order_id: str
    qty: Decimal | None = None
    quote_qty: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None

    def __post_init__(self) -> None:
        if (self.qty is None) == (self.quote_qty is None):
            raise ConfigError(f"order {self.client_order_id}: give exactly one of qty or quote_qty")
        if self.quote_qty is not None and self.type is not OrderType.MARKET:
            raise ConfigError(f"order {self.client_order_id}: quote_qty is only valid for MARKET orders")
        if self.type is OrderType.LIMIT and self.price is None:
            raise ConfigError(f"order {self.client_order_id}: a LIMIT order needs a price")
        if self.type is OrderType.MARKET and self.price is not None:
            # ccxt silently turns a market order with a price into a quoteOrderQty order; refuse the ambiguity.
            raise ConfigError(f"order {self.client_order_id}: a MARKET order takes no price")
        for name in ("qty", "quote_qty", "price"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or value <= 0):
                raise ConfigError(f"order {self.client_order_id}: {name} must be a positive Decimal, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution of an order."""

    trade_id: str
    price: Decimal
    qty: Decimal
    fee: Decimal = ZERO
    fee_asset: str | None = None
    ts_ms: int | None = None
    is_maker: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderResult:
    """The exchange's view of one order."""

    symbol: str
    exchange_order_id: str
    client_order_id: str
    status: OrderStatus
    side: Side
    type: OrderType | str
    qty: Decimal
    filled_qty: Decimal = ZERO
    quote_filled: Decimal = ZERO
    price: Decimal | None = None
    time_in_force: str | None = None
    fee: Decimal = ZERO
    fee_asset: str | None = None
    fills: tuple[Fill, ...] = ()
    ts_ms: int | None = None

    @property
    def avg_price(self) -> Decimal | None:
        """Volume-weighted fill price, ``None`` before any fill."""
        if self.filled_qty <= 0:
            return None
        return self.quote_filled / self.filled_qty

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticker:
    symbol: str
    last: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    base_volume: Decimal | None = None
    ts_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One of our own executions as reported by ``myTrades``."""

    symbol: str
    trade_id: str
    order_id: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal
    fee_asset: str | None
    is_maker: bool
    ts_ms: int
    client_order_id: str | None = field(default=None)
