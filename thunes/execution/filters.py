"""Exchange filters: turn what a strategy wants into an order the exchange will accept, or refuse it.

Binance does not round: an order off the tick or step grid, below a minimum or outside a price band is
rejected (``-1013 Filter failure: <NAME>``). This module applies the rules of a
:class:`~thunes.core.markets.Market` (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL/NOTIONAL,
PERCENT_PRICE(_BY_SIDE), MAX_NUM_ORDERS) *before* sending, in ``Decimal``:

* quantities round **down** to the step (a market order must sit on both the LOT_SIZE and the
  MARKET_LOT_SIZE grid), so we never spend more than the caller asked;
* limit prices round to the tick in the safe direction for the side: a buy down (never pay more), a sell
  up (never sell for less);
* quantities above a maximum are clamped down (that only spends less);
* anything that cannot be made valid that way (below a minimum, outside the price band, too many open
  orders) raises :class:`~thunes.core.errors.FilterRejected` naming the filter and the numbers. Nothing
  is ever rounded *up* past what the caller asked to spend.

:class:`MarketBook` keeps the market definitions fresh: on a schedule and immediately after the exchange
rejects an order with ``-1013`` (a filter changed under us).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from thunes.core.clock import Clock, LiveClock
from thunes.core.enums import OrderType, Side, TimeInForce
from thunes.core.errors import ConfigError, FilterRejected
from thunes.core.markets import Market, round_down_to_step, round_to_tick

__all__ = [
    "MarketBook",
    "PreparedOrder",
    "market_step",
    "prepare_limit_order",
    "prepare_market_order",
    "validate_order",
]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedOrder:
    """An order that passed every filter. ``notional`` is ``qty × (price or ref_price)``."""

    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    ref_price: Decimal
    notional: Decimal
    time_in_force: TimeInForce | None = None


def _plain(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _reject(filter_name: str, market: Market, message: str) -> FilterRejected:
    return FilterRejected(f"{market.symbol}: Filter failure: {filter_name}: {message}", filter_name=filter_name)


def _exponent_scale(*values: Decimal) -> int:
    return max(0, *(-v.normalize().as_tuple().exponent for v in values))  # type: ignore[operator]


def market_step(market: Market) -> Decimal:
    """The grid a MARKET order's quantity must sit on: both LOT_SIZE and MARKET_LOT_SIZE steps (their LCM)."""
    a, b = market.filters.step_size, market.filters.market_step_size
    if a <= 0:
        return b if b > 0 else ZERO
    if b <= 0 or a == b:
        return a
    scale = _exponent_scale(a, b)
    ia, ib = int(a.scaleb(scale)), int(b.scaleb(scale))
    return Decimal(math.lcm(ia, ib)).scaleb(-scale)


def _on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


def _check_lot(name: str, market: Market, qty: Decimal, lo: Decimal, hi: Decimal, step: Decimal) -> None:
    """One LOT_SIZE-shaped filter (LOT_SIZE or MARKET_LOT_SIZE): minimum, maximum, step; zero = no limit."""
    if lo > 0 and qty < lo:
        raise _reject(name, market, f"quantity {_plain(qty)} is below minQty {_plain(lo)}")
    if hi > 0 and qty > hi:
        raise _reject(name, market, f"quantity {_plain(qty)} is above maxQty {_plain(hi)}")
    if not _on_grid(qty, step):
        raise _reject(name, market, f"quantity {_plain(qty)} is not a multiple of stepSize {_plain(step)}")


def _check_qty(market: Market, qty: Decimal, *, is_market: bool) -> None:
    f = market.filters
    if qty <= 0:
        raise _reject("LOT_SIZE", market, f"quantity {_plain(qty)} must be > 0")
    _check_lot("LOT_SIZE", market, qty, f.min_qty, f.max_qty, f.step_size)
    if is_market:
        _check_lot("MARKET_LOT_SIZE", market, qty, f.market_min_qty, f.market_max_qty, f.market_step_size)


def _notional_filter_name(market: Market) -> str:
    kinds = {k for k, _ in market.filters.raw}
    return "MIN_NOTIONAL" if "MIN_NOTIONAL" in kinds and "NOTIONAL" not in kinds else "NOTIONAL"


def _check_notional(market: Market, notional: Decimal, *, is_market: bool) -> None:
    f = market.filters
    name = _notional_filter_name(market)
    if f.min_notional > 0 and (not is_market or f.apply_min_to_market) and notional < f.min_notional:
        raise _reject(name, market, f"notional {_plain(notional)} is below minNotional {_plain(f.min_notional)}")
    if f.max_notional > 0 and (not is_market or f.apply_max_to_market) and notional > f.max_notional:
        raise _reject(name, market, f"notional {_plain(notional)} is above maxNotional {_plain(f.max_notional)}")


def _percent_band(market: Market, side: Side, ref_price: Decimal) -> tuple[Decimal | None, Decimal | None]:
    f = market.filters
    up, down = (f.bid_multiplier_up, f.bid_multiplier_down) if side is Side.BUY else (
        f.ask_multiplier_up, f.ask_multiplier_down)
    return (ref_price * down if down > 0 else None, ref_price * up if up > 0 else None)


def _percent_name(market: Market) -> str:
    kinds = {k for k, _ in market.filters.raw}
    return "PERCENT_PRICE" if "PERCENT_PRICE" in kinds and "PERCENT_PRICE_BY_SIDE" not in kinds else \
        "PERCENT_PRICE_BY_SIDE"


def _check_price(market: Market, side: Side, price: Decimal, ref_price: Decimal | None) -> None:
    f = market.filters
    if price <= 0:
        raise _reject("PRICE_FILTER", market, f"price {_plain(price)} must be > 0")
    if f.min_price > 0 and price < f.min_price:
        raise _reject("PRICE_FILTER", market, f"price {_plain(price)} is below minPrice {_plain(f.min_price)}")
    if f.max_price > 0 and price > f.max_price:
        raise _reject("PRICE_FILTER", market, f"price {_plain(price)} is above maxPrice {_plain(f.max_price)}")
    if not _on_grid(price, f.tick_size):
        raise _reject("PRICE_FILTER", market, f"price {_plain(price)} is not a multiple of tickSize "
                                              f"{_plain(f.tick_size)}")
    if ref_price is not None and ref_price > 0:
        low, high = _percent_band(market, side, ref_price)
        if low is not None and price < low:
            raise _reject(_percent_name(market), market,
                          f"{side} price {_plain(price)} is below {_plain(low)} (average {_plain(ref_price)})")
        if high is not None and price > high:
            raise _reject(_percent_name(market), market,
                          f"{side} price {_plain(price)} is above {_plain(high)} (average {_plain(ref_price)})")


def _resolve(symbol_or_market: Market | str, markets: Mapping[str, Market] | MarketBook | None) -> Market:
    if isinstance(symbol_or_market, Market):
        return symbol_or_market
    if markets is None:
        raise ConfigError(f"{symbol_or_market!r} is a symbol name: pass markets= to look it up")
    market = markets.get(symbol_or_market)
    if market is None:
        raise FilterRejected(f"unknown symbol {symbol_or_market!r}", code=-1121, filter_name="SYMBOL")
    return market


def validate_order(
    symbol_or_market: Market | str,
    side: Side,
    order_type: OrderType,
    qty: Decimal | None,
    price: Decimal | None = None,
    quote_qty: Decimal | None = None,
    *,
    ref_price: Decimal | None = None,
    open_orders: int = 0,
    markets: Mapping[str, Market] | MarketBook | None = None,
) -> None:
    """Raise :class:`FilterRejected` (naming the filter) unless the exchange would accept this order.

    ``ref_price`` is the exchange's average price, used for market-order notional and the percent band;
    ``open_orders`` is the number of orders already open on the symbol (MAX_NUM_ORDERS).
    """
    market = _resolve(symbol_or_market, markets)
    side, order_type = Side(side), OrderType(order_type)
    if market.status != "TRADING":
        raise _reject("STATUS", market, f"symbol status is {market.status}, not TRADING")
    if str(order_type) not in market.order_types:
        raise _reject("ORDER_TYPE", market, f"order type {order_type} not allowed ({', '.join(market.order_types)})")
    f = market.filters
    if f.max_num_orders > 0 and open_orders + 1 > f.max_num_orders:
        raise _reject("MAX_NUM_ORDERS", market, f"{open_orders} orders already open, maxNumOrders "
                                                f"{f.max_num_orders}")
    is_market = order_type is OrderType.MARKET
    if is_market:
        if (qty is None) == (quote_qty is None):
            raise _reject("PARAMETERS", market, "a market order needs exactly one of qty and quote_qty")
        if qty is not None:
            _check_qty(market, qty, is_market=True)
            if ref_price is not None:
                _check_notional(market, qty * ref_price, is_market=True)
        else:
            assert quote_qty is not None
            if quote_qty <= 0:
                raise _reject("NOTIONAL", market, f"quote quantity {_plain(quote_qty)} must be > 0")
            _check_notional(market, quote_qty, is_market=True)
        return
    if qty is None or price is None:
        raise _reject("PARAMETERS", market, "a limit order needs qty and price")
    _check_price(market, side, price, ref_price)
    _check_qty(market, qty, is_market=False)
    _check_notional(market, qty * price, is_market=False)


def _clamp_qty(market: Market, qty: Decimal, step: Decimal, price: Decimal, *, is_market: bool) -> Decimal:
    f = market.filters
    caps = [f.max_qty] if f.max_qty > 0 else []
    if is_market and f.market_max_qty > 0:
        caps.append(f.market_max_qty)
    if f.max_notional > 0 and (not is_market or f.apply_max_to_market) and price > 0:
        caps.append(f.max_notional / price)
    for cap in caps:
        if qty > cap:
            qty = round_down_to_step(cap, step)
    return qty


def prepare_market_order(
    market: Market | str,
    side: Side,
    *,
    quote_qty: Decimal | None = None,
    qty: Decimal | None = None,
    ref_price: Decimal,
    open_orders: int = 0,
    markets: Mapping[str, Market] | MarketBook | None = None,
) -> PreparedOrder:
    """A MARKET order for ``qty`` base, or for at most ``quote_qty`` quote at ``ref_price``.

    The quantity is rounded down to the market grid and clamped to the maxima; it is refused (with the
    filter's name) when what remains is below a minimum. ``market`` may be a symbol looked up in ``markets``.
    """
    market = _resolve(market, markets)
    side = Side(side)
    if (qty is None) == (quote_qty is None):
        raise ConfigError("prepare_market_order: give exactly one of qty and quote_qty")
    if ref_price is None or ref_price <= 0:
        raise ConfigError(f"prepare_market_order({market.symbol}): ref_price must be > 0, got {ref_price}")
    step = market_step(market)
    wanted = qty if qty is not None else quote_qty / ref_price  # type: ignore[operator]
    q = round_down_to_step(wanted, step)
    q = _clamp_qty(market, q, step, ref_price, is_market=True)
    if q <= 0:
        raise _reject("LOT_SIZE", market,
                      f"{_plain(wanted)} rounds down to 0 on step {_plain(step)}"
                      + (f" (quote {_plain(quote_qty)} at {_plain(ref_price)})" if quote_qty is not None else ""))
    validate_order(market, side, OrderType.MARKET, q, ref_price=ref_price, open_orders=open_orders)
    return PreparedOrder(symbol=market.symbol, side=side, order_type=OrderType.MARKET, qty=q, price=None,
                         ref_price=ref_price, notional=q * ref_price)


def prepare_limit_order(
    market: Market | str,
    side: Side,
    *,
    price: Decimal,
    qty: Decimal | None = None,
    quote_qty: Decimal | None = None,
    ref_price: Decimal | None = None,
    time_in_force: TimeInForce = TimeInForce.GTC,
    open_orders: int = 0,
    markets: Mapping[str, Market] | MarketBook | None = None,
) -> PreparedOrder:
    """A LIMIT order: price to the tick in the safe direction, quantity down to the step.

    With ``quote_qty`` the quantity is the most that costs at most ``quote_qty`` at the rounded price.
    ``ref_price`` (the average price) enables the PERCENT_PRICE(_BY_SIDE) check. ``market`` may be a symbol
    looked up in ``markets``.
    """
    market = _resolve(market, markets)
    side = Side(side)
    if (qty is None) == (quote_qty is None):
        raise ConfigError("prepare_limit_order: give exactly one of qty and quote_qty")
    p = round_to_tick(price, market.filters.tick_size, up=side is Side.SELL)
    if p <= 0:
        raise _reject("PRICE_FILTER", market, f"price {_plain(price)} rounds to {_plain(p)} on tick "
                                              f"{_plain(market.filters.tick_size)}")
    step = market.filters.step_size
    wanted = qty if qty is not None else quote_qty / p  # type: ignore[operator]
    q = round_down_to_step(wanted, step)
    q = _clamp_qty(market, q, step, p, is_market=False)
    if q <= 0:
        raise _reject("LOT_SIZE", market, f"{_plain(wanted)} rounds down to 0 on step {_plain(step)}")
    validate_order(market, side, OrderType.LIMIT, q, p, ref_price=ref_price, open_orders=open_orders)
    return PreparedOrder(symbol=market.symbol, side=side, order_type=OrderType.LIMIT, qty=q, price=p,
                         ref_price=ref_price if ref_price is not None else p, notional=q * p,
                         time_in_force=time_in_force)


class MarketBook:
    """Market definitions by symbol, reloaded every ``refresh_s`` and at once after a -1013 rejection.

    ``loader()`` returns ``{symbol: Market}`` (e.g. the exchange port's ``load_markets``). Thread-safe;
    a failed reload keeps the previous definitions (and raises only if there are none).
    """

    def __init__(self, loader: Callable[[], Mapping[str, Market]], *, clock: Clock | None = None,
                 refresh_s: float = 3600.0) -> None:
        self._loader = loader
        self.clock = clock or LiveClock()
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._markets: dict[str, Market] = {}
        self._loaded_at: float | None = None
        self.reloads = 0

    def _load(self) -> None:
        markets = dict(self._loader())
        self._markets = markets
        self._loaded_at = self.clock.monotonic()
        self.reloads += 1

    def _ensure(self) -> None:
        due = self._loaded_at is None or self.clock.monotonic() - self._loaded_at >= self.refresh_s
        if due:
            try:
                self._load()
            except Exception:
                if not self._markets:
                    raise

    def get(self, symbol: str) -> Market | None:
        with self._lock:
            self._ensure()
            return self._markets.get(symbol)

    def __getitem__(self, symbol: str) -> Market:
        market = self.get(symbol)
        if market is None:
            raise FilterRejected(f"unknown symbol {symbol!r}", code=-1121, filter_name="SYMBOL")
        return market

    def symbols(self) -> list[str]:
        with self._lock:
            self._ensure()
            return sorted(self._markets)

    def refresh(self) -> None:
        """Reload now."""
        with self._lock:
            self._load()

    def on_filter_rejection(self, exc: BaseException | None = None) -> bool:
        """Call after an order was rejected; reloads when it was a filter failure (-1013). Returns reloaded."""
        if exc is not None and not (isinstance(exc, FilterRejected) or getattr(exc, "code", None) == -1013):
            return False
        with self._lock:
            try:
                self._load()
            except Exception:
                return False
            return True
