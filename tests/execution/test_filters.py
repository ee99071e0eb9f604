"""Exchange filters: ccxt's own rounding vectors, golden cases, and hypothesis over the real filter sets.

The independent re-check below restates the Binance rules (docs/binance-spot-api.md §4.1) with exact
fractions instead of reusing the module's code, so a bug in one is not hidden by the same bug in the other.
"""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import ccxt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from thunes.core.clock import SimulatedClock
from thunes.core.enums import OrderType, Side
from thunes.core.errors import FilterRejected
from thunes.core.markets import Market, parse_exchange_info, round_down_to_step, round_to_tick
from thunes.execution.filters import (
    MarketBook,
    market_step,
    prepare_limit_order,
    prepare_market_order,
    validate_order,
)

D = Decimal
EMBEDDED = Path(__file__).resolve().parents[2] / "thunes" / "exchange" / "sim" / "exchange_info.json"


# -- ccxt's decimal_to_precision vectors ------------------------------------------------------------------
def _ccxt_vectors() -> list[tuple[str, str, object, str, str]]:
    """(value, rounding, precision, counting, expected) from the test file shipped in the ccxt wheel."""
    path = Path(ccxt.__file__).parent / "test" / "base" / "test_decimal_to_precision.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Assert) or not isinstance(node.test, ast.Compare):
            continue
        call = node.test.left
        if not (isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "decimal_to_precision"):
            continue
        args = call.args
        if len(args) < 4:
            continue
        value = ast.literal_eval(args[0])
        rounding = args[1].id
        precision = ast.literal_eval(args[2])
        counting = args[3].id
        expected = ast.literal_eval(node.test.comparators[0])
        out.append((value, rounding, precision, counting, expected))
    return out


VECTORS = _ccxt_vectors()


def _step_of(precision: object, counting: str) -> Decimal | None:
    if counting == "TICK_SIZE":
        return D(repr(precision)) if isinstance(precision, float) else D(str(precision))
    if counting == "DECIMAL_PLACES" and isinstance(precision, int) and precision >= 0:
        return D(1).scaleb(-precision)
    return None  # significant digits / negative places: no counterpart in our rounding


def test_ccxt_vectors_were_found():
    # Bounds, not counts: the vectors are read from the installed ccxt's own test file, which grows with
    # ccxt releases.
    assert len(VECTORS) > 150
    assert sum(1 for v in VECTORS if v[3] == "TICK_SIZE") >= 60


def test_truncation_matches_ccxt_vectors():
    """ccxt TRUNCATE (toward zero) == our round-down to the step, applied to |x| (quantities are >= 0)."""
    checked = 0
    for value, rounding, precision, counting, expected in VECTORS:
        step = _step_of(precision, counting)
        if rounding != "TRUNCATE" or step is None:
            continue
        x = D(value)
        ours = round_down_to_step(abs(x), step)
        ours = -ours if x < 0 else ours
        assert ours == D(expected), (value, precision, counting, expected, ours)
        checked += 1
    assert checked >= 50  # a bound: the vectors come from the installed ccxt's test file (see above)


def test_half_up_rounding_of_ccxt_is_one_of_our_two_safe_roundings():
    """ccxt ROUND picks the nearer tick; our price rounding picks a side: ccxt's answer is one of ours."""
    checked = 0
    for value, rounding, precision, counting, expected in VECTORS:
        step = _step_of(precision, counting)
        if rounding != "ROUND" or step is None or D(value) < 0:
            continue
        x = D(value)
        down, up = round_to_tick(x, step, up=False), round_to_tick(x, step, up=True)
        assert D(expected) in (down, up), (value, precision, expected, down, up)
        checked += 1
    assert checked >= 40  # a bound: the vectors come from the installed ccxt's test file (see above)


# -- golden cases -----------------------------------------------------------------------------------------
def _btc() -> Market:
    info = json.loads(EMBEDDED.read_text())
    return parse_exchange_info(info)["BTC/USDT"]


def test_market_buy_spends_at_most_the_quote_and_sits_on_the_step():
    m = _btc()
    order = prepare_market_order(m, Side.BUY, quote_qty=D("100"), ref_price=D("16843.21"))
    step = market_step(m)
    assert order.qty % step == 0
    assert order.qty * D("16843.21") <= D("100")
    assert (order.qty + step) * D("16843.21") > D("100")  # the largest such quantity


def test_limit_prices_round_in_the_safe_direction():
    m = _btc()
    buy = prepare_limit_order(m, Side.BUY, qty=D("0.01"), price=D("20000.019"), ref_price=D("20000"))
    sell = prepare_limit_order(m, Side.SELL, qty=D("0.01"), price=D("20000.011"), ref_price=D("20000"))
    assert buy.price == D("20000.01") and sell.price == D("20000.02")


def test_too_small_an_order_is_refused_with_the_filter_name_not_rounded_up():
    m = _btc()
    with pytest.raises(FilterRejected) as info:
        prepare_market_order(m, Side.BUY, quote_qty=D("4"), ref_price=D("20000"))
    assert info.value.filter_name in ("NOTIONAL", "MIN_NOTIONAL")
    assert "below minNotional" in str(info.value)


def test_validate_names_each_failing_filter():
    m = _btc()
    cases = [
        (dict(qty=D("0.001"), price=D("20000.001")), "PRICE_FILTER"),
        (dict(qty=D("0.0000101"), price=D("20000")), "LOT_SIZE"),
        (dict(qty=D("0.0001"), price=D("20000")), "NOTIONAL"),
    ]
    for kwargs, name in cases:
        with pytest.raises(FilterRejected) as info:
            validate_order(m, Side.BUY, OrderType.LIMIT, ref_price=D("20000"), **kwargs)
        assert info.value.filter_name in (name, "MIN_NOTIONAL"), (kwargs, info.value)
    if m.filters.bid_multiplier_up > 0:
        with pytest.raises(FilterRejected) as info:
            validate_order(m, Side.BUY, OrderType.LIMIT, D("0.001"), m.filters.bid_multiplier_up * D("20000") + 1,
                           ref_price=D("20000"))
        assert info.value.filter_name.startswith("PERCENT_PRICE")
    if m.filters.max_num_orders > 0:
        with pytest.raises(FilterRejected) as info:
            validate_order(m, Side.BUY, OrderType.LIMIT, D("0.01"), D("20000"), open_orders=m.filters.max_num_orders)
        assert info.value.filter_name == "MAX_NUM_ORDERS"


def test_market_book_reloads_on_schedule_and_after_a_filter_rejection():
    clock = SimulatedClock(0)
    calls = []

    def loader() -> dict[str, Market]:
        calls.append(clock.now_ms())
        return {"BTC/USDT": _btc()}

    book = MarketBook(loader, clock=clock, refresh_s=60)
    assert book["BTC/USDT"].symbol == "BTC/USDT"
    book.get("BTC/USDT")
    assert len(calls) == 1
    clock.advance(60)
    book.get("BTC/USDT")
    assert len(calls) == 2
    assert book.on_filter_rejection(FilterRejected("Filter failure: LOT_SIZE", filter_name="LOT_SIZE"))
    assert len(calls) == 3
    assert not book.on_filter_rejection(ValueError("unrelated"))
    assert len(calls) == 3


# -- hypothesis over the real filter sets -------------------------------------------------------------------
def _all_markets() -> list[Market]:
    from thunes.data.samples import find_sample_dir

    folder = find_sample_dir()
    payloads = []
    if folder is not None:
        payloads = [json.loads(p.read_text()) for p in sorted(folder.glob("binance_exchange_info*.json"))]
    if not payloads:  # fresh clone without ../shared/data: the embedded copy of the real filter sets
        payloads = [json.loads(EMBEDDED.read_text())]
    markets = []
    for payload in payloads:
        markets += [m for m in parse_exchange_info(payload).values()
                    if m.status == "TRADING" and m.filters.step_size > 0 and m.filters.tick_size > 0]
    return markets


MARKETS = _all_markets()
MODERN = [m for m in MARKETS if m.filters.bid_multiplier_up > 0]


def _fr(d: Decimal) -> Fraction:
    return Fraction(d)


def _binance_accepts(m: Market, side: Side, otype: OrderType, qty: Decimal, price: Decimal | None,
                     avg: Decimal) -> list[str]:
    """Independent statement of the Binance rules; returns the failing filters (empty: accepted)."""
    f = m.filters
    q = _fr(qty)
    bad = []

    def on_grid(x: Fraction, step: Decimal) -> bool:
        return step == 0 or (x / _fr(step)).denominator == 1

    if not (q > 0 and q >= _fr(f.min_qty) and (f.max_qty == 0 or q <= _fr(f.max_qty)) and on_grid(q, f.step_size)):
        bad.append("LOT_SIZE")
    if otype is OrderType.MARKET:
        if not ((f.market_min_qty == 0 or q >= _fr(f.market_min_qty))
                and (f.market_max_qty == 0 or q <= _fr(f.market_max_qty)) and on_grid(q, f.market_step_size)):
            bad.append("MARKET_LOT_SIZE")
        notional = q * _fr(avg)
        if f.apply_min_to_market and notional < _fr(f.min_notional):
            bad.append("NOTIONAL")
        if f.apply_max_to_market and f.max_notional > 0 and notional > _fr(f.max_notional):
            bad.append("NOTIONAL")
    else:
        p = _fr(price)  # type: ignore[arg-type]
        if not (p > 0 and (f.min_price == 0 or p >= _fr(f.min_price)) and (f.max_price == 0 or p <= _fr(f.max_price))
                and on_grid(p, f.tick_size)):
            bad.append("PRICE_FILTER")
        notional = q * p
        if notional < _fr(f.min_notional) or (f.max_notional > 0 and notional > _fr(f.max_notional)):
            bad.append("NOTIONAL")
        up, down = (f.bid_multiplier_up, f.bid_multiplier_down) if side is Side.BUY else (
            f.ask_multiplier_up, f.ask_multiplier_down)
        if (up > 0 and p > _fr(avg) * _fr(up)) or (down > 0 and p < _fr(avg) * _fr(down)):
            bad.append("PERCENT_PRICE")
    return bad


@st.composite
def order_inputs(draw):
    # every recorded symbol, and half the time one of the recent filter sets (percent band, market lot size)
    m = draw(st.sampled_from(MODERN) if MODERN and draw(st.booleans()) else st.sampled_from(MARKETS))
    f = m.filters
    lo = max(f.min_price, f.tick_size)
    hi = f.max_price if f.max_price > 0 else lo * 10**6
    # a log-uniform reference price on the tick grid inside the allowed price range
    exp = draw(st.floats(min_value=0, max_value=float(min(12, (hi / lo).ln() / D(10).ln()))))
    ref = round_to_tick(lo * D(repr(10 ** exp)), f.tick_size, up=False)
    ref = min(max(ref, lo), hi)
    quote = D(repr(draw(st.floats(min_value=1e-4, max_value=1e5)))) * max(f.min_notional, D("0.0001")) * 10
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    # near the market, or (one time in five) outside the usual percent-price band of x0.2 .. x5
    far = draw(st.integers(min_value=0, max_value=4)) == 0
    offset = D(repr(draw(st.sampled_from([-0.9, 5.0]) if far else st.floats(min_value=-0.5, max_value=0.5))))
    return m, side, ref, quote, offset


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order_inputs())
def test_every_prepared_market_order_passes_the_independent_recheck(inp):
    m, side, ref, quote, _ = inp
    try:
        order = prepare_market_order(m, side, quote_qty=quote, ref_price=ref)
    except FilterRejected as exc:
        # Refusal must be justified: the largest affordable quantity on the grid fails a rule.
        best = round_down_to_step(quote / ref, market_step(m))
        assume(best > 0)
        assert _binance_accepts(m, side, OrderType.MARKET, best, None, ref), (m.symbol, exc)
        return
    assert _binance_accepts(m, side, OrderType.MARKET, order.qty, None, ref) == []
    assert order.qty * ref <= quote  # never spends more than asked


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order_inputs())
def test_every_prepared_limit_order_passes_the_independent_recheck(inp):
    m, side, ref, quote, offset = inp
    price = ref * (1 + offset)
    assume(price > 0)
    try:
        order = prepare_limit_order(m, side, quote_qty=quote, price=price, ref_price=ref)
    except FilterRejected as exc:
        # Refusal must be justified: at the safely rounded price, the largest affordable quantity on the step
        # grid fails a rule (or rounds to nothing).
        p = round_to_tick(price, m.filters.tick_size, up=side is Side.SELL)
        best = round_down_to_step(quote / p, m.filters.step_size) if p > 0 else D(0)
        assume(best > 0)
        assert _binance_accepts(m, side, OrderType.LIMIT, best, p, ref), (m.symbol, exc)
        return
    assert _binance_accepts(m, side, OrderType.LIMIT, order.qty, order.price, ref) == []
    assert order.qty * order.price <= quote
    assert (order.price <= price) if side is Side.BUY else (order.price >= price)
