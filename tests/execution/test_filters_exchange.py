"""Property: every order the filter module prepares is accepted by the local exchange (its own, independent
implementation of the Binance rules), sent through the real ccxt adapter."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import FilterRejected
from thunes.exchange.types import OrderRequest
from thunes.execution.filters import prepare_limit_order, prepare_market_order

D = Decimal


def test_prepared_orders_are_accepted_by_the_local_exchange(sim):
    from thunes.exchange.ccxt_adapter import CcxtExchange

    sim.set_balance("USDT", D("100000000"))
    for base in ("BTC", "ETH", "SOL"):
        sim.set_balance(base, D("100000"))
    ex = CcxtExchange.for_local(sim)
    markets = ex.load_markets()
    symbols = sorted(s for s in markets if s in ("BTC/USDT", "ETH/USDT", "SOL/USDT"))
    counter = iter(range(10**9))
    outcomes: list[str] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(symbol=st.sampled_from(symbols), side=st.sampled_from([Side.BUY, Side.SELL]),
           quote=st.decimals(min_value=D("0.5"), max_value=D("5000"), places=3),
           market=st.booleans(), offset=st.decimals(min_value=D("-0.03"), max_value=D("0.03"), places=4))
    def check(symbol, side, quote, market, offset):
        m = markets[symbol]
        ref = sim.last_price(symbol)
        try:
            if market:
                order = prepare_market_order(m, side, quote_qty=quote, ref_price=ref)
            else:
                order = prepare_limit_order(m, side, quote_qty=quote, price=ref * (1 + offset), ref_price=ref)
        except FilterRejected:
            outcomes.append("refused")
            return
        cid = f"prop-{next(counter)}"
        result = ex.place_order(OrderRequest(symbol=symbol, side=side, type=order.order_type, client_order_id=cid,
                                             qty=order.qty, price=order.price))
        assert result.status in (OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)
        if result.status is not OrderStatus.FILLED and order.order_type is OrderType.LIMIT:
            ex.cancel_order(symbol, cid)  # keep MAX_NUM_ORDERS out of the way
        outcomes.append("accepted")

    try:
        check()
    finally:
        ex.close()
    assert outcomes.count("accepted") >= 10
