"""Contract tests for the market-data and account endpoints the project reads, through the real ccxt client.

Klines (``fetch_ohlcv``, used by ``thunes data download`` and, paged, by ``CcxtExchange.fetch_candles`` for the
trader's warm-up), ticker, book ticker, depth, avgPrice, time/ping, balances, allOrders and ``order/test``.
Golden values come from the replayed candles themselves.
"""

from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import numpy as np
import pandas as pd
import pytest

from thunes.core.candles import ts_ms
from thunes.core.timeframes import resample
from thunes.data.samples import load_sample_candles
from thunes.exchange.ccxt_adapter import CcxtExchange, make_local_exchange_client
from thunes.exchange.sim import LocalExchange, SimOptions

H = 3_600_000


def _replayed():
    """The frame the ``sim`` fixture replays (same call, so the same candles)."""
    return load_sample_candles("BTC/USDT", "1h", limit=600).frame


def test_klines_are_the_replayed_candles_and_the_current_one_is_forming(client, sim):
    # Arrange: the fixture starts the market clock at the open of candle 300, then we move ~30 minutes in (to a
    # moment where the interpolated path price is off the tick grid: 71444.30285175 on the real data)
    frame = _replayed()
    stamps = ts_ms(frame)
    assert sim.now_ms() == stamps[300]
    sim.advance_to(int(stamps[300]) + H // 2 + 12_345)
    # Act
    rows = client.fetch_ohlcv("BTC/USDT", "1h", limit=5)
    # Assert: four closed candles exactly as replayed, then the forming one (open of candle 300, price so far)
    assert [r[0] for r in rows] == [int(t) for t in stamps[296:301]]
    expected = frame[["open", "high", "low", "close", "volume"]].to_numpy()[296:300]
    np.testing.assert_allclose(np.array([r[1:] for r in rows[:4]]), expected, rtol=1e-12)
    forming = rows[4]
    assert forming[1] == pytest.approx(frame["open"].iloc[300], rel=1e-12)
    assert frame["low"].iloc[300] <= forming[3] <= forming[4] <= forming[2] <= frame["high"].iloc[300]
    # the forming close is the last trade price, on the tick grid like every Binance price
    raw = client.publicGetKlines({"symbol": "BTCUSDT", "interval": "1h", "limit": 1})[0]
    ticker_last = Decimal(client.fetch_ticker("BTC/USDT")["info"]["lastPrice"])
    assert Decimal(raw[4]) == sim.last_price("BTC/USDT") == ticker_last
    assert all(Decimal(raw[k]) % Decimal("0.01") == 0 for k in (1, 2, 3, 4))


def test_klines_at_a_coarser_interval_are_the_resampled_candles(client, sim):
    frame = _replayed()
    sim.advance_to(int(ts_ms(frame)[312]))  # a 4h boundary is somewhere behind us either way
    rows = client.fetch_ohlcv("BTC/USDT", "4h", limit=3)
    closed = [r for r in rows if r[0] + 4 * H <= sim.now_ms()]
    assert closed, rows
    four_h = resample(frame, "4h")
    for r in closed:
        bar = four_h.loc[pd.Timestamp(r[0], unit="ms", tz="UTC")]
        np.testing.assert_allclose(r[1:], bar[["open", "high", "low", "close", "volume"]].to_numpy(), rtol=1e-9)


def test_port_fetch_candles_pages_past_the_1000_row_answer_limit():
    # Arrange: 1m candles, the clock 2,500 bars in
    with LocalExchange(SimOptions(symbols=("BTC/USDT",), timeframe="1m", synthetic_bars=3000,
                                  history_bars=2500)) as sim:
        port = CcxtExchange.for_local(sim, timeout_s=5)
        feed = sim.engine.feeds["BTCUSDT"]
        since = int(feed.ts[100])
        # Act: 1,500 rows need two requests of at most 1,000
        got = port.fetch_candles("BTC/USDT", "1m", since=since, limit=1500)
        latest = port.fetch_candles("BTC/USDT", "1m", limit=10)
        port.close()
    # Assert: contiguous, no duplicate at the page seam, equal to the replayed bars
    assert len(got) == 1500
    assert ts_ms(got)[0] == since and (np.diff(ts_ms(got)) == 60_000).all()
    np.testing.assert_allclose(got["close"].to_numpy(), feed.close[100:1600], rtol=1e-12)
    assert ts_ms(latest)[-1] == feed.ts[2500]  # without since: the newest rows, the forming one last


def test_ticker_book_ticker_depth_and_avg_price_agree_with_the_last_trade(client, port, sim):
    last = sim.last_price("BTC/USDT")
    ticker = port.fetch_ticker("BTC/USDT")
    assert ticker.last == last
    assert ticker.bid < last < ticker.ask
    book = client.fetch_order_book("BTC/USDT", limit=10)
    bids, asks = book["bids"], book["asks"]
    assert len(bids) == len(asks) == 10
    assert [b[0] for b in bids] == sorted((b[0] for b in bids), reverse=True)
    assert [a[0] for a in asks] == sorted(a[0] for a in asks)
    assert bids[0][0] == float(ticker.bid) and asks[0][0] == float(ticker.ask)
    tick = Decimal("0.01")
    assert all(Decimal(repr(p)) % tick == 0 for p, _ in bids + asks)
    best = client.fetch_bids_asks(["BTC/USDT"])["BTC/USDT"]  # GET ticker/bookTicker
    assert (best["bid"], best["ask"]) == (bids[0][0], asks[0][0])
    avg = client.public_get_avgprice({"symbol": "BTCUSDT"})
    assert Decimal(avg["price"]) == last and int(avg["mins"]) == 5


def test_time_and_ping_follow_the_wall_clock_that_signatures_use(client):
    before = int(time.time() * 1000)
    server = client.fetch_time()
    after = int(time.time() * 1000)
    assert before - 5 <= server <= after + 5
    assert client.public_get_ping() == {}


def test_balances_are_typed_decimals_and_move_with_a_fill(client, port):
    start = port.fetch_balance()
    assert (start["USDT"].free, start["BTC"].free, start["ETH"].free) == (Decimal("10000"), Decimal("0.5"),
                                                                          Decimal("5"))
    order = client.create_order("BTC/USDT", "market", "buy", 0.001)
    after = port.fetch_balance()
    assert after["USDT"].free == Decimal("10000") - Decimal(str(order["info"]["cummulativeQuoteQty"]))
    fee = Decimal(str(order["trades"][0]["fee"]["cost"]))  # paid in BTC, the asset bought
    assert after["BTC"].free == Decimal("0.5") + Decimal("0.001") - fee


def test_all_orders_lists_filled_canceled_and_open_orders(client, sim):
    far = float((sim.last_price("BTC/USDT") * Decimal("0.5")).quantize(Decimal("0.01")))
    filled = client.create_order("BTC/USDT", "market", "buy", 0.001)
    canceled = client.create_order("BTC/USDT", "limit", "buy", 0.001, far)
    client.cancel_order(canceled["id"], "BTC/USDT")
    resting = client.create_order("BTC/USDT", "limit", "buy", 0.001, far)
    statuses = {o["id"]: o["status"] for o in client.fetch_orders("BTC/USDT")}  # GET allOrders
    assert statuses == {filled["id"]: "closed", canceled["id"]: "canceled", resting["id"]: "open"}
    assert [o["id"] for o in client.fetch_open_orders("BTC/USDT")] == [resting["id"]]


def test_order_test_endpoint_validates_without_placing(client, sim):
    client.create_order("BTC/USDT", "market", "buy", 0.001, params={"test": True})  # POST order/test
    assert client.fetch_orders("BTC/USDT") == []
    # The same filters apply to a test order: a price of 1.0 is far outside PERCENT_PRICE (ccxt raises its
    # BadRequest for a -1013 it does not map more precisely).
    with pytest.raises(ccxt.BadRequest, match='"code": -1013, "msg": "Filter failure: PERCENT_PRICE"'):
        client.create_order("BTC/USDT", "limit", "buy", 0.0001, 1.0, params={"test": True})


def test_a_second_client_sees_the_same_market(sim):
    a = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
    b = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
    assert a.fetch_ticker("BTC/USDT")["last"] == b.fetch_ticker("BTC/USDT")["last"]
