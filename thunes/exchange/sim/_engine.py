"""Accounts, orders and matching of the local exchange; no HTTP here.

The engine is the single source of truth the REST handlers, the websocket streams and the Python API read
and change, always under one lock (the aiohttp loop thread and the caller's thread both drive it).

Matching model
--------------
* The market price at time t comes from :class:`MarketFeed` (the OHLC path inside the current candle).
* The book is synthetic and stateless: ``book_levels`` levels each side around the price, the best bid/ask
  ``spread_bps/2`` away, levels ``level_bps`` apart, each worth about ``level_quote`` quote units (growing
  with depth). MARKET and marketable LIMIT orders walk it as takers; a MARKET order that runs out of
  liquidity ends ``EXPIRED`` with a partial fill, as on Binance. ``slippage_bps`` is added on top.
* A resting LIMIT order fills, as maker and at its own price, when the path trades *through* it
  (buy: low < price; sell: high > price) while the clock advances, at most ``participation`` of the
  volume traded in that interval; larger orders therefore fill partially over several steps.
* Fees: ``taker_fee``/``maker_fee`` of the received asset (base for a buy, quote for a sell).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from thunes.core.clock import SimulatedClock
from thunes.exchange.sim._feed import MarketFeed
from thunes.exchange.sim._params import (
    SimReject,
    client_id_param,
    decimal_param,
    enum_param,
    int_param,
    symbol_param,
)
from thunes.exchange.sim._params import reject as _reject
from thunes.exchange.sim._rules import SymbolSpec, check_filters, decimals_of

__all__ = ["AccountSpec", "Engine", "EngineOptions", "SimReject", "fmt"]

ZERO = Decimal(0)
_Q8 = Decimal("0.00000001")
_OPEN = ("NEW", "PARTIALLY_FILLED")


def fmt(value: Decimal | float | None) -> str:
    """Binance's 8-decimal string form."""
    if value is None:
        value = ZERO
    if isinstance(value, float):
        return f"{value:.8f}"
    return f"{value:.8f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSpec:
    api_key: str
    secret: str
    balances: Mapping[str, str | Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    spread_bps: Decimal = Decimal("1")
    level_bps: Decimal = Decimal("1")
    level_quote: Decimal = Decimal("25000")
    book_levels: int = 50
    slippage_bps: Decimal = Decimal("0")
    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0.001")
    participation: Decimal = Decimal("0.25")
    market_trades: bool = True


@dataclass(slots=True)
class _Account:
    spec: AccountSpec
    free: dict[str, Decimal]
    locked: dict[str, Decimal]
    update_time: int = 0

    def credit(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + amount

    def available(self, asset: str) -> Decimal:
        return self.free.get(asset, ZERO)


@dataclass(slots=True, kw_only=True)
class _Order:
    account: str
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    tif: str | None
    price: Decimal
    orig_qty: Decimal
    quote_order_qty: Decimal
    time: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cumm_quote: Decimal = ZERO
    update_time: int = 0
    working_time: int = -1
    locked_asset: str = ""
    locked: Decimal = ZERO
    fills: list[dict[str, Any]] = field(default_factory=list)
    last_fill: dict[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    def view(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed),
            "cummulativeQuoteQty": fmt(self.cumm_quote),
            "status": self.status,
            "timeInForce": self.tif or "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": fmt(ZERO),
            "icebergQty": fmt(ZERO),
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": self.working_time >= 0,
            "workingTime": self.working_time,
            "origQuoteOrderQty": fmt(self.quote_order_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


Listener = Callable[[dict[str, Any]], None]


class Engine:
    def __init__(
        self,
        specs: Mapping[str, SymbolSpec],
        feeds: Mapping[str, MarketFeed],
        clock: SimulatedClock,
        accounts: list[AccountSpec],
        options: EngineOptions,
    ) -> None:
        self.specs = dict(specs)  # keyed by exchange symbol (BTCUSDT)
        self.feeds = dict(feeds)
        self.clock = clock
        self.opts = options
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self.accounts: dict[str, _Account] = {}
        for a in accounts:
            self.add_account(a)
        self._orders: dict[tuple[str, int], _Order] = {}
        self._by_client: dict[tuple[str, str, str], int] = {}
        self._open: dict[str, dict[int, _Order]] = {s: {} for s in self.specs}
        self._trades: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._order_ids = {s: itertools.count(1001) for s in self.specs}
        self._trade_ids = {s: itertools.count(50001) for s in self.specs}
        self._auto_ids = itertools.count(1)
        self.last_advance = clock.now_ms()
        self._book_cache: dict[tuple[str, int, int], tuple[list[tuple[Decimal, Decimal]], ...]] = {}

    # -- accounts ------------------------------------------------------------------------------------
    def add_account(self, spec: AccountSpec) -> None:
        with self.lock:
            free = {k: Decimal(str(v)) for k, v in spec.balances.items()}
            self.accounts[spec.api_key] = _Account(spec, free, {})

    def set_balance(self, api_key: str, asset: str, free: Decimal) -> None:
        with self.lock:
            self.accounts[api_key].free[asset] = free

    def account_info(self, api_key: str) -> dict[str, Any]:
        with self.lock:
            acct = self.accounts[api_key]
            assets = sorted(set(acct.free) | set(acct.locked))
            return {
                "makerCommission": int(self.opts.maker_fee * 10000),
                "takerCommission": int(self.opts.taker_fee * 10000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": fmt(self.opts.maker_fee), "taker": fmt(self.opts.taker_fee),
                                    "buyer": fmt(ZERO), "seller": fmt(ZERO)},
                "canTrade": True,
                "canWithdraw": False,
                "canDeposit": False,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": acct.update_time,
                "accountType": "SPOT",
                "balances": [
                    {"asset": a, "free": fmt(acct.free.get(a, ZERO)), "locked": fmt(acct.locked.get(a, ZERO))}
                    for a in assets
                ],
                "permissions": ["SPOT"],
                "uid": abs(hash(api_key)) % 10**9,
            }

    # -- prices --------------------------------------------------------------------------------------
    def spec(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise _reject(-1121, "Invalid symbol.")
        return spec

    def last_price(self, symbol: str, t: int | None = None) -> Decimal:
        spec = self.spec(symbol)
        raw = Decimal(repr(self.feeds[symbol].price_at(self.clock.now_ms() if t is None else t)))
        tick = spec.tick
        if tick > 0:
            raw = (raw / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick
            raw = max(raw, tick)
        return raw

    def _tick_round(self, spec: SymbolSpec, price: Decimal, *, up: bool) -> Decimal:
        tick = spec.tick
        if tick <= 0:
            return price.quantize(_Q8)
        return (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR) * tick

    def _step_floor(self, spec: SymbolSpec, qty: Decimal) -> Decimal:
        step = spec.step
        if step <= 0:
            return qty.quantize(_Q8, rounding=ROUND_FLOOR)
        return (qty / step).to_integral_value(rounding=ROUND_FLOOR) * step

    def book(self, symbol: str, levels: int | None = None) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        """(bids, asks), best first, around the current price."""
        spec = self.spec(symbol)
        n = levels or self.opts.book_levels
        # The book is a pure function of (symbol, time, depth): cache it, orders at one instant share it.
        key = (symbol, self.clock.now_ms(), n)
        cached = self._book_cache.get(key)
        if cached is not None:
            return cached
        if len(self._book_cache) > 256:
            self._book_cache.clear()
        self._book_cache[key] = built = self._build_book(spec, symbol, n)
        return built

    def _build_book(self, spec: SymbolSpec, symbol: str, n: int) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        p = self.last_price(symbol)
        half = self.opts.spread_bps / Decimal(20000)
        gap = self.opts.level_bps / Decimal(10000)
        tick = spec.tick if spec.tick > 0 else _Q8
        best_bid = self._tick_round(spec, p * (1 - half), up=False)
        best_ask = self._tick_round(spec, p * (1 + half), up=True)
        if best_ask <= best_bid:
            best_ask = best_bid + tick
        bids: list[tuple[Decimal, Decimal]] = []
        asks: list[tuple[Decimal, Decimal]] = []
        for i in range(n):
            grow = 1 + Decimal(i) / 2
            bid = self._tick_round(spec, best_bid * (1 - gap * i), up=False)
            ask = self._tick_round(spec, best_ask * (1 + gap * i), up=True)
            if bids and bid >= bids[-1][0]:
                bid = bids[-1][0] - tick
            if asks and ask <= asks[-1][0]:
                ask = asks[-1][0] + tick
            if bid <= 0:
                break
            bids.append((bid, self._step_floor(spec, self.opts.level_quote * grow / bid)))
            asks.append((ask, self._step_floor(spec, self.opts.level_quote * grow / ask)))
        return bids, asks

    # -- parameters ----------------------------------------------------------------------------------
    @staticmethod
    def _number(params: Mapping[str, str], name: str, spec: SymbolSpec, precision: int) -> Decimal | None:
        value = decimal_param(params, name)
        if value is None:
            return None
        if decimals_of(value) > precision:
            raise _reject(-1111, f"Parameter '{name}' has too much precision.")
        if value <= 0:
            label = {"quantity": "quantity", "quoteOrderQty": "quantity", "price": "price"}[name]
            raise _reject(-1013, f"Invalid {label}.")
        return value

    # -- orders --------------------------------------------------------------------------------------
    def place(self, api_key: str, params: Mapping[str, str]) -> tuple[_Order, list[dict[str, Any]]]:
        """Validate, accept and match a new order. Returns the order and the fills of this request."""
        with self.lock:
            return self._place(api_key, params)

    def _place(self, api_key: str, params: Mapping[str, str]) -> tuple[_Order, list[dict[str, Any]]]:
        spec = self._symbol_param(params)
        symbol = spec.symbol
        side = enum_param(params, "side", ("BUY", "SELL"), required=True, upper=True, code=-1117,
                          msg="Invalid side.")
        otype = enum_param(params, "type", ("LIMIT", "MARKET", "LIMIT_MAKER"), required=True, upper=True,
                           code=-1116, msg="Invalid orderType.")
        assert side is not None and otype is not None
        if otype not in spec.info.get("orderTypes", ()):
            raise _reject(-1116, "Invalid orderType.")
        qty = self._number(params, "quantity", spec, spec.base_precision)
        quote_qty = self._number(params, "quoteOrderQty", spec, spec.quote_precision)
        price = self._number(params, "price", spec, spec.quote_precision)
        tif = enum_param(params, "timeInForce", ("GTC", "IOC", "FOK"), code=-1115, msg="Invalid timeInForce.")
        if otype == "LIMIT":
            if tif is None:
                raise _reject(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        elif tif is not None:
            raise _reject(-1106, "Parameter 'timeInForce' sent when not required.")
        if otype in ("LIMIT", "LIMIT_MAKER"):
            if qty is None:
                raise _reject(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
            if price is None:
                raise _reject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
            if quote_qty is not None:
                raise _reject(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        else:
            if qty is None and quote_qty is None:
                raise _reject(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if qty is not None and quote_qty is not None:
                raise _reject(-1106, "Parameter 'quoteOrderQty' sent when not required.")
            if price is not None:
                raise _reject(-1106, "Parameter 'price' sent when not required.")
            if quote_qty is not None and not spec.info.get("quoteOrderQtyMarketAllowed", True):
                raise _reject(-2010, "Quote order qty market orders are not support for this symbol.")
        client_id = client_id_param(params, "newClientOrderId") or f"sim{next(self._auto_ids):019d}"
        if api_key not in self.accounts:
            raise _reject(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        avg = self.last_price(symbol)
        open_orders = sum(1 for o in self._open[symbol].values() if o.account == api_key)
        rejection = check_filters(spec, side=side, order_type="MARKET" if otype == "MARKET" else "LIMIT",
                                  qty=qty, quote_qty=quote_qty, price=price, avg_price=avg,
                                  open_orders=open_orders)
        if rejection is not None:
            raise SimReject(rejection)
        previous = self._by_client.get((api_key, symbol, client_id))
        if previous is not None and self._orders[(symbol, previous)].is_open:
            raise _reject(-2010, "Duplicate order sent.")
        now = self.clock.now_ms()
        acct = self.accounts[api_key]
        bids, asks = self.book(symbol)
        if otype == "MARKET":
            return self._place_market(acct, spec, side, qty, quote_qty, client_id, now, bids, asks)
        return self._place_limit(acct, spec, side, otype, tif, qty or ZERO, price or ZERO, client_id, now,
                                 bids, asks)

    def _new_order(self, acct: _Account, spec: SymbolSpec, **kw: Any) -> _Order:
        order = _Order(account=acct.spec.api_key, symbol=spec.symbol, order_id=next(self._order_ids[spec.symbol]),
                       **kw)
        order.update_time = order.time
        self._orders[(spec.symbol, order.order_id)] = order
        self._by_client[(acct.spec.api_key, spec.symbol, order.client_order_id)] = order.order_id
        return order

    def _walk(self, spec: SymbolSpec, side: str, levels: list[tuple[Decimal, Decimal]], *,
              qty: Decimal | None, quote: Decimal | None, limit: Decimal | None) -> list[tuple[Decimal, Decimal]]:
        out: list[tuple[Decimal, Decimal]] = []
        rem_qty, rem_quote = qty, quote
        for price, size in levels:
            if limit is not None and ((side == "BUY" and price > limit) or (side == "SELL" and price < limit)):
                break
            if rem_qty is not None:
                take = min(size, rem_qty)
            else:
                assert rem_quote is not None
                take = min(size, self._step_floor(spec, rem_quote / price))
            if take <= 0:
                break
            out.append((price, take))
            if rem_qty is not None:
                rem_qty -= take
                if rem_qty <= 0:
                    break
            else:
                assert rem_quote is not None
                rem_quote -= take * price
        return out

    def _slip(self, spec: SymbolSpec, side: str, price: Decimal) -> Decimal:
        if self.opts.slippage_bps <= 0:
            return price
        k = self.opts.slippage_bps / Decimal(10000)
        if side == "BUY":
            return self._tick_round(spec, price * (1 + k), up=True)
        return max(self._tick_round(spec, price * (1 - k), up=False), spec.tick)

    def _place_market(self, acct: _Account, spec: SymbolSpec, side: str, qty: Decimal | None,
                      quote_qty: Decimal | None, client_id: str, now: int, bids: list[tuple[Decimal, Decimal]],
                      asks: list[tuple[Decimal, Decimal]],
                      ) -> tuple[_Order, list[dict[str, Any]]]:
        levels = asks if side == "BUY" else bids
        plan = [(self._slip(spec, side, p), q) for p, q in self._walk(spec, side, levels, qty=qty, quote=quote_qty,
                                                                     limit=None)]
        cost = sum((p * q for p, q in plan), ZERO)
        base_total = sum((q for _, q in plan), ZERO)
        if side == "BUY":
            need = quote_qty if quote_qty is not None else cost
            if acct.available(spec.quote) < need:
                raise _reject(-2010, "Account has insufficient balance for requested action.")
        else:
            need = qty if qty is not None else base_total
            if acct.available(spec.base) < need:
                raise _reject(-2010, "Account has insufficient balance for requested action.")
        order = self._new_order(acct, spec, client_order_id=client_id, side=side, type="MARKET", tif="GTC",
                                price=ZERO, orig_qty=qty if qty is not None else base_total,
                                quote_order_qty=quote_qty or ZERO, time=now)
        order.working_time = now
        self._emit_execution(order, "NEW", now)
        fills = self._take(acct, spec, order, plan, now)
        complete = (order.executed >= order.orig_qty) if qty is not None else bool(plan)
        if complete and order.executed > 0:
            order.status = "FILLED"
        else:
            order.status = "EXPIRED"
            self._emit_execution(order, "EXPIRED", now)
        return order, fills

    def _take(self, acct: _Account, spec: SymbolSpec, order: _Order, plan: list[tuple[Decimal, Decimal]],
              now: int) -> list[dict[str, Any]]:
        """Execute a taker plan, one executionReport per fill as Binance sends them."""
        fills = []
        for price, qty in plan:
            fills.append(self._execute(acct, spec, order, price, qty, maker=False, now=now))
            order.status = "FILLED" if order.executed >= order.orig_qty else "PARTIALLY_FILLED"
            self._emit_execution(order, "TRADE", now)
        return fills

    def _place_limit(self, acct: _Account, spec: SymbolSpec, side: str, otype: str, tif: str | None,
                     qty: Decimal, price: Decimal, client_id: str, now: int, bids: list[tuple[Decimal, Decimal]],
                      asks: list[tuple[Decimal, Decimal]],
                     ) -> tuple[_Order, list[dict[str, Any]]]:
        levels = asks if side == "BUY" else bids
        crosses = bool(levels) and ((side == "BUY" and price >= levels[0][0]) or
                                    (side == "SELL" and price <= levels[0][0]))
        if otype == "LIMIT_MAKER" and crosses:
            raise _reject(-2010, "Order would immediately match and take.")
        lock_asset, lock_amount = (spec.quote, qty * price) if side == "BUY" else (spec.base, qty)
        if acct.available(lock_asset) < lock_amount:
            raise _reject(-2010, "Account has insufficient balance for requested action.")
        plan = self._walk(spec, side, levels, qty=qty, quote=None, limit=price) if crosses else []
        planned = sum((q for _, q in plan), ZERO)
        order = self._new_order(acct, spec, client_order_id=client_id, side=side, type=otype,
                                tif=tif if otype == "LIMIT" else "GTC", price=price, orig_qty=qty,
                                quote_order_qty=ZERO, time=now)
        order.working_time = now
        if tif == "FOK" and planned < qty:
            self._emit_execution(order, "NEW", now)
            order.status = "EXPIRED"
            self._emit_execution(order, "EXPIRED", now)
            return order, []
        acct.free[lock_asset] = acct.available(lock_asset) - lock_amount
        acct.locked[lock_asset] = acct.locked.get(lock_asset, ZERO) + lock_amount
        order.locked_asset, order.locked = lock_asset, lock_amount
        self._emit_execution(order, "NEW", now)
        fills = self._take(acct, spec, order, plan, now)
        if order.executed < order.orig_qty:
            if tif == "IOC":
                order.status = "EXPIRED"
                self._emit_execution(order, "EXPIRED", now)
            else:
                self._open[spec.symbol][order.order_id] = order
        if not order.is_open:
            self._release(acct, order)
        return order, fills

    def _execute(self, acct: _Account, spec: SymbolSpec, order: _Order, price: Decimal, qty: Decimal, *,
                 maker: bool, now: int) -> dict[str, Any]:
        rate = self.opts.maker_fee if maker else self.opts.taker_fee
        quote = price * qty
        if order.side == "BUY":
            fee, fee_asset = (qty * rate).quantize(_Q8, rounding=ROUND_HALF_UP), spec.base
            if order.locked_asset:
                locked_part = qty * order.price
                order.locked -= locked_part
                acct.locked[spec.quote] = acct.locked.get(spec.quote, ZERO) - locked_part
                acct.credit(spec.quote, locked_part - quote)
            else:
                acct.credit(spec.quote, -quote)
            acct.credit(spec.base, qty - fee)
        else:
            fee, fee_asset = (quote * rate).quantize(_Q8, rounding=ROUND_HALF_UP), spec.quote
            if order.locked_asset:
                order.locked -= qty
                acct.locked[spec.base] = acct.locked.get(spec.base, ZERO) - qty
            else:
                acct.credit(spec.base, -qty)
            acct.credit(spec.quote, quote - fee)
        acct.update_time = now
        order.executed += qty
        order.cumm_quote += quote
        order.update_time = now
        trade_id = next(self._trade_ids[spec.symbol])
        fill = {"price": fmt(price), "qty": fmt(qty), "commission": fmt(fee), "commissionAsset": fee_asset,
                "tradeId": trade_id}
        order.fills.append(fill)
        order.last_fill = {**fill, "maker": maker, "quote": quote, "time": now}
        self._trades.setdefault((acct.spec.api_key, spec.symbol), []).append({
            "symbol": spec.symbol, "id": trade_id, "orderId": order.order_id, "orderListId": -1,
            "price": fmt(price), "qty": fmt(qty), "quoteQty": fmt(quote), "commission": fmt(fee),
            "commissionAsset": fee_asset, "time": now, "isBuyer": order.side == "BUY", "isMaker": maker,
            "isBestMatch": True,
        })
        self._notify({"type": "trade", "symbol": spec.symbol, "id": trade_id, "price": price, "qty": qty,
                      "time": now, "buyer_maker": (order.side == "SELL") != maker})
        return fill

    def _release(self, acct: _Account, order: _Order) -> None:
        if order.locked_asset and order.locked != 0:
            acct.locked[order.locked_asset] = acct.locked.get(order.locked_asset, ZERO) - order.locked
            acct.credit(order.locked_asset, order.locked)
            order.locked = ZERO
        self._open[order.symbol].pop(order.order_id, None)

    def _find(self, api_key: str, symbol: str, params: Mapping[str, str]) -> _Order | None:
        order_id = int_param(params, "orderId")
        client_id = client_id_param(params, "origClientOrderId")
        if order_id is not None:
            order = self._orders.get((symbol, order_id))
            if order is None or order.account != api_key:
                return None
            if client_id and order.client_order_id != client_id:
                return None
            return order
        if client_id:
            oid = self._by_client.get((api_key, symbol, client_id))
            return None if oid is None else self._orders[(symbol, oid)]
        raise _reject(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")

    def query(self, api_key: str, params: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            spec = self._symbol_param(params)
            order = self._find(api_key, spec.symbol, params)
            if order is None:
                raise _reject(-2013, "Order does not exist.")
            return order.view()

    def cancel(self, api_key: str, params: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            spec = self._symbol_param(params)
            new_id = client_id_param(params, "newClientOrderId")  # malformed is -1100 even for an unknown order
            order = self._find(api_key, spec.symbol, params)
            if order is None or not order.is_open:
                raise _reject(-2011, "Unknown order sent.")
            now = self.clock.now_ms()
            order.status = "CANCELED"
            order.update_time = now
            self._release(self.accounts[api_key], order)
            cancel_id = new_id or f"sim{next(self._auto_ids):019d}"
            self._emit_execution(order, "CANCELED", now, orig_client_id=order.client_order_id,
                                 client_id=cancel_id)
            view = order.view()
            return {
                "symbol": order.symbol, "origClientOrderId": order.client_order_id, "orderId": order.order_id,
                "orderListId": -1, "clientOrderId": cancel_id, "transactTime": now,
                "price": view["price"], "origQty": view["origQty"], "executedQty": view["executedQty"],
                "cummulativeQuoteQty": view["cummulativeQuoteQty"], "status": "CANCELED",
                "timeInForce": view["timeInForce"], "type": order.type, "side": order.side,
                "selfTradePreventionMode": "EXPIRE_MAKER",
            }

    def open_orders(self, api_key: str, symbol: str | None) -> list[dict[str, Any]]:
        with self.lock:
            symbols = [self.spec(symbol.upper()).symbol] if symbol else list(self.specs)
            return [o.view() for s in symbols for o in sorted(self._open[s].values(), key=lambda o: o.order_id)
                    if o.account == api_key]

    def my_trades(self, api_key: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            spec = self._symbol_param(params)
            rows = self._trades.get((api_key, spec.symbol), [])
            limit = int_param(params, "limit", default=500, lo=1, hi=1000)
            order_id, from_id = int_param(params, "orderId"), int_param(params, "fromId")
            start, end = int_param(params, "startTime"), int_param(params, "endTime")
            assert limit is not None
            if order_id is not None:
                rows = [r for r in rows if r["orderId"] == order_id]
            if from_id is not None:
                rows = [r for r in rows if r["id"] >= from_id]
                return rows[:limit]
            if start is not None:
                rows = [r for r in rows if r["time"] >= start]
            if end is not None:
                rows = [r for r in rows if r["time"] <= end]
            return rows[:limit] if start is not None else rows[-limit:]

    def _symbol_param(self, params: Mapping[str, str]) -> SymbolSpec:
        symbol = symbol_param(params)
        assert symbol is not None
        return self.spec(symbol)

    # -- time ----------------------------------------------------------------------------------------
    def advance_to(self, t: int) -> None:
        """Move the market clock to ``t`` and let resting orders trade against the path in between."""
        with self.lock:
            t0 = self.last_advance
            if t <= t0:
                return
            self.clock.set_ms(t)
            self.last_advance = t
            for symbol, book in self._open.items():
                if not book:
                    continue
                lo, hi, volume = self.feeds[symbol].range_between(t0, t)
                spec = self.specs[symbol]
                budget = self.opts.participation * Decimal(repr(volume))
                for order in sorted(book.values(), key=lambda o: o.order_id):
                    crossed = (order.side == "BUY" and Decimal(repr(lo)) < order.price) or (
                        order.side == "SELL" and Decimal(repr(hi)) > order.price)
                    if not crossed or budget <= 0:
                        continue
                    take = self._step_floor(spec, min(order.orig_qty - order.executed, budget))
                    if take <= 0:
                        continue
                    budget -= take
                    acct = self.accounts[order.account]
                    self._execute(acct, spec, order, order.price, take, maker=True, now=t)
                    if order.executed >= order.orig_qty:
                        order.status = "FILLED"
                        self._release(acct, order)
                    else:
                        order.status = "PARTIALLY_FILLED"
                    self._emit_execution(order, "TRADE", t)
            self._notify({"type": "tick", "prev": t0, "time": t})

    # -- events --------------------------------------------------------------------------------------
    def _notify(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(event)

    def _emit_execution(self, order: _Order, exec_type: str, now: int, *, orig_client_id: str = "",
                        client_id: str | None = None) -> None:
        last = order.last_fill if exec_type == "TRADE" else None
        payload = {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": client_id or order.client_order_id, "S": order.side, "o": order.type,
            "f": order.tif or "GTC", "q": fmt(order.orig_qty), "p": fmt(order.price), "P": fmt(ZERO),
            "F": fmt(ZERO), "g": -1, "C": orig_client_id, "x": exec_type, "X": order.status, "r": "NONE",
            "i": order.order_id, "l": last["qty"] if last else fmt(ZERO),
            "z": fmt(order.executed), "L": last["price"] if last else fmt(ZERO),
            "n": last["commission"] if last else fmt(ZERO), "N": last["commissionAsset"] if last else None,
            "T": now, "t": last["tradeId"] if last else -1, "I": next(self._auto_ids),
            "w": order.is_open, "m": bool(last["maker"]) if last else False, "M": False, "O": order.time,
            "Z": fmt(order.cumm_quote), "Y": fmt(last["quote"]) if last else fmt(ZERO),
            "Q": fmt(order.quote_order_qty), "W": order.working_time, "V": "EXPIRE_MAKER",
        }
        self._notify({"type": "execution", "account": order.account, "payload": payload})
