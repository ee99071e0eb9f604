"""Trade ids, one trade by id, and monthly profit (golden numbers from the reports' hand-written ledger)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.services.test_reports import DAY, LEDGER, T0, row
from thunes.services.history import TradeNotFound, monthly, trade_by_id, trade_page


def test_ids_follow_entry_order_and_never_change_when_trades_are_added():
    page = trade_page(LEDGER, per_page=2)
    assert [(n.id, n.trade.symbol) for n in page.trades] == [(3, "SOL/USDT"), (2, "ETH/USDT")]
    assert (page.total, page.pages) == (3, 2)
    later = LEDGER + [row(T0 + 10 * DAY, "SOL/USDT", "SELL", "2", "110", "0.22", "USDT", 1002),
                      row(T0 + 11 * DAY, "BTC/USDT", "BUY", "0.01", "42000", "0.42", "USDT", 1003)]
    assert [(n.id, n.trade.symbol) for n in trade_page(later, per_page=10).trades] == \
        [(4, "BTC/USDT"), (3, "SOL/USDT"), (2, "ETH/USDT"), (1, "BTC/USDT")]
    sol = trade_by_id(later, 3).trade
    assert sol.symbol == "SOL/USDT" and sol.pnl == D("20") - D("0.2") - D("0.22")
    assert [n.id for n in trade_page(LEDGER, symbol="eth/usdt").trades] == [2]


def test_an_unknown_id_is_a_clear_error():
    with pytest.raises(TradeNotFound, match=r"no trade with id 4 \(3 trades recorded\)"):
        trade_by_id(LEDGER, 4)
    with pytest.raises(TradeNotFound):
        trade_by_id(LEDGER, 0)


def test_monthly_profit_by_exit_month_newest_first():
    feb = T0 + 40 * DAY  # 2024-02-10
    rows = LEDGER + [row(feb, "SOL/USDT", "SELL", "2", "110", "0.22", "USDT", 1002)]
    m = monthly(rows, months=3, now_ms=feb)
    assert [p.start for p in m] == ["2024-02-01", "2024-01-01", "2023-12-01"]
    assert [p.trades for p in m] == [1, 2, 0]
    assert m[0].realised_pnl == D("19.58") and m[1].realised_pnl == D("-4.80")
