"""Trades and profit reports from a hand-written ledger (golden numbers worked out by hand)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from thunes.core.enums import Side
from thunes.core.errors import ConfigError
from thunes.execution.ledger import LedgerRow
from thunes.services.reports import daily, performance, profit, round_trips, trades, weekly

DAY = 86_400_000
T0 = 1_704_067_200_000  # Monday 2024-01-01 00:00 UTC


def row(t, sym, side, qty, price, fee, fee_asset, oid):
    return LedgerRow(time_ms=t, symbol=sym, side=Side(side), qty=D(qty), price=D(price), fee=D(fee),
                     fee_asset=fee_asset, order_id=str(oid), client_order_id=f"c{oid}", trade_id=f"t{oid}",
                     strategy="s", reason="")


LEDGER = [
    # BTC: buy 0.01 @ 40000 (fee 0.00001 BTC = 0.4 USDT), sell 0.01 @ 41000 (fee 0.41 USDT): pnl 10 - 0.81 = 9.19
    row(T0, "BTC/USDT", "BUY", "0.01", "40000", "0.00001", "BTC", 1001),
    row(T0 + DAY, "BTC/USDT", "SELL", "0.01", "41000", "0.41", "USDT", 1002),
    # ETH (same order ids as BTC's: ids are per symbol): buy 1 @ 2000 (fee 2), sell 1 @ 1990 (fee 1.99): -13.99
    row(T0 + 2 * DAY, "ETH/USDT", "BUY", "1", "2000", "2", "USDT", 1001),
    row(T0 + 8 * DAY, "ETH/USDT", "SELL", "1", "1990", "1.99", "USDT", 1002),
    # SOL: still open
    row(T0 + 9 * DAY, "SOL/USDT", "BUY", "2", "100", "0.2", "USDT", 1001),
]


def test_round_trips_per_pair_with_fees_in_quote():
    trips = round_trips(LEDGER)
    assert [(t.symbol, t.pnl) for t in trips] == [("BTC/USDT", D("9.19")), ("ETH/USDT", D("-13.99")),
                                                  ("SOL/USDT", None)]
    btc = trips[0]
    assert btc.fees == D("0.81") and btc.return_pct == D("9.19") / D("400") * 100
    assert trips[2].exit_ms is None and trips[2].exit_price is None


def test_profit_summary():
    p = profit(LEDGER)
    assert (p.closed_trades, p.open_trades, p.wins, p.losses) == (2, 1, 1, 1)
    assert p.realised_pnl == D("-4.80") and p.fees == D("5.00")
    assert (p.best, p.worst, p.win_rate) == (D("9.19"), D("-13.99"), 0.5)


def test_trades_are_paged_newest_first():
    page1 = trades(LEDGER, page=1, per_page=2)
    page2 = trades(LEDGER, page=2, per_page=2)
    assert [t.symbol for t in page1.trades] == ["SOL/USDT", "ETH/USDT"]
    assert [t.symbol for t in page2.trades] == ["BTC/USDT"]
    assert (page1.total, page1.pages) == (3, 2)
    assert [t.symbol for t in trades(LEDGER, symbol="btc/usdt").trades] == ["BTC/USDT"]
    with pytest.raises(ConfigError):
        trades(LEDGER, page=0)


def test_daily_and_weekly_profit_by_exit_day():
    days = daily(LEDGER, days=9, now_ms=T0 + 8 * DAY + 5)
    assert days[0].start == "2024-01-09" and days[0].realised_pnl == D("-13.99") and days[0].trades == 1
    assert days[7].start == "2024-01-02" and days[7].realised_pnl == D("9.19")
    assert sum(d.trades for d in days) == 2
    weeks = weekly(LEDGER, weeks=2, now_ms=T0 + 8 * DAY)
    assert [(w.start, w.trades, w.realised_pnl) for w in weeks] == [("2024-01-08", 1, D("-13.99")),
                                                                    ("2024-01-01", 1, D("9.19"))]


def test_performance_per_pair_best_first():
    perf = performance(LEDGER)
    assert [(p.symbol, p.trades, p.wins, p.realised_pnl) for p in perf] == [
        ("BTC/USDT", 1, 1, D("9.19")), ("ETH/USDT", 1, 0, D("-13.99"))]


def test_a_missing_ledger_is_an_empty_report(tmp_path):
    assert profit(tmp_path / "none.csv").closed_trades == 0
    assert trades(tmp_path / "none.csv").total == 0
