"""The exchange port: the small protocol every trading component talks to.

One implementation, :class:`thunes.exchange.ccxt_adapter.CcxtExchange`, serves Binance, the Binance Spot
testnet and the local exchange (:mod:`thunes.exchange.sim`) by configuration alone; there is no paper branch
inside it. Orders are addressed by *client* order id so that a request whose answer was lost can be looked up.
Errors are members of :mod:`thunes.core.errors` (retry only ``RetryableError``).

A port says how long a signed request stays valid (``recv_window_ms``, Binance's ``recvWindow``): a request whose
answer was lost may still be accepted until then, so the order executor must not resend before it has passed
(:func:`thunes.execution.orders.min_settle_ms` derives the wait from it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from thunes.core.markets import Market
from thunes.exchange.types import Balance, OrderRequest, OrderResult, Ticker, Trade

__all__ = ["ExchangePort"]


@runtime_checkable
class ExchangePort(Protocol):
    @property
    def recv_window_ms(self) -> int:
        """How long after its timestamp the exchange may still accept a signed request (``recvWindow``)."""
        ...

    def load_markets(self) -> dict[str, Market]:
        """Markets keyed by unified symbol (``BTC/USDT``) with their filters."""
        ...

    def fetch_candles(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """Candles in the canonical frame (index ``ts`` = open time). The last row may be still forming."""
        ...

    def fetch_ticker(self, symbol: str) -> Ticker: ...

    def fetch_balance(self) -> dict[str, Balance]: ...

    def place_order(self, request: OrderRequest) -> OrderResult: ...

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult: ...

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult: ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]: ...

    def fetch_my_trades(self, symbol: str, since: int | None = None) -> list[Trade]: ...

    def close(self) -> None: ...
