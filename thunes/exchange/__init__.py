"""The exchange layer: the port (protocol), typed values, ccxt adapter and error translation.

The local Binance-compatible exchange lives in :mod:`thunes.exchange.sim`.
"""

from thunes.exchange.ccxt_adapter import (
    CcxtExchange,
    CcxtOptions,
    make_ccxt_client,
    make_local_exchange_client,
)
from thunes.exchange.errors import translate
from thunes.exchange.port import ExchangePort
from thunes.exchange.types import Balance, Fill, OrderRequest, OrderResult, Ticker, Trade

__all__ = [
    "Balance",
    "CcxtExchange",
    "CcxtOptions",
    "ExchangePort",
    "Fill",
    "OrderRequest",
    "OrderResult",
    "Ticker",
    "Trade",
    "make_ccxt_client",
    "make_local_exchange_client",
    "translate",
]
