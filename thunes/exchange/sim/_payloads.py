"""Binance's JSON shapes of market data, shared by the REST routes and the websocket streams.

A feed's kline row is the tuple ``(open_ms, open, high, low, close, volume, close_ms, quote_volume, trades,
closed)``; :func:`kline_row` turns it into the REST ``/klines`` array, :func:`kline_event` into a
``<symbol>@kline_<interval>`` stream event; :func:`trade_event` is a ``<symbol>@trade`` event.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from thunes.exchange.sim._engine import fmt

__all__ = ["interval_ms", "kline_event", "kline_row", "trade_event"]

_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def interval_ms(interval: str) -> int:
    """Milliseconds in a Binance interval (``"15m"``, ``"4h"``); ``ValueError`` for months or nonsense."""
    m = re.fullmatch(r"([0-9]+)([smhdw])", interval)
    if not m:
        raise ValueError(f"unsupported interval {interval!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def kline_row(row: tuple[Any, ...]) -> list[Any]:
    """One ``/klines`` array; the taker-buy volumes are half the volumes (the feed has no side)."""
    t, o, h, low, c, v, close_ms, qv, n, _ = row
    return [t, fmt(o), fmt(h), fmt(low), fmt(c), fmt(v), close_ms, fmt(qv), n, fmt(v / 2), fmt(qv / 2), "0"]


def kline_event(symbol: str, interval: str, row: tuple[Any, ...], now: int) -> dict[str, Any]:
    """One ``kline`` stream event sent at market time ``now``."""
    t, o, h, low, c, v, close_ms, qv, n, closed = row
    return {"e": "kline", "E": now, "s": symbol, "k": {
        "t": t, "T": close_ms, "s": symbol, "i": interval, "f": 0, "L": n, "o": fmt(o), "c": fmt(c),
        "h": fmt(h), "l": fmt(low), "v": fmt(v), "n": n, "x": closed, "q": fmt(qv), "V": fmt(v / 2),
        "Q": fmt(qv / 2), "B": "0"}}


def trade_event(symbol: str, trade_id: int, price: Decimal, qty: Decimal, time_ms: int,
                *, buyer_maker: bool) -> dict[str, Any]:
    """One ``trade`` stream event (event time = trade time, as the local market has no latency)."""
    return {"e": "trade", "E": time_ms, "s": symbol, "t": trade_id, "p": fmt(price), "q": fmt(qty),
            "T": time_ms, "m": buyer_maker, "M": True}
