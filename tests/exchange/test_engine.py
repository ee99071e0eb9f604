"""The local exchange's matching model, without HTTP: golden numbers for fills, fees, balances, the price path."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from thunes.core.candles import candles_frame
from thunes.exchange.sim import DEFAULT_API_KEY, EngineOptions, LocalExchange, SimOptions
from thunes.exchange.sim._engine import SimReject

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01


def _flat_market(n: int = 12, price: float = 100.0, volume: float = 10.0, lows: dict[int, float] | None = None):
    o = np.full(n, price)
    h = np.full(n, price)
    low = np.full(n, price)
    for i, v in (lows or {}).items():
        low[i] = v
    return candles_frame(T0 + np.arange(n) * H, o, h, low, o, np.full(n, volume))


def _sim(frame, **engine) -> LocalExchange:
    return LocalExchange(SimOptions(history_bars=1, engine=EngineOptions(**engine)), candles={"BTC/USDT": frame})


def _place(sim: LocalExchange, **params: str):
    return sim.engine.place(DEFAULT_API_KEY, {"symbol": "BTCUSDT", **params})


def _balance(sim: LocalExchange, asset: str) -> tuple[Decimal, Decimal]:
    acct = sim.engine.accounts[DEFAULT_API_KEY]
    return acct.free.get(asset, Decimal(0)), acct.locked.get(asset, Decimal(0))


def test_book_is_a_half_spread_either_side_on_the_tick_grid():
    sim = _sim(_flat_market())
    bids, asks = sim.engine.book("BTCUSDT", 2)
    assert [p for p, _ in bids] == [Decimal("99.99"), Decimal("99.98")]
    assert [p for p, _ in asks] == [Decimal("100.01"), Decimal("100.03")]
    assert asks[0][1] == Decimal("249.97500")  # 25000 quote / 100.01, floored to the 0.00001 step


def test_market_buy_fills_at_the_ask_and_pays_the_fee_in_base():
    sim = _sim(_flat_market())
    order, fills = _place(sim, side="BUY", type="MARKET", quantity="1")
    assert order.status == "FILLED"
    assert fills == [{"price": "100.01000000", "qty": "1.00000000", "commission": "0.00100000",
                      "commissionAsset": "BTC", "tradeId": fills[0]["tradeId"]}]
    assert _balance(sim, "USDT") == (Decimal("9899.99"), 0)
    assert _balance(sim, "BTC")[0] == Decimal("1.499")


def test_large_market_order_walks_the_book():
    sim = _sim(_flat_market(), level_quote=Decimal("10000"))
    sim.set_balance("USDT", "1000000")
    order, fills = _place(sim, side="BUY", type="MARKET", quantity="110")  # MARKET_LOT_SIZE max is 112.2
    assert [(f["price"], f["qty"]) for f in fills] == [("100.01000000", "99.99000000"),
                                                       ("100.03000000", "10.01000000")]
    assert order.cumm_quote == Decimal("99.99") * Decimal("100.01") + Decimal("10.01") * Decimal("100.03")


def test_market_order_that_exhausts_liquidity_expires_partially_filled():
    sim = _sim(_flat_market(), book_levels=2, level_quote=Decimal("1000"))
    order, _ = _place(sim, side="BUY", type="MARKET", quantity="30")
    assert order.status == "EXPIRED"
    assert order.executed == Decimal("9.999") + Decimal("14.99550")


def test_quote_order_qty_buys_whole_steps_without_overspending():
    sim = _sim(_flat_market())
    order, _ = _place(sim, side="BUY", type="MARKET", quoteOrderQty="50")
    assert order.executed == Decimal("0.49995")  # 50 / 100.01 floored to the step
    assert order.cumm_quote == Decimal("0.49995") * Decimal("100.01") <= 50


def test_resting_limit_fills_partially_per_candle_as_maker():
    # Arrange: the price dips to 98 in candles 2, 3 and 4; participation 25% of 10 = 2.5 per candle
    sim = _sim(_flat_market(lows={2: 98.0, 3: 98.0, 4: 98.0}))
    order, fills = _place(sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="6", price="99")
    assert (order.status, fills) == ("NEW", [])
    assert _balance(sim, "USDT") == (Decimal("9406"), Decimal("594"))
    executed = []
    for _ in range(5):
        sim.step()
        executed.append((order.status, order.executed))
    assert executed == [("NEW", 0), ("PARTIALLY_FILLED", Decimal("2.5")), ("PARTIALLY_FILLED", Decimal("5.0")),
                        ("FILLED", Decimal("6")), ("FILLED", Decimal("6"))]
    assert _balance(sim, "USDT") == (Decimal("9406"), 0)
    assert _balance(sim, "BTC")[0] == Decimal("0.5") + Decimal("6") * Decimal("0.999")
    trades = sim.engine.my_trades(DEFAULT_API_KEY, {"symbol": "BTCUSDT"})
    assert [t["isMaker"] for t in trades] == [True, True, True]


def test_a_touch_is_not_a_fill():
    sim = _sim(_flat_market(lows={2: 99.0}))
    order, _ = _place(sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="99")
    sim.step(4)
    assert order.status == "NEW"  # the low equals the limit: price never traded through


def test_ioc_fills_what_it_can_and_fok_all_or_nothing():
    sim = _sim(_flat_market())
    sim.set_balance("USDT", "1000000")
    ioc, _ = _place(sim, side="BUY", type="LIMIT", timeInForce="IOC", quantity="300", price="100.01")
    assert (ioc.status, ioc.executed) == ("EXPIRED", Decimal("249.975"))
    assert _balance(sim, "USDT")[1] == 0  # nothing stays locked
    before = _balance(sim, "USDT")
    fok, fills = _place(sim, side="BUY", type="LIMIT", timeInForce="FOK", quantity="300", price="100.01")
    assert (fok.status, fills, _balance(sim, "USDT")) == ("EXPIRED", [], before)


def test_cancel_releases_the_locked_balance():
    sim = _sim(_flat_market())
    _place(sim, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.2", price="150", newClientOrderId="s1")
    assert _balance(sim, "BTC") == (Decimal("0.3"), Decimal("0.2"))
    sim.engine.cancel(DEFAULT_API_KEY, {"symbol": "BTCUSDT", "origClientOrderId": "s1"})
    assert _balance(sim, "BTC") == (Decimal("0.5"), 0)


def test_a_price_off_the_tick_is_a_filter_failure_not_rounded():
    sim = _sim(_flat_market())
    with pytest.raises(SimReject) as info:
        _place(sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="100.001")
    assert (info.value.rejection.code, info.value.rejection.msg) == (-1013, "Filter failure: PRICE_FILTER")


@pytest.mark.parametrize(("params", "code"), [
    ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100.000000001"}, -1111),
    ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "-1", "price": "100"}, -1100),
    ({"side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}, -1102),
    ({"side": "BUY", "type": "MARKET"}, -1102),
    ({"side": "BUY", "type": "STOP", "quantity": "1"}, -1116),
    ({"side": "BUY", "type": "MARKET", "quantity": "1", "newClientOrderId": "bad id!"}, -1100),
])
def test_malformed_parameters(params, code):
    sim = _sim(_flat_market())
    with pytest.raises(SimReject) as info:
        _place(sim, **params)
    assert info.value.rejection.code == code


def test_price_path_and_forming_kline():
    # A rising candle goes open -> low -> high -> close, time proportional to distance (10 + 20 + 5 = 35)
    frame = candles_frame(T0 + np.arange(3) * H, [100, 100, 105], [100, 110, 105], [100, 90, 105],
                          [100, 105, 105], [1, 35, 1])
    sim = LocalExchange(SimOptions(history_bars=1), candles={"BTC/USDT": frame})
    feed = sim.engine.feeds["BTCUSDT"]
    assert feed.price_at(T0 + H) == 100
    assert feed.price_at(T0 + H + 10 * H // 35) == pytest.approx(90)
    assert feed.price_at(T0 + H + 30 * H // 35) == pytest.approx(110)
    row = feed.klines(H, T0 + H + 20 * H // 35, start=None, end=None, limit=1)[0]
    assert row[:6] == (T0 + H, 100.0, 100.0, 90.0, pytest.approx(100.0), pytest.approx(20.0))
    assert row[9] is False
    lo, hi, volume = feed.range_between(T0 + H, T0 + 2 * H)
    assert (lo, hi, volume) == (90.0, 110.0, 35.0)


def test_synthetic_market_is_reproducible_by_seed():
    a = LocalExchange(SimOptions(synthetic_bars=700, seed=3))
    b = LocalExchange(SimOptions(synthetic_bars=700, seed=3))
    c = LocalExchange(SimOptions(synthetic_bars=700, seed=4))
    now = a.now_ms()
    ka = a.engine.feeds["BTCUSDT"].klines(60_000, now, start=None, end=None, limit=50)
    kb = b.engine.feeds["BTCUSDT"].klines(60_000, now, start=None, end=None, limit=50)
    kc = c.engine.feeds["BTCUSDT"].klines(60_000, now, start=None, end=None, limit=50)
    assert ka == kb
    assert [r[4] for r in ka] != [r[4] for r in kc]


def test_slippage_and_fees_are_configurable():
    # Arrange: 50 bps of slippage on top of the book, 0.2% taker fee
    sim = _sim(_flat_market(), slippage_bps=Decimal("50"), taker_fee=Decimal("0.002"))
    # Act
    _, buy = _place(sim, side="BUY", type="MARKET", quantity="1")
    _, sell = _place(sim, side="SELL", type="MARKET", quantity="1")
    # Assert: ask 100.01 x 1.005 = 100.51005 -> 100.52 (a buy's price rounds up to the tick); bid 99.99 x 0.995 =
    # 99.49005 -> 99.49 (a sell's rounds down); the fee is charged in the asset received
    assert (buy[0]["price"], buy[0]["commission"], buy[0]["commissionAsset"]) == ("100.52000000", "0.00200000", "BTC")
    assert (sell[0]["price"], sell[0]["commission"], sell[0]["commissionAsset"]) == ("99.49000000", "0.19898000",
                                                                                       "USDT")
    assert _balance(sim, "USDT")[0] == Decimal("10000") - Decimal("100.52") + Decimal("99.49") - Decimal("0.19898")
    assert _balance(sim, "BTC")[0] == Decimal("0.5") + Decimal("1") - Decimal("0.002") - Decimal("1")
