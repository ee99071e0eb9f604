"""Contract tests: the real ccxt client against the local exchange, asserting Binance's behaviour.

Each rejection must surface as the same ccxt exception class as against the real Binance Spot API
(mapping in ../shared/docs/binance-spot-api.md §4.3), and then as the right THUNES error in the adapter.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import ccxt
import pytest

from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import (
    AuthenticationError,
    ExchangeUnavailable,
    FilterRejected,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RetryableError,
)
from thunes.exchange.ccxt_adapter import make_local_exchange_client
from thunes.exchange.types import OrderRequest


def test_load_markets_exposes_real_binance_filters(client):
    market = client.market("BTC/USDT")
    info_filters = {f["filterType"]: f for f in market["info"]["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE"} <= set(info_filters)
    assert Decimal(info_filters["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
    assert Decimal(info_filters["LOT_SIZE"]["stepSize"]) == Decimal("0.00001")


def test_market_order_by_quote_fills_at_the_ask_with_fee(client, sim):
    order = client.create_order("BTC/USDT", "market", "buy", None, params={"quoteOrderQty": "100",
                                                                          "newClientOrderId": "q1"})
    assert order["status"] == "closed"
    assert order["clientOrderId"] == "q1"
    assert 0 < order["cost"] <= 100
    fetched = client.fetch_order(order["id"], "BTC/USDT")
    assert fetched["filled"] == order["filled"]
    trades = client.fetch_my_trades("BTC/USDT")
    assert len(trades) == 1 and trades[-1]["order"] == order["id"]
    # The taker fee, 0.1 %, is paid in the base asset bought.
    assert trades[-1]["fee"] == {"currency": "BTC", "cost": pytest.approx(order["filled"] * 0.001, rel=1e-9)}


def test_limit_order_rests_then_fills_when_price_trades_through(port, sim):
    # Arrange: a buy at least 1% under the market and not above the current candle's low (so the current candle
    # cannot fill it), and the first later candle whose low trades through it
    feed = sim.engine.feeds["BTCUSDT"]
    now_idx = feed.index_at(sim.now_ms())
    last = sim.last_price("BTC/USDT")
    below = min(last * Decimal("0.99"), Decimal(repr(float(feed.low[now_idx])))).quantize(Decimal("0.01"), ROUND_FLOOR)
    through = next(i for i in range(now_idx + 1, len(feed.ts)) if feed.low[i] < float(below))
    req = OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, qty=Decimal("0.001"),
                       price=below, client_order_id="lim-1")
    placed = port.place_order(req)
    assert placed.status is OrderStatus.NEW
    assert [o.client_order_id for o in port.fetch_open_orders("BTC/USDT")] == ["lim-1"]
    # Act / Assert: resting while the market stays above, filled once it trades through, at the limit or better
    sim.step(through - now_idx)  # candles now_idx .. through-1 have traded, all above the limit
    assert port.fetch_order("BTC/USDT", "lim-1").status is OrderStatus.NEW
    sim.step()  # candle `through` trades below it
    final = port.fetch_order("BTC/USDT", "lim-1")
    assert final.status is OrderStatus.FILLED
    assert final.avg_price <= below
    assert port.fetch_open_orders("BTC/USDT") == []


def test_cancel_then_unknown_order_is_order_not_found(port, sim):
    last = sim.last_price("BTC/USDT")
    port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, qty=Decimal("0.001"),
                                  price=(last * Decimal("0.5")).quantize(Decimal("0.01")), client_order_id="c-1"))
    assert port.cancel_order("BTC/USDT", "c-1").status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        port.cancel_order("BTC/USDT", "c-1")
    with pytest.raises(OrderNotFound):
        port.fetch_order("BTC/USDT", "never-placed")


def test_filter_failure_is_bad_request_in_ccxt_and_filter_rejected_in_thunes(client, port, sim):
    with pytest.raises(ccxt.BadRequest, match="-1013"):
        client.create_order("BTC/USDT", "limit", "buy", 0.0001, 1.0)  # notional 0.0001 USDT
    with pytest.raises(FilterRejected) as info:
        port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, qty=Decimal("0.0001"),
                                      price=Decimal("1.00"), client_order_id="f-1"))
    assert info.value.code == -1013


def test_insufficient_balance(client, port):
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USDT", "market", "buy", None, params={"quoteOrderQty": "100000000"})
    with pytest.raises(InsufficientFunds):
        port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.SELL, type=OrderType.MARKET, qty=Decimal("50"),
                                      client_order_id="i-1"))


def test_duplicate_client_order_id_among_open_orders_is_rejected(client, sim):
    price = float((sim.last_price("BTC/USDT") * Decimal("0.5")).quantize(Decimal("0.01")))
    client.create_order("BTC/USDT", "limit", "buy", 0.001, price, params={"newClientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order"):
        client.create_order("BTC/USDT", "limit", "buy", 0.001, price, params={"newClientOrderId": "dup-1"})


def test_bad_signature_and_unknown_key_are_authentication_errors(sim):
    wrong_secret = make_local_exchange_client(sim.base_url, sim.api_key, "not-the-secret", timeout_s=3)
    with pytest.raises(ccxt.AuthenticationError):
        wrong_secret.fetch_balance()
    unknown_key = make_local_exchange_client(sim.base_url, "nobody", "x", timeout_s=3)
    with pytest.raises(ccxt.AuthenticationError):
        unknown_key.fetch_balance()


def test_clock_skew_outside_recv_window_is_invalid_nonce(client, sim):
    sim.faults.set(clock_skew_ms=60_000)
    with pytest.raises(ccxt.InvalidNonce):
        client.fetch_balance()
    sim.faults.clear()
    assert "USDT" in client.fetch_balance()


def test_used_weight_header_and_429_storm_with_retry_after(client, port, sim):
    client.fetch_ticker("BTC/USDT")
    headers = {k.lower(): v for k, v in client.last_response_headers.items()}
    # A bound: the weight counts per wall-clock minute, so the count depends on when the minute turned.
    assert int(headers["x-mbx-used-weight-1m"]) > 0
    sim.faults.set(storm_status=429, storm_count=1, storm_retry_after=7)
    with pytest.raises(ccxt.DDoSProtection):
        client.fetch_ticker("BTC/USDT")
    sim.faults.set(storm_status=429, storm_count=1, storm_retry_after=7)
    with pytest.raises(RateLimited) as info:
        port.fetch_ticker("BTC/USDT")
    assert isinstance(info.value, RetryableError)
    assert info.value.retry_after == 7


def test_5xx_is_exchange_unavailable_and_retryable(client, port, sim):
    sim.faults.set(http_error=503, http_error_count=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USDT")
    sim.faults.set(http_error=502, http_error_count=1)
    with pytest.raises(ExchangeUnavailable):
        port.fetch_ticker("BTC/USDT")


def test_lost_order_response_is_found_by_client_order_id(port, sim, btc_1h):
    sim.faults.set(lose_order_responses=1)
    req = OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET, quote_qty=Decimal("50"),
                       client_order_id="lost-1")
    with pytest.raises(RetryableError):
        port.place_order(req)
    found = port.fetch_order("BTC/USDT", "lost-1")  # the order was accepted although the answer was lost
    assert found.status is OrderStatus.FILLED
    # Re-sending the same client id for a filled order must not create a second fill.
    trades = [t for t in port.fetch_my_trades("BTC/USDT") if t.order_id == found.exchange_order_id]
    assert len(trades) == 1
    # 50 USDT of BTC at the replayed price, rounded down to the 0.00001 step: golden per data source.
    assert found.filled_qty == (Decimal("0.00069") if btc_1h.real else Decimal("0.00122"))


def test_admin_fault_endpoint_switches_faults_over_http(sim):
    import json
    import urllib.request

    body = json.dumps({"http_error": 500, "http_error_count": 1}).encode()
    req = urllib.request.Request(f"{sim.base_url}/admin/faults", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as resp:
        assert resp.status == 200
    assert sim.faults.state.http_error == 500


def test_errors_are_not_retryable_when_the_order_is_wrong(port):
    with pytest.raises(OrderRejected) as info:
        port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, qty=Decimal("0.0001"),
                                      price=Decimal("1.00"), client_order_id="nr-1"))
    assert not isinstance(info.value, RetryableError)
    assert not isinstance(info.value, AuthenticationError)
