"""The CSV ledger: one exact row per fill, idempotent across restarts, tolerant of a torn last line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thunes.core.enums import Side
from thunes.core.errors import DataError
from thunes.execution.ledger import LEDGER_COLUMNS, Ledger, LedgerRow, read_ledger


def row(trade_id: str = "t1", **kw) -> LedgerRow:
    base = dict(time_ms=1_704_067_200_000, symbol="BTC/USDT", side=Side.BUY, qty=Decimal("0.00236"),
                price=Decimal("42283.58"), fee=Decimal("0.00000236"), fee_asset="BTC", order_id="17",
                client_order_id="th-abc", trade_id=trade_id, strategy="sma_cross", reason="entry: fast>slow")
    base.update(kw)
    return LedgerRow(**base)


def test_a_fill_is_written_with_exact_decimals_and_iso_time(tmp_path):
    path = tmp_path / "ledger.csv"
    with Ledger(path) as ledger:
        assert ledger.record(row()) is True
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(LEDGER_COLUMNS)
    assert lines[1] == ("2024-01-01T00:00:00.000+00:00,BTC/USDT,BUY,0.00236,42283.58,0.00000236,BTC,17,th-abc,t1,"
                        "sma_cross,entry: fast>slow")
    assert read_ledger(path) == [row()]


def test_the_same_fill_is_recorded_once_even_after_reopening(tmp_path):
    path = tmp_path / "ledger.csv"
    with Ledger(path) as ledger:
        ledger.record(row("t1"))
        assert ledger.record(row("t1")) is False
    with Ledger(path) as ledger:
        assert ("BTC/USDT", "17", "t1") in ledger
        assert ledger.record(row("t1")) is False
        assert ledger.record(row("t2", side=Side.SELL, qty=Decimal("1E-5"))) is True
    rows = read_ledger(path)
    assert [r.trade_id for r in rows] == ["t1", "t2"]
    assert path.read_text().splitlines()[2].split(",")[3] == "0.00001"


def test_a_torn_last_line_is_ignored_and_a_wrong_header_refused(tmp_path):
    path = tmp_path / "ledger.csv"
    with Ledger(path) as ledger:
        ledger.record(row("t1"))
    with open(path, "a") as fh:
        fh.write("2024-01-01T01:00:00.000+00:00,BTC/USDT,SE")  # the process died mid-write
    assert [r.trade_id for r in read_ledger(path)] == ["t1"]
    with Ledger(path) as ledger:
        ledger.record(row("t2"))
    assert [r.trade_id for r in read_ledger(path)] == ["t1", "t2"]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="header"):
        read_ledger(bad)


def test_fills_of_two_symbols_with_the_same_order_and_trade_ids_are_both_kept(tmp_path):
    """Binance numbers orders and trades per symbol: BTC's order 17 / trade t1 and ETH's are two fills."""
    path = tmp_path / "ledger.csv"
    with Ledger(path) as ledger:
        assert ledger.record(row("t1")) is True
        assert ledger.record(row("t1", symbol="ETH/USDT", price=Decimal("2281.4"))) is True
    with Ledger(path) as ledger:  # an existing file is read with the same key
        assert ledger.record(row("t1", symbol="ETH/USDT", price=Decimal("2281.4"))) is False
        assert ("ETH/USDT", "17", "t1") in ledger and len(ledger) == 2
    assert [r.symbol for r in read_ledger(path)] == ["BTC/USDT", "ETH/USDT"]


def test_listeners_see_each_newly_booked_row_and_a_failing_one_never_stops_booking(tmp_path):
    seen = []
    with Ledger(tmp_path / "ledger.csv") as ledger:
        ledger.listeners.append(lambda r: 1 / 0)
        ledger.listeners.append(seen.append)
        assert ledger.record(row("t1")) is True
        assert ledger.record(row("t1")) is False  # a duplicate is not booked, so not seen
    assert seen == [row("t1")]
    assert len(read_ledger(tmp_path / "ledger.csv")) == 1
