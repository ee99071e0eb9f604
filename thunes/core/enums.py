"""Closed sets of domain values, and the one order-status transition table."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OrderStatus", "OrderType", "Side", "TimeInForce", "TradingMode", "check_transition"]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class TradingMode(StrEnum):
    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


class OrderStatus(StrEnum):
    """Lifecycle of an order, from our write-ahead journal entry to a final state."""

    PENDING = "PENDING"  # journaled, not yet sent
    SENT = "SENT"  # sent, no answer yet (answer may be lost)
    NEW = "NEW"  # accepted, resting
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})

_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.SENT, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
         OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED}
    ),
    OrderStatus.SENT: frozenset(
        {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.REJECTED,
         OrderStatus.CANCELED, OrderStatus.EXPIRED}
    ),
    OrderStatus.NEW: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


def check_transition(old: OrderStatus, new: OrderStatus) -> OrderStatus:
    """Return ``new`` if ``old -> new`` is a legal move (or no move); raise ``ValueError`` otherwise."""
    if old == new and not old.is_final:
        return new
    if old == new:
        return new
    if new not in _ALLOWED[old]:
        raise ValueError(f"illegal order status transition {old} -> {new}")
    return new
