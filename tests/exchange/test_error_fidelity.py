"""Error fidelity: each Binance rejection, through the real ccxt client, raises the class it raises live.

Mapping from ../shared/docs/binance-spot-api.md §4.3 (ccxt 4.5.90). Raw HTTP is used where ccxt would round or
refuse before sending, so the server's own answer is what is checked.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

import ccxt
import pytest

from thunes.core.enums import OrderType, Side
from thunes.core.errors import DuplicateOrder, FilterRejected, RateLimited
from thunes.exchange.ccxt_adapter import make_local_exchange_client
from thunes.exchange.sim import LocalExchange, SimOptions
from thunes.exchange.sim._server import sign
from thunes.exchange.types import OrderRequest


def _signed(sim, method: str, path: str, params: dict[str, str], *, key: str | None = None,
            secret: str | None = None) -> tuple[int, dict, dict]:
    """A hand-signed request, the way Binance documents it, returning (status, json body, headers)."""
    query = urllib.parse.urlencode({**params, "timestamp": str(int(time.time() * 1000))})
    query += "&signature=" + sign(secret or sim.secret, query)
    req = urllib.request.Request(f"{sim.base_url}{path}?{query}", method=method,
                                 headers={"X-MBX-APIKEY": key or sim.api_key})
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def test_binance_documented_signature_known_answer():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
               "&timestamp=1499827319559")
    assert sign(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


@pytest.mark.parametrize(("params", "message", "ccxt_class"), [
    ({"quantity": "0.001", "price": "50000.005"}, "Filter failure: PRICE_FILTER", ccxt.InvalidOrder),
    ({"quantity": "0.0010001", "price": "50000"}, "Filter failure: LOT_SIZE", ccxt.InvalidOrder),
    ({"quantity": "0.0001", "price": "50000"}, "Filter failure: MIN_NOTIONAL", ccxt.BadRequest),
])
def test_static_filter_failures_are_1013_with_binance_wording(sim, client, params, message, ccxt_class):
    # Arrange: a price near the market so PERCENT_PRICE does not fire first
    params = dict(params)
    if params["price"] == "50000":
        params["price"] = str(sim.last_price("BTC/USDT"))
    elif params["price"] == "50000.005":
        params["price"] = str(sim.last_price("BTC/USDT").normalize() + Decimal("0.005"))
    # Act
    status, body, _ = _signed(sim, "POST", "/api/v3/order",
                              {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", **params})
    # Assert: the answer, then how ccxt classifies that same answer
    assert (status, body) == (400, {"code": -1013, "msg": message})
    with pytest.raises(ccxt_class):
        client.handle_errors(status, "", f"{sim.base_url}/api/v3/order", "POST", {}, json.dumps(body), body, {}, {})


def test_percent_price_filter_rejects_prices_far_from_the_average(client, port, sim):
    far = (sim.last_price("BTC/USDT") * 6).quantize(Decimal("0.01"))
    # The recorded 2021 BTCUSDT rules carry PERCENT_PRICE (x0.2 .. x5 of the average price)
    with pytest.raises(ccxt.BadRequest, match="Filter failure: PERCENT_PRICE"):
        client.create_order("BTC/USDT", "limit", "sell", 0.001, float(far))
    with pytest.raises(FilterRejected) as info:
        port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.SELL, type=OrderType.LIMIT, qty=Decimal("0.001"),
                                      price=far, client_order_id="pp-1"))
    assert info.value.filter_name in ("PERCENT_PRICE", "PERCENT_PRICE_BY_SIDE")


def test_max_num_orders_is_2010_and_invalid_order():
    frame_sim = LocalExchange(SimOptions(synthetic_bars=800, history_bars=100))
    spec = frame_sim.engine.specs["BTCUSDT"]
    spec.filters["MAX_NUM_ORDERS"] = {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 2}
    with frame_sim as sim:
        client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
        price = float((sim.last_price("BTC/USDT") * Decimal("0.9")).quantize(Decimal("0.01")))
        client.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        client.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        with pytest.raises(ccxt.InvalidOrder, match='-2010.*MAX_NUM_ORDERS'):
            client.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        with pytest.raises(ccxt.InvalidOrder, match='-2010.*MAX_NUM_ORDERS'):  # every new order counts
            client.create_order("BTC/USDT", "market", "buy", 0.001)
        client.cancel_all_orders("BTC/USDT")
        assert client.create_order("BTC/USDT", "market", "buy", 0.001)["status"] == "closed"


def test_limit_maker_that_would_take_is_order_immediately_fillable(client, sim):
    above = float((sim.last_price("BTC/USDT") * Decimal("1.01")).quantize(Decimal("0.01")))
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        client.create_order("BTC/USDT", "limit", "buy", 0.001, above, params={"postOnly": True})


def test_duplicate_open_client_id_becomes_duplicate_order_in_thunes(port, sim):
    price = (sim.last_price("BTC/USDT") * Decimal("0.9")).quantize(Decimal("0.01"))
    req = OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, qty=Decimal("0.001"), price=price,
                       client_order_id="same-id")
    port.place_order(req)
    with pytest.raises(DuplicateOrder):
        port.place_order(req)
    port.cancel_order("BTC/USDT", "same-id")
    assert port.place_order(req).client_order_id == "same-id"  # reuse is allowed once the first is closed


def test_unknown_order_codes(sim):
    status, body, _ = _signed(sim, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
    assert (status, body) == (400, {"code": -2013, "msg": "Order does not exist."})
    status, body, _ = _signed(sim, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
    assert (status, body) == (400, {"code": -2011, "msg": "Unknown order sent."})


def test_cancel_answer_carries_the_original_and_the_cancel_client_ids(sim):
    price = str((sim.last_price("BTC/USDT") * Decimal("0.9")).quantize(Decimal("0.01")))
    _signed(sim, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                           "timeInForce": "GTC", "quantity": "0.001", "price": price,
                                           "newClientOrderId": "orig-1"})
    status, body, _ = _signed(sim, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "orig-1",
                                                               "newClientOrderId": "cxl-1"})
    assert status == 200
    assert (body["origClientOrderId"], body["clientOrderId"], body["status"]) == ("orig-1", "cxl-1", "CANCELED")


def test_auth_error_codes(sim):
    assert _signed(sim, "GET", "/api/v3/account", {}, key="bad key!")[:2] == (
        401, {"code": -2014, "msg": "API-key format invalid."})
    assert _signed(sim, "GET", "/api/v3/account", {}, key="unknownkey")[:2] == (
        401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    assert _signed(sim, "GET", "/api/v3/account", {}, secret="wrong")[:2] == (
        400, {"code": -1022, "msg": "Signature for this request is not valid."})


def test_timestamp_ahead_of_server_is_1021(client, sim):
    sim.faults.set(clock_skew_ms=-5_000)  # the server is 5 s behind the client
    status, body, _ = _signed(sim, "GET", "/api/v3/account", {})
    assert (status, body["code"]) == (400, -1021)
    assert body["msg"] == "Timestamp for this request was 1000ms ahead of the server's time."
    with pytest.raises(ccxt.InvalidNonce):
        client.fetch_balance()


def test_adapter_resyncs_its_clock_after_1021(port, sim):
    sim.faults.set(clock_skew_ms=30_000)  # the server runs 30 s ahead, beyond ccxt's 10 s recvWindow
    balances = port.fetch_balance()  # -1021, load_time_difference, retry
    assert balances["USDT"].free == Decimal("10000")  # the account's untouched balance: the call succeeded


def test_bad_symbol_is_bad_symbol(sim):
    status, body, _ = _signed(sim, "GET", "/api/v3/openOrders", {"symbol": "NOPEUSDT"})
    assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})


def test_order_count_headers_on_accepted_orders(client):
    client.create_order("BTC/USDT", "market", "buy", None, params={"quoteOrderQty": "20"})
    headers = {k.lower(): v for k, v in client.last_response_headers.items()}
    assert headers["x-mbx-order-count-10s"] == "1"
    assert headers["x-mbx-order-count-1d"] == "1"


def test_weight_limit_gives_429_then_418_ban():
    with LocalExchange(SimOptions(synthetic_bars=800, history_bars=100, weight_limit=30, ban_after_429s=2,
                                  ban_seconds=300)) as sim:
        client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
        if time.time() % 60 > 57:  # weights are counted per wall-clock minute: do not straddle one
            time.sleep(60 - time.time() % 60)
        client.load_markets()  # weight 20
        client.fetch_time()  # weight 1
        seen = []
        for _ in range(8):  # ticker: weight 2 each -> 4 fit under 30
            try:
                client.fetch_ticker("BTC/USDT")
                seen.append(200)
            except ccxt.DDoSProtection:
                seen.append(418 if "banned" in (client.last_http_response or "") else 429)
        assert seen == [200, 200, 200, 200, 429, 429, 418, 418]
        headers = {k.lower(): v for k, v in client.last_response_headers.items()}
        assert 290 <= int(headers["retry-after"]) <= 301


def test_rate_limited_from_a_ban_is_marked_banned(port, sim):
    sim.faults.set(storm_status=418, storm_count=1, storm_retry_after=120)
    with pytest.raises(RateLimited) as info:
        port.fetch_ticker("BTC/USDT")
    assert info.value.banned and info.value.retry_after == 120


def test_adapter_refuses_values_ccxt_would_round(port, sim):
    with pytest.raises(FilterRejected) as info:
        port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET,
                                      qty=Decimal("0.000015"), client_order_id="round-1"))
    assert info.value.filter_name == "LOT_SIZE"
    assert port.fetch_open_orders("BTC/USDT") == []


def test_recv_window_above_60000_is_refused(sim):
    status, body, _ = _signed(sim, "GET", "/api/v3/account", {"recvWindow": "60001"})
    assert (status, body) == (400, {"code": -1131, "msg": "recvWindow must be less than 60000"})
    assert _signed(sim, "GET", "/api/v3/account", {"recvWindow": "60000"})[0] == 200
