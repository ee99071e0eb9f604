"""The one implementation of :class:`~thunes.exchange.port.ExchangePort`: the real, unmodified ccxt client.

Binance, the Binance Spot testnet (ccxt sandbox mode) and the local exchange differ only by configuration
(``mode`` and ``base_url``); there is no paper-trading branch in here. Raw ccxt dicts become typed values
with ``Decimal`` amounts taken from Binance's own strings (``info``), and ccxt exceptions are translated once
(:func:`thunes.exchange.errors.translate`).

Two choices worth knowing:

* ccxt silently truncates quantities to the step and rounds prices to the tick before sending. That would
  hide sizing bugs (and turn a "rejected" into a different order), so :meth:`CcxtExchange.place_order` refuses
  a quantity or price that ccxt would change, with ``FilterRejected`` naming the filter.
* Requests are signed with ``recvWindow`` = ``CcxtOptions.recv_window_ms`` (4 s, below Binance's 5 s default;
  ccxt's own default is 10 s). A request whose answer was lost may still be accepted by the exchange until its
  timestamp is that old, so the executor waits that long (plus the clock skew the exchange tolerates) before it
  treats a missing order as never placed; a shorter window makes that wait shorter. :attr:`CcxtExchange.
  recv_window_ms` reports the window the client really signs with.
* ``-1021`` (timestamp outside recvWindow) means our clock drifted: the adapter resyncs ccxt's time
  difference once and retries the same call (the exchange refused it before matching, so this is safe).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import ccxt
import pandas as pd

from thunes.core.candles import candles_frame
from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import ConfigError, FilterRejected
from thunes.core.markets import Market
from thunes.core.timeframes import timeframe_ms
from thunes.exchange.errors import translate
from thunes.exchange.types import Balance, Fill, OrderRequest, OrderResult, Ticker, Trade

if TYPE_CHECKING:  # pragma: no cover
    from thunes.config import ExchangeSettings
    from thunes.exchange.sim import LocalExchange

__all__ = ["CcxtExchange", "CcxtOptions", "ccxt_config", "make_ccxt_client", "make_local_exchange_client", "order_result"]

T = TypeVar("T")
ZERO = Decimal(0)
Mode = Literal["local", "testnet", "live"]

_CCXT_STATUS = {"open": OrderStatus.NEW, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
                "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}


@dataclass(frozen=True, slots=True, kw_only=True)
class CcxtOptions:
    """How to reach the exchange. ``base_url`` is the REST root (``http://127.0.0.1:8765``, with or
    without ``/api/v3``); ``None`` means the mode's default (live Binance, the testnet, or the local port)."""

    exchange_id: str = "binance"
    mode: Mode = "local"
    base_url: str | None = None
    ws_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never in logs or tracebacks
    secret: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    enable_rate_limit: bool = True
    recv_window_ms: int = 4_000  # the executor's settle time derives from it (orders.min_settle_ms)
    local_host: str = "127.0.0.1"
    local_port: int = 8765

    def __post_init__(self) -> None:
        if not 0 < self.recv_window_ms <= 60_000:
            raise ConfigError(f"CcxtOptions.recv_window_ms must be in (0, 60000] (Binance's limit), "
                              f"got {self.recv_window_ms}")

    @classmethod
    def from_settings(cls, settings: ExchangeSettings) -> CcxtOptions:
        return cls(
            exchange_id=settings.id,
            mode=settings.mode,
            base_url=settings.base_url,
            ws_url=settings.ws_url,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            secret=settings.api_secret.get_secret_value() if settings.api_secret else None,
            timeout_s=settings.timeout_s,
            local_host=settings.local_host,
            local_port=settings.local_port,
        )

    def rest_root(self) -> str | None:
        if self.base_url:
            from thunes.core.urls import rest_root

            try:
                return rest_root(self.base_url)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.mode == "local":
            return f"http://{self.local_host}:{self.local_port}"
        return None

    def ws_root(self) -> str | None:
        if self.ws_url:
            root = self.ws_url.rstrip("/")
            return root[:-3] if root.endswith("/ws") else root
        rest = self.rest_root()
        if rest is None:
            return None
        return rest.replace("https://", "wss://").replace("http://", "ws://")


def ccxt_config(options: CcxtOptions) -> dict[str, Any]:
    """The ccxt constructor config: spot-only ``load_markets`` (one ``exchangeInfo`` call), keys, timeout."""
    cfg: dict[str, Any] = {
        "timeout": int(options.timeout_s * 1000),
        "enableRateLimit": options.enable_rate_limit,
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "recvWindow": options.recv_window_ms,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    }
    if options.api_key:
        cfg["apiKey"] = options.api_key
    if options.secret:
        cfg["secret"] = options.secret
    return cfg


def _apply_urls(client: Any, options: CcxtOptions) -> None:
    if options.mode == "testnet":
        # Order matters: sandbox mode replaces urls['api'] wholesale, so custom URLs go in afterwards.
        client.set_sandbox_mode(True)
    root = options.rest_root()
    if root is not None and (options.mode == "local" or options.base_url):
        api = client.urls["api"]
        api["public"] = f"{root}/api/v3"
        api["private"] = f"{root}/api/v3"
        api["v1"] = f"{root}/api/v1"
        ws_root = options.ws_root()
        if isinstance(api.get("ws"), dict) and ws_root:
            api["ws"]["spot"] = f"{ws_root}/ws"
            if isinstance(api["ws"].get("ws-api"), dict):
                api["ws"]["ws-api"]["spot"] = f"{ws_root}/ws-api/v3"


def make_ccxt_client(options: CcxtOptions, *, pro: bool = False) -> Any:
    """A configured ccxt client (sync), or a ccxt.pro client (async, websockets) with ``pro=True``."""
    if pro:
        import ccxt.pro as module  # a submodule: not loaded by ``import ccxt``
    else:
        module = ccxt
    try:
        cls = getattr(module, options.exchange_id)
    except AttributeError as exc:
        raise ConfigError(f"ccxt has no exchange {options.exchange_id!r}") from exc
    client = cls(ccxt_config(options))
    _apply_urls(client, options)
    return client


def make_local_exchange_client(base_url: str, api_key: str, secret: str, *, timeout_s: float = 10.0,
                               pro: bool = False) -> Any:
    """A raw ccxt ``binance`` client aimed at a local exchange (for contract tests and notebooks)."""
    return make_ccxt_client(CcxtOptions(mode="local", base_url=base_url, api_key=api_key, secret=secret,
                                        timeout_s=timeout_s, enable_rate_limit=False), pro=pro)


def _d(value: Any) -> Decimal:
    if value is None:
        return ZERO
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def _opt_d(value: Any) -> Decimal | None:
    return None if value is None or value == "" else _d(value)


class CcxtExchange:
    """The exchange port over ccxt (sync). Thread-compatible, not thread-safe: one instance per thread."""

    def __init__(self, settings: ExchangeSettings | CcxtOptions, *, client: Any | None = None) -> None:
        self.options = settings if isinstance(settings, CcxtOptions) else CcxtOptions.from_settings(settings)
        self.client = client if client is not None else make_ccxt_client(self.options)
        self._markets: dict[str, Market] | None = None

    @classmethod
    def for_local(cls, sim: LocalExchange, *, api_key: str | None = None, secret: str | None = None,
                  timeout_s: float = 10.0, recv_window_ms: int | None = None) -> CcxtExchange:
        """An adapter on a started :class:`~thunes.exchange.sim.LocalExchange` (its first account by default)."""
        options = CcxtOptions(mode="local", base_url=sim.base_url, api_key=api_key or sim.api_key,
                              secret=secret or sim.secret, timeout_s=timeout_s, enable_rate_limit=False)
        if recv_window_ms is not None:
            options = replace(options, recv_window_ms=recv_window_ms)
        return cls(options)

    @property
    def exchange_id(self) -> str:
        """The ccxt exchange id (``binance``), e.g. for a stored candle's ``source``."""
        return self.options.exchange_id

    @property
    def recv_window_ms(self) -> int:
        """The ``recvWindow`` the client signs requests with (Binance's default, 5000, when it sends none)."""
        value = self.client.options.get("recvWindow")
        return int(value) if value else 5_000

    # -- plumbing ------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ccxt.InvalidNonce:
            # Our clock drifted from the exchange's: resync once, then retry the same request.
            try:
                self.client.load_time_difference()
                return fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                raise translate(exc, self.client.last_response_headers) from exc
        except ccxt.BaseError as exc:
            raise translate(exc, self.client.last_response_headers) from exc

    def _ccxt_market(self, symbol: str) -> dict[str, Any]:
        if self._markets is None:
            self.load_markets()
        try:
            market: dict[str, Any] = self.client.market(symbol)
            return market
        except ccxt.BaseError as exc:
            raise translate(exc) from exc

    # -- market data ---------------------------------------------------------------------------------
    def load_markets(self, reload: bool = False) -> dict[str, Market]:
        raw = self._call(self.client.load_markets, reload)
        markets: dict[str, Market] = {}
        for symbol, m in raw.items():
            if not m.get("spot", True) or "symbol" not in m.get("info", {}):
                continue
            market = Market.from_binance(m["info"])
            markets[symbol] = market
        self._markets = markets
        return markets

    @property
    def markets(self) -> dict[str, Market]:
        return self._markets if self._markets is not None else self.load_markets()

    def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                      limit: int | None = None) -> pd.DataFrame:
        """Candles from ``since`` (oldest first), paging past the 1000-row answer limit when needed."""
        rows: list[list[float]] = []
        want = limit
        cursor = since
        tf = timeframe_ms(timeframe)
        while True:
            page = min(1000, want - len(rows)) if want is not None else 1000
            batch = self._call(self.client.fetch_ohlcv, symbol, timeframe, cursor, page)
            if rows and batch and batch[0][0] <= rows[-1][0]:
                batch = [b for b in batch if b[0] > rows[-1][0]]
            rows.extend(batch)
            if since is None or not batch or len(batch) < page or (want is not None and len(rows) >= want):
                break
            cursor = int(rows[-1][0]) + tf
        if not rows:
            return candles_frame([], [], [], [], [], [])
        cols = list(zip(*rows))
        return candles_frame(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])

    def fetch_time(self) -> int:
        """The exchange's clock (epoch ms): a candle is closed once its whole interval lies before it."""
        return int(self._call(self.client.fetch_time))

    def fetch_ticker(self, symbol: str) -> Ticker:
        t = self._call(self.client.fetch_ticker, symbol)
        info = t.get("info") or {}
        return Ticker(
            symbol=symbol,
            last=_d(info.get("lastPrice", t.get("last"))),
            bid=_opt_d(info.get("bidPrice", t.get("bid"))),
            ask=_opt_d(info.get("askPrice", t.get("ask"))),
            high=_opt_d(info.get("highPrice", t.get("high"))),
            low=_opt_d(info.get("lowPrice", t.get("low"))),
            base_volume=_opt_d(info.get("volume", t.get("baseVolume"))),
            ts_ms=t.get("timestamp"),
        )

    # -- account -------------------------------------------------------------------------------------
    def fetch_balance(self) -> dict[str, Balance]:
        raw = self._call(self.client.fetch_balance)
        info = raw.get("info") or {}
        out: dict[str, Balance] = {}
        if isinstance(info.get("balances"), list):
            for b in info["balances"]:
                out[b["asset"]] = Balance(asset=b["asset"], free=_d(b["free"]), locked=_d(b["locked"]))
            return out
        for asset, b in raw.items():
            if isinstance(b, dict) and "free" in b:
                out[asset] = Balance(asset=asset, free=_d(b.get("free")), locked=_d(b.get("used")))
        return out

    # -- orders --------------------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> OrderResult:
        m = self._ccxt_market(request.symbol)
        params: dict[str, Any] = {"newClientOrderId": request.client_order_id}
        amount: str | None = None
        price: str | None = None
        if request.qty is not None:
            amount = self._exact(request.symbol, request.qty, "amount")
        if request.price is not None:
            price = self._exact(request.symbol, request.price, "price")
        if request.quote_qty is not None:
            params["quoteOrderQty"] = self._exact(request.symbol, request.quote_qty, "cost")
        if request.time_in_force is not None and request.type is OrderType.LIMIT:
            params["timeInForce"] = str(request.time_in_force)
        raw = self._call(self.client.create_order, m["symbol"], request.type.value.lower(),
                         request.side.value.lower(), amount, price, params)
        return self._order(raw, request.symbol)

    def _exact(self, symbol: str, value: Decimal, kind: str) -> str:
        """``value`` as a string, refusing any value ccxt would round on the way out."""
        text = format(value, "f")
        if kind == "amount":
            sent = self.client.amount_to_precision(symbol, text)
            filter_name = "LOT_SIZE"
        elif kind == "price":
            sent = self.client.price_to_precision(symbol, text)
            filter_name = "PRICE_FILTER"
        else:
            sent = self.client.decimal_to_precision(text, ccxt.TRUNCATE, self.client.market(symbol)["precision"]
                                                    ["price"], self.client.precisionMode, self.client.paddingMode)
            filter_name = "NOTIONAL"
        if Decimal(sent) != value:
            raise FilterRejected(
                f"{symbol}: {kind} {text} is off the exchange grid (ccxt would send {sent}); round it with "
                f"Market.round_qty/round_price before placing", code=None, filter_name=filter_name)
        return text

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult:
        raw = self._call(self.client.cancel_order, None, symbol, {"origClientOrderId": client_order_id})
        return self._order(raw, symbol, client_order_id=client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult:
        raw = self._call(self.client.fetch_order, None, symbol, {"origClientOrderId": client_order_id})
        return self._order(raw, symbol)

    def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        rows = self._call(self.client.fetch_open_orders, symbol)
        return [self._order(r, r.get("symbol") or symbol or "") for r in rows]

    def fetch_my_trades(self, symbol: str, since: int | None = None) -> list[Trade]:
        rows = self._call(self.client.fetch_my_trades, symbol, since)
        out = []
        for r in rows:
            info = r.get("info") or {}
            fee = r.get("fee") or {}
            out.append(Trade(
                symbol=r.get("symbol") or symbol,
                trade_id=str(r.get("id")),
                order_id=str(r.get("order")),
                side=Side(str(r.get("side")).upper()),
                price=_d(info.get("price", r.get("price"))),
                qty=_d(info.get("qty", r.get("amount"))),
                quote_qty=_d(info.get("quoteQty", r.get("cost"))),
                fee=_d(info.get("commission", fee.get("cost"))),
                fee_asset=info.get("commissionAsset", fee.get("currency")),
                is_maker=bool(info.get("isMaker", r.get("takerOrMaker") == "maker")),
                ts_ms=int(r.get("timestamp") or 0),
            ))
        return out

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> CcxtExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- parsing -------------------------------------------------------------------------------------
    def _order(self, raw: Mapping[str, Any], symbol: str, *, client_order_id: str | None = None) -> OrderResult:
        return order_result(raw, symbol, client_order_id=client_order_id)


def order_result(raw: Mapping[str, Any], symbol: str, *, client_order_id: str | None = None) -> OrderResult:
    """A typed order from a ccxt order dict (REST answer or ccxt.pro ``watch_orders`` entry)."""
    info = raw.get("info") or {}
    status_text = str(info.get("status") or info.get("X") or "")
    if status_text == "EXPIRED_IN_MATCH":
        status_text = "EXPIRED"
    try:
        status = OrderStatus(status_text)
    except ValueError:
        status = _CCXT_STATUS.get(str(raw.get("status")), OrderStatus.NEW)
        if status is OrderStatus.NEW and (raw.get("filled") or 0) > 0:
            status = OrderStatus.PARTIALLY_FILLED
    fills = []
    for f in info.get("fills") or []:
        fills.append(Fill(trade_id=str(f.get("tradeId")), price=_d(f["price"]), qty=_d(f["qty"]),
                          fee=_d(f.get("commission")), fee_asset=f.get("commissionAsset"), is_maker=False))
    fee = sum((f.fee for f in fills), ZERO)
    fee_asset = fills[0].fee_asset if fills else None
    if not fills and raw.get("fee"):
        fee = _d(raw["fee"].get("cost"))
        fee_asset = raw["fee"].get("currency")
    otype_text = str(info.get("type") or raw.get("type") or "").upper()
    try:
        otype: OrderType | str = OrderType(otype_text)
    except ValueError:
        otype = otype_text
    price = _opt_d(info.get("price", raw.get("price")))
    return OrderResult(
        symbol=raw.get("symbol") or symbol,
        exchange_order_id=str(raw.get("id") or info.get("orderId")),
        client_order_id=client_order_id or info.get("origClientOrderId") or raw.get("clientOrderId")
        or info.get("clientOrderId") or "",
        status=status,
        side=Side(str(info.get("side") or raw.get("side")).upper()),
        type=otype,
        qty=_d(info.get("origQty", raw.get("amount"))),
        filled_qty=_d(info.get("executedQty", raw.get("filled"))),
        quote_filled=_d(info.get("cummulativeQuoteQty", raw.get("cost"))),
        price=price if price and price > 0 else None,
        time_in_force=info.get("timeInForce") or raw.get("timeInForce"),
        fee=fee,
        fee_asset=fee_asset,
        fills=tuple(fills),
        ts_ms=raw.get("timestamp"),
    )


