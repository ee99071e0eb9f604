"""Market definitions: a symbol and the exchange rules (filters) that an order must satisfy.

Parsed from Binance's ``exchangeInfo`` symbol entries (both the pre-2023 ``MIN_NOTIONAL`` and the newer
``NOTIONAL`` filter are accepted). Values are ``Decimal`` built from the exchange's strings; no code here
touches the global decimal context. Full validation lives in :mod:`thunes.execution.filters`; this module
only holds the rules and the two roundings every layer needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from thunes.core.errors import DataError

__all__ = ["Market", "SymbolFilters", "parse_exchange_info", "round_down_to_step", "round_to_tick"]

ZERO = Decimal(0)


def _d(value: Any) -> Decimal:
    if isinstance(value, float):
        # Floats reach here only from numeric kernels; go through repr so 0.1 stays 0.1.
        return Decimal(repr(value))
    return Decimal(str(value))


def round_down_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= ``qty`` (step 0 means no rounding)."""
    if step <= 0:
        return qty
    return (qty / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    """Round a price to the tick grid, up or down (the caller picks the safe side)."""
    if tick <= 0:
        return price
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    return (price / tick).to_integral_value(rounding=rounding) * tick


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolFilters:
    """Exchange filters of one symbol. Zero means 'no limit' as on Binance."""

    tick_size: Decimal = ZERO
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    step_size: Decimal = ZERO
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    market_step_size: Decimal = ZERO
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    min_notional: Decimal = ZERO
    max_notional: Decimal = ZERO
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    notional_avg_price_mins: int = 5
    bid_multiplier_up: Decimal = ZERO
    bid_multiplier_down: Decimal = ZERO
    ask_multiplier_up: Decimal = ZERO
    ask_multiplier_down: Decimal = ZERO
    percent_price_avg_mins: int = 5
    max_num_orders: int = 0
    raw: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_binance(cls, filters: list[Mapping[str, Any]]) -> SymbolFilters:
        kw: dict[str, Any] = {}
        for f in filters:
            kind = f.get("filterType")
            if kind == "PRICE_FILTER":
                kw.update(tick_size=_d(f["tickSize"]), min_price=_d(f["minPrice"]),
                          max_price=_d(f["maxPrice"]))
            elif kind == "LOT_SIZE":
                kw.update(step_size=_d(f["stepSize"]), min_qty=_d(f["minQty"]), max_qty=_d(f["maxQty"]))
            elif kind == "MARKET_LOT_SIZE":
                kw.update(
                    market_step_size=_d(f["stepSize"]),
                    market_min_qty=_d(f["minQty"]),
                    market_max_qty=_d(f["maxQty"]),
                )
            elif kind == "MIN_NOTIONAL":
                kw.update(
                    min_notional=_d(f["minNotional"]),
                    apply_min_to_market=bool(f.get("applyToMarket", True)),
                    notional_avg_price_mins=int(f.get("avgPriceMins", 5)),
                )
            elif kind == "NOTIONAL":
                kw.update(
                    min_notional=_d(f["minNotional"]),
                    max_notional=_d(f.get("maxNotional", "0")),
                    apply_min_to_market=bool(f.get("applyMinToMarket", True)),
                    apply_max_to_market=bool(f.get("applyMaxToMarket", False)),
                    notional_avg_price_mins=int(f.get("avgPriceMins", 5)),
                )
            elif kind == "PERCENT_PRICE_BY_SIDE":
                kw.update(
                    bid_multiplier_up=_d(f["bidMultiplierUp"]),
                    bid_multiplier_down=_d(f["bidMultiplierDown"]),
                    ask_multiplier_up=_d(f["askMultiplierUp"]),
                    ask_multiplier_down=_d(f["askMultiplierDown"]),
                    percent_price_avg_mins=int(f.get("avgPriceMins", 5)),
                )
            elif kind == "PERCENT_PRICE":
                kw.update(
                    bid_multiplier_up=_d(f["multiplierUp"]),
                    ask_multiplier_up=_d(f["multiplierUp"]),
                    bid_multiplier_down=_d(f["multiplierDown"]),
                    ask_multiplier_down=_d(f["multiplierDown"]),
                    percent_price_avg_mins=int(f.get("avgPriceMins", 5)),
                )
            elif kind == "MAX_NUM_ORDERS":
                kw["max_num_orders"] = int(f.get("maxNumOrders", f.get("limit", 0)))
        kw["raw"] = tuple((str(f.get("filterType")), repr(dict(f))) for f in filters)
        return cls(**kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Market:
    """A tradable symbol: unified name (``BTC/USDT``), exchange id (``BTCUSDT``), assets and rules."""

    symbol: str
    exchange_symbol: str
    base: str
    quote: str
    filters: SymbolFilters
    status: str = "TRADING"
    order_types: tuple[str, ...] = ("LIMIT", "MARKET")
    base_precision: int = 8
    quote_precision: int = 8

    def round_qty(self, qty: Decimal, *, market_order: bool = False) -> Decimal:
        """Round a quantity *down* to the step (the MARKET_LOT_SIZE step for market orders if set)."""
        step = self.filters.step_size
        if market_order and self.filters.market_step_size > 0:
            step = self.filters.market_step_size
        return round_down_to_step(qty, step)

    def round_price(self, price: Decimal, *, up: bool) -> Decimal:
        return round_to_tick(price, self.filters.tick_size, up=up)

    @classmethod
    def from_binance(cls, info: Mapping[str, Any]) -> Market:
        try:
            base, quote = str(info["baseAsset"]), str(info["quoteAsset"])
            return cls(
                symbol=f"{base}/{quote}",
                exchange_symbol=str(info["symbol"]),
                base=base,
                quote=quote,
                filters=SymbolFilters.from_binance(list(info.get("filters", []))),
                status=str(info.get("status", "TRADING")),
                order_types=tuple(info.get("orderTypes", ("LIMIT", "MARKET"))),
                base_precision=int(info.get("baseAssetPrecision", 8)),
                quote_precision=int(info.get("quoteAssetPrecision", info.get("quotePrecision", 8))),
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise DataError(f"malformed exchangeInfo symbol entry {info.get('symbol')!r}: {exc}") from exc


def parse_exchange_info(payload: Mapping[str, Any]) -> dict[str, Market]:
    """Markets keyed by unified symbol from a Binance ``GET /api/v3/exchangeInfo`` payload."""
    markets = [Market.from_binance(s) for s in payload.get("symbols", [])]
    return {m.symbol: m for m in markets}
