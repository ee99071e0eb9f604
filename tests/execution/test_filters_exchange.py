"""Property: every order the filter module prepares is accepted by the local exchange (its own, independent
implementation of the Binance rules), sent through the real ccxt adapter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import FilterRejected
from thunes.exchange.types import OrderRequest
from thunes.execution.filters import prepare_limit_order, prepare_market_order

D = Decimal


def _accepts_every_prepared_order(sim, symbols: tuple[str, ...], examples: int) -> list[str]:
    """Hypothesis: prepare market/limit orders over ``symbols`` and send each through ccxt; every one must be
    accepted. Returns the outcomes ("accepted" / "refused" by our module before sending)."""
    from thunes.exchange.ccxt_adapter import CcxtExchange

    sim.set_balance("USDT", D("100000000"))
    for symbol in symbols:
        sim.set_balance(symbol.split("/")[0], D("100000"))
    ex = CcxtExchange.for_local(sim)
    markets = ex.load_markets()
    counter = iter(range(10**9))
    outcomes: list[str] = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(symbol=st.sampled_from(sorted(symbols)), side=st.sampled_from([Side.BUY, Side.SELL]),
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
    return outcomes


def test_prepared_orders_are_accepted_by_the_local_exchange(sim):
    outcomes = _accepts_every_prepared_order(sim, ("BTC/USDT", "ETH/USDT", "SOL/USDT"), 40)
    # A bound: the rule is that no prepared order is refused; which orders hypothesis draws (and so how
    # many a filter turns away before sending) changes with its version.
    assert outcomes.count("accepted") >= 10


def test_prepared_orders_are_accepted_under_the_2022_filter_set(sample_dir):
    """The recorded December 2022 BTCUSDT rules (PERCENT_PRICE_BY_SIDE, MARKET_LOT_SIZE maxQty 328.38), served
    by the local exchange in place of its default BTCUSDT rules."""
    import json

    from thunes.exchange.sim import LocalExchange
    from thunes.exchange.sim._rules import SymbolSpec

    path = None if sample_dir is None else sample_dir / "binance_exchange_info_BTCUSDT_2022-12.json"
    if path is None or not path.exists():
        pytest.skip("needs ../shared/data/binance_exchange_info_BTCUSDT_2022-12.json (the recorded 2022 rules)")
    info = json.loads(path.read_text())["symbols"][0]
    sim = LocalExchange(symbols=("BTC/USDT",), synthetic_bars=2000)
    sim.engine.specs["BTCUSDT"] = SymbolSpec.from_info(info)
    with sim:
        outcomes = _accepts_every_prepared_order(sim, ("BTC/USDT",), 30)
        served = {f["filterType"] for f in sim.engine.spec("BTCUSDT").info["filters"]}
    assert "PERCENT_PRICE_BY_SIDE" in served
    assert outcomes.count("accepted") >= 10
