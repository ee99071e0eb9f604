"""One ccxt adapter for Binance, the Spot testnet and the local exchange, chosen by configuration alone.

Live and testnet cannot be reached from here, so their tests stop at the URLs ccxt would call; the local
exchange is then driven end to end from nothing but an ``exchange`` settings section.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretStr

from thunes.config import ExchangeSettings
from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions, make_ccxt_client
from thunes.exchange.types import OrderRequest


@pytest.mark.parametrize(("mode", "rest", "ws", "ws_api"), [
    ("live", "https://api.binance.com/api/v3", "wss://stream.binance.com:9443/ws",
     "wss://ws-api.binance.com:443/ws-api/v3"),
    ("testnet", "https://testnet.binance.vision/api/v3", "wss://stream.testnet.binance.vision/ws",
     "wss://ws-api.testnet.binance.vision/ws-api/v3"),
    ("local", "http://127.0.0.1:8765/api/v3", "ws://127.0.0.1:8765/ws", "ws://127.0.0.1:8765/ws-api/v3"),
])
def test_each_mode_points_rest_and_websockets_at_its_exchange(mode, rest, ws, ws_api):
    options = CcxtOptions.from_settings(ExchangeSettings(mode=mode))
    client = make_ccxt_client(options)
    pro = make_ccxt_client(options, pro=True)
    assert client.urls["api"]["public"] == client.urls["api"]["private"] == rest
    assert pro.urls["api"]["ws"]["spot"] == ws
    assert pro.urls["api"]["ws"]["ws-api"]["spot"] == ws_api


def test_an_explicit_base_url_wins_with_or_without_the_api_suffix():
    for base in ("http://10.0.0.5:9000", "http://10.0.0.5:9000/api/v3", "http://10.0.0.5:9000/api/v3/"):
        client = make_ccxt_client(CcxtOptions(mode="local", base_url=base))
        assert client.urls["api"]["private"] == "http://10.0.0.5:9000/api/v3"
    pro = make_ccxt_client(CcxtOptions(mode="testnet", base_url="http://10.0.0.5:9000",
                                       ws_url="ws://10.0.0.6:9100/ws"), pro=True)
    assert pro.urls["api"]["ws"]["spot"] == "ws://10.0.0.6:9100/ws"


def test_the_local_exchange_is_traded_from_the_settings_section_alone(sim):
    # Arrange: what `THUNES_EXCHANGE__MODE=local THUNES_EXCHANGE__LOCAL_PORT=...` plus keys would give
    settings = ExchangeSettings(mode="local", local_port=sim.port, api_key=SecretStr(sim.api_key),
                                api_secret=SecretStr(sim.secret), timeout_s=3)
    # Act
    with CcxtExchange(settings) as port:
        markets = port.load_markets()
        result = port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET,
                                               quote_qty=Decimal("25"), client_order_id="cfg-1"))
        balance = port.fetch_balance()
    # Assert: typed values, exact decimals, on the local exchange
    assert markets["BTC/USDT"].filters.tick_size == Decimal("0.01")
    assert result.status is OrderStatus.FILLED and isinstance(result.filled_qty, Decimal)
    assert result.quote_filled <= Decimal("25")
    assert balance["USDT"].free == Decimal("10000") - result.quote_filled


def test_keys_never_appear_in_the_options_repr():
    options = CcxtOptions.from_settings(ExchangeSettings(mode="live", api_key=SecretStr("AKIA-key-123"),
                                                         api_secret=SecretStr("s3cr3t-value")))
    assert options.api_key == "AKIA-key-123"  # handed to ccxt ...
    text = repr(options)
    assert "AKIA-key-123" not in text and "s3cr3t-value" not in text  # ... but never printed


def test_the_ccxt_adapter_implements_the_exchange_port():
    from thunes.exchange.port import ExchangePort

    port = CcxtExchange(CcxtOptions(mode="local"))
    assert isinstance(port, ExchangePort)
    port.close()
