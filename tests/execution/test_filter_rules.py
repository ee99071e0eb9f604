"""One golden test per exchange filter rule, each at its boundary: exactly at the limit passes, one step beyond is
refused with the filter's name and the numbers. The symbol below uses today's filter kinds (NOTIONAL with a
maximum, PERCENT_PRICE_BY_SIDE with different bid and ask bands, MARKET_LOT_SIZE with its own step,
MAX_NUM_ORDERS) so that every rule is exercised whatever the recorded exchangeInfo files contain."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from thunes.core.enums import OrderType, Side
from thunes.core.errors import ConfigError, FilterRejected
from thunes.core.markets import Market
from thunes.execution.filters import prepare_limit_order, prepare_market_order, validate_order

D = Decimal

SYMBOL = {
    "symbol": "ETHUSDT", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "100000.00", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.0001", "maxQty": "9000", "stepSize": "0.0001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "50", "stepSize": "0.001"},
        {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True, "maxNotional": "9000",
         "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "1.2", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.8", "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 3},
    ],
}
AVG = D("2000")  # the exchange's average price


@pytest.fixture()
def eth() -> Market:
    return Market.from_binance(json.loads(json.dumps(SYMBOL)))


def _refused(fn, *args, **kwargs) -> FilterRejected:
    with pytest.raises(FilterRejected) as info:
        fn(*args, **kwargs)
    return info.value


def test_percent_price_by_side_uses_the_bid_band_for_buys_and_the_ask_band_for_sells(eth):
    # bids: 0.2 .. 1.2 x average; asks: 0.8 .. 5 x average
    validate_order(eth, Side.BUY, OrderType.LIMIT, D("0.01"), D("2400.00"), ref_price=AVG)  # 1.2 x: at the edge
    err = _refused(validate_order, eth, Side.BUY, OrderType.LIMIT, D("0.01"), D("2400.01"), ref_price=AVG)
    assert err.filter_name == "PERCENT_PRICE_BY_SIDE"
    assert "BUY price 2400.01 is above 2400" in str(err)
    validate_order(eth, Side.SELL, OrderType.LIMIT, D("0.01"), D("2400.01"), ref_price=AVG)  # fine for a sell
    validate_order(eth, Side.BUY, OrderType.LIMIT, D("0.01"), D("1599.99"), ref_price=AVG)  # fine for a buy
    err = _refused(validate_order, eth, Side.SELL, OrderType.LIMIT, D("0.01"), D("1599.99"), ref_price=AVG)
    assert err.filter_name == "PERCENT_PRICE_BY_SIDE" and "below 1600" in str(err)


def test_max_num_orders_counts_the_orders_already_open(eth):
    validate_order(eth, Side.BUY, OrderType.LIMIT, D("0.01"), D("2000"), ref_price=AVG, open_orders=2)
    err = _refused(validate_order, eth, Side.BUY, OrderType.LIMIT, D("0.01"), D("2000"), ref_price=AVG, open_orders=3)
    assert err.filter_name == "MAX_NUM_ORDERS" and "3 orders already open, maxNumOrders 3" in str(err)
    err = _refused(prepare_limit_order, eth, Side.BUY, qty=D("0.01"), price=D("2000"), open_orders=3)
    assert err.filter_name == "MAX_NUM_ORDERS"


def test_market_lot_size_has_its_own_minimum_step_and_maximum(eth):
    validate_order(eth, Side.SELL, OrderType.MARKET, D("0.001"), ref_price=D("10000"))
    assert _refused(validate_order, eth, Side.SELL, OrderType.MARKET, D("0.0009"),
                    ref_price=D("10000")).filter_name == "MARKET_LOT_SIZE"  # a valid LIMIT quantity
    assert _refused(validate_order, eth, Side.SELL, OrderType.MARKET, D("0.0015"),
                    ref_price=D("10000")).filter_name == "MARKET_LOT_SIZE"
    validate_order(eth, Side.SELL, OrderType.MARKET, D("50"), ref_price=D("100"))
    err = _refused(validate_order, eth, Side.SELL, OrderType.MARKET, D("50.001"), ref_price=D("100"))
    assert err.filter_name == "MARKET_LOT_SIZE" and "above maxQty 50" in str(err)


def test_prepared_market_quantity_sits_on_both_steps_and_under_the_market_maximum(eth):
    order = prepare_market_order(eth, Side.BUY, quote_qty=D("123.45"), ref_price=D("1999.99"))
    assert order.qty == D("0.061")  # 0.06172... floored to the 0.001 MARKET_LOT_SIZE step
    big = prepare_market_order(eth, Side.SELL, qty=D("75.12345"), ref_price=D("100"))
    assert big.qty == D("50")  # clamped to MARKET_LOT_SIZE.maxQty: never more than asked, never over a limit


def test_notional_minimum_applies_to_market_orders_and_the_maximum_does_not(eth):
    validate_order(eth, Side.BUY, OrderType.MARKET, D("0.002"), ref_price=D("2500"))  # exactly 5
    err = _refused(validate_order, eth, Side.BUY, OrderType.MARKET, D("0.001"), ref_price=D("2500"))
    assert err.filter_name == "NOTIONAL" and "notional 2.5 is below minNotional 5" in str(err)
    validate_order(eth, Side.BUY, OrderType.MARKET, D("5"), ref_price=AVG)  # 10,000 > maxNotional, but market
    err = _refused(validate_order, eth, Side.BUY, OrderType.LIMIT, D("5"), D("2000"), ref_price=AVG)
    assert err.filter_name == "NOTIONAL" and "above maxNotional 9000" in str(err)


def test_a_quote_below_the_minimum_is_refused_not_rounded_up(eth):
    # 5.999 / 2000 = 0.0029995 -> 0.002 on the 0.001 market step: notional 4 < 5. The next step, 0.003, would
    # spend 6 > 5.999: there is no valid order, and the module must say so instead of spending more.
    err = _refused(prepare_market_order, eth, Side.BUY, quote_qty=D("5.999"), ref_price=AVG)
    assert err.filter_name == "NOTIONAL" and "notional 4 is below minNotional 5" in str(err)
    order = prepare_market_order(eth, Side.BUY, quote_qty=D("6.000"), ref_price=AVG)
    assert (order.qty, order.notional) == (D("0.003"), D("6.000"))


def test_limit_quantity_from_a_quote_is_clamped_by_max_notional_at_the_rounded_price(eth):
    order = prepare_limit_order(eth, Side.BUY, quote_qty=D("20000"), price=D("2000.009"), ref_price=AVG)
    assert order.price == D("2000.00")  # a buy rounds down
    assert order.qty == D("4.5") and order.notional == D("9000.000")  # maxNotional 9000, not the 20,000 asked


def test_status_and_allowed_order_types_are_checked(eth):
    halted = Market.from_binance({**SYMBOL, "status": "HALT"})
    assert _refused(validate_order, halted, Side.BUY, OrderType.LIMIT, D("0.01"), D("2000")).filter_name == "STATUS"
    limit_only = Market.from_binance({**SYMBOL, "orderTypes": ["LIMIT"]})
    err = _refused(validate_order, limit_only, Side.BUY, OrderType.MARKET, D("0.01"), ref_price=AVG)
    assert err.filter_name == "ORDER_TYPE"


def test_symbols_are_looked_up_in_the_markets_given(eth):
    markets = {"ETH/USDT": eth}
    validate_order("ETH/USDT", Side.BUY, OrderType.LIMIT, D("0.01"), D("2000"), ref_price=AVG, markets=markets)
    order = prepare_market_order("ETH/USDT", Side.BUY, quote_qty=D("100"), ref_price=AVG, markets=markets)
    assert order.qty == D("0.05") and order.symbol == "ETH/USDT"
    assert prepare_limit_order("ETH/USDT", Side.SELL, qty=D("0.05"), price=D("2000.001"),
                               markets=markets).price == D("2000.01")  # a sell rounds up
    assert _refused(validate_order, "DOGE/USDT", Side.BUY, OrderType.LIMIT, D("1"), D("1"),
                    markets=markets).code == -1121
    with pytest.raises(ConfigError, match="markets="):
        prepare_market_order("ETH/USDT", Side.BUY, quote_qty=D("100"), ref_price=AVG)
