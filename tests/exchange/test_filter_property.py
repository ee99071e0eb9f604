"""Property: an order our filter module accepts is never rejected by the local exchange, and an order it
refuses is rejected by the exchange with -1013 naming the same filter (the exchange's own, independent
implementation of the rules)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thunes.core.enums import OrderType, Side
from thunes.core.errors import FilterRejected
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange, SimOptions
from thunes.exchange.sim._rules import SymbolSpec
from thunes.execution.filters import validate_order


def signed(sim: LocalExchange, method: str, path: str, params: dict[str, str]) -> tuple[int, dict]:
    """A raw signed request, so that off-grid numbers reach the exchange unrounded (ccxt would round them)."""
    query = urllib.parse.urlencode({**params, "timestamp": str(int(time.time() * 1000))})
    sig = hmac.new(sim.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{sim.base_url}{path}?{query}&signature={sig}", method=method,
                                 headers={"X-MBX-APIKEY": sim.api_key})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


RICH = AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, balances={"USDT": "1000000000", "BTC": "100000"})


@pytest.mark.parametrize("rules", ["default", "2022-12"])
def test_our_filters_and_the_exchange_agree_on_every_order(rules, sample_dir):
    opts = SimOptions(symbols=("BTC/USDT",), accounts=(RICH,), orders_per_10s=10**9, orders_per_day=10**9,
                      weight_limit=10**9)
    sim = LocalExchange(opts)
    if rules == "2022-12":  # the recorded December 2022 rules: PERCENT_PRICE_BY_SIDE instead of PERCENT_PRICE
        path = None if sample_dir is None else sample_dir / "binance_exchange_info_BTCUSDT_2022-12.json"
        if path is None or not path.exists():
            pytest.skip("needs ../shared/data/binance_exchange_info_BTCUSDT_2022-12.json (the recorded 2022 rules)")
        sim.engine.specs["BTCUSDT"] = SymbolSpec.from_info(json.loads(path.read_text())["symbols"][0])
    with sim:
        port = CcxtExchange.for_local(sim, timeout_s=5)
        market = port.load_markets()["BTC/USDT"]
        last = sim.last_price("BTC/USDT")
        counter = iter(range(10**6))
        outcome = {"accepted": 0, "rejected": 0, "percent": 0}

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(
            side=st.sampled_from([Side.BUY, Side.SELL]),
            qty=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("2"), places=7),
            rel=st.decimals(min_value=Decimal("0.85"), max_value=Decimal("1.15"), places=6),
            # one order in four far enough from the market for the percent-price band (x0.2 .. x5)
            far=st.sampled_from([None, None, None, Decimal("0.15"), Decimal("0.2"), Decimal("5"), Decimal("5.5")]),
            price_places=st.integers(min_value=0, max_value=4),
        )
        def check(side: Side, qty: Decimal, rel: Decimal, far: Decimal | None, price_places: int) -> None:
            price = (last * (far or rel)).quantize(Decimal(1).scaleb(-price_places))
            cid = f"prop-{next(counter)}"
            try:
                validate_order(market, side, OrderType.LIMIT, qty, price, ref_price=last)  # avgPrice = last here
                ours_ok, ours_filter = True, None
            except FilterRejected as exc:
                ours_ok, ours_filter = False, exc.filter_name
            status, body = signed(sim, "POST", "/api/v3/order", {
                "symbol": "BTCUSDT", "side": str(side), "type": "LIMIT", "timeInForce": "GTC",
                "quantity": format(qty, "f"), "price": format(price, "f"), "newClientOrderId": cid})
            theirs_ok = status == 200
            if not theirs_ok:
                assert body["code"] == -1013 and body["msg"].startswith("Filter failure: "), body
                # both check in Binance's order, so the first broken filter is the same one
                assert body["msg"] == f"Filter failure: {ours_filter}", (body, ours_filter, side, qty, price)
            assert ours_ok == theirs_ok, (
                f"ours={ours_ok} ({ours_filter}) exchange={theirs_ok} {body}: {side} {qty} @ {price}")
            if theirs_ok:
                outcome["accepted"] += 1
                if body["status"] in ("NEW", "PARTIALLY_FILLED"):  # marketable orders fill at once
                    port.cancel_order("BTC/USDT", cid)
            else:
                outcome["rejected"] += 1
                outcome["percent"] += body["msg"].startswith("Filter failure: PERCENT_PRICE")

        check()
    # Both sides of the property were exercised, and the percent band among the rejections. Bounds: which
    # orders hypothesis draws (hence how many land on each side) changes with its version.
    assert outcome["accepted"] > 5 and outcome["rejected"] > 5, outcome
    assert outcome["percent"] > 0, outcome
