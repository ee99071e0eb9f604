"""The parity comparison names the cause of every difference between a backtest trade and a paper trade;
ledger fills become round trips with the fees converted to quote."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from thunes.core.enums import Side
from thunes.execution.ledger import LedgerRow
from thunes.live.parity import compare, ledger_round_trips

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


def trade(entry_h: int, exit_h: int | None, entry_px: float, exit_px: float, *, qty: float = 0.001,
          fee_rate: float = 0.001, exit_reason: str = "signal") -> dict:
    cost = qty * entry_px
    fees = fee_rate * (cost + qty * exit_px)
    pnl = (exit_px - entry_px) * qty - fees
    return {"entry_ts": T0 + entry_h * H, "exit_ts": (T0 + exit_h * H) if exit_h is not None else pd.NaT,
            "qty": qty, "entry_price": entry_px, "exit_price": exit_px, "pnl": pnl, "return_pct": pnl / cost * 100,
            "fees": fees, "exit_reason": exit_reason}


def test_every_difference_gets_its_cause():
    bt = pd.DataFrame([
        trade(1, 3, 100.0, 110.0),        # identical on paper
        trade(5, 7, 100.0, 110.0),        # paper sold lower: slippage
        trade(9, 11, 100.0, 110.0),       # paper paid more fees
        trade(13, 15, 100.0, 90.0),       # paper exited a bar later: signal timing
        trade(17, 18, 100.0, 101.0),      # risk refused the paper entry
        trade(20, 21, 100.0, 101.0),      # paper has nothing and no reason: missed
        trade(23, 24, 100.0, 101.0),      # entry on the bar after a hole in the data
        trade(26, None, 100.0, 104.0, exit_reason="end"),  # still open when the replay ends
    ])
    paper = pd.DataFrame([
        trade(1, 3, 100.0, 110.0),
        trade(5, 7, 100.0, 109.9),
        trade(9, 11, 100.0, 110.0, fee_rate=0.0015),
        trade(13, 16, 100.0, 92.0),
        trade(26, None, 100.0, float("nan")),
    ]).drop(columns="exit_reason")

    report = compare(bt, paper, tolerance_pct=0.3, first_entry_ts=T0, last_ts=T0 + 30 * H,
                     gap_entries={T0 + 23 * H}, skipped={T0 + 17 * H: "denied (cool_down): cool-down"})

    causes = [r.cause for r in report.rows]
    assert causes == ["identical", "slippage (-0.1000 %)", "fees (-0.1050 %)", "signal timing",
                      "rejected: denied (cool_down): cool-down", "missed", "data gap", "open at the end"]
    assert [r.within_tolerance for r in report.rows] == [True, True, True, False, False, False, False, True]
    assert not report.timing_identical and not report.ok
    assert report.backtest_trades == 8 and report.paper_trades == 5
    only_rejected = compare(bt.iloc[[4]], paper.iloc[0:0], tolerance_pct=0.3, first_entry_ts=T0,
                            last_ts=T0 + 30 * H, skipped={T0 + 17 * H: "filter NOTIONAL"})
    assert [r.cause for r in only_rejected.rows] == ["rejected: filter NOTIONAL"]
    assert not only_rejected.timing_identical  # a refused entry is an entry the paper side does not have
    assert report.frame()["diff"].iloc[1] == pytest.approx(-0.0999, abs=1e-9)  # -0.1 price, +0.0001 fee on the lower exit


def test_a_paper_trade_the_backtest_lacks_is_missed_and_trades_before_the_replay_are_ignored():
    bt = pd.DataFrame([trade(1, 2, 100.0, 101.0), trade(5, 6, 100.0, 101.0)])
    paper = pd.DataFrame([trade(5, 6, 100.0, 101.0), trade(8, 9, 100.0, 99.0)]).drop(columns="exit_reason")
    report = compare(bt, paper, tolerance_pct=0.3, first_entry_ts=T0 + 3 * H, last_ts=T0 + 10 * H)
    assert [(r.entry_ts, r.cause) for r in report.rows] == [(T0 + 5 * H, "identical"), (T0 + 8 * H, "missed")]
    assert report.rows[1].bt_return is None and not report.ok


def fill(ms_h: int, side: Side, qty: str, price: str, fee: str, fee_asset: str, order: str) -> LedgerRow:
    return LedgerRow(time_ms=int((T0 + ms_h * H).value // 10**6), symbol="BTC/USDT", side=side, qty=Decimal(qty),
                     price=Decimal(price), fee=Decimal(fee), fee_asset=fee_asset, order_id=order,
                     client_order_id=f"c{order}", trade_id="1", strategy="sma_cross", reason="signal")


def test_ledger_fills_become_round_trips_with_fees_in_quote():
    fills = [
        fill(1, Side.BUY, "0.002", "50000", "0.000002", "BTC", "1"),   # fee 0.1 quote, paid in base
        fill(3, Side.SELL, "0.001998", "51000", "0.101898", "USDT", "2"),
        fill(5, Side.BUY, "0.002", "52000", "0.104", "USDT", "3"),     # still open
    ]
    trips = ledger_round_trips(fills)
    assert list(trips["entry_ts"]) == [T0 + H, T0 + 5 * H]
    first = trips.iloc[0]
    assert first["exit_ts"] == T0 + 3 * H
    assert first["fees"] == pytest.approx(0.1 + 0.101898)
    assert first["pnl"] == pytest.approx(1000 * 0.001998 - 0.201898)  # (51000 - 50000) × sold - fees
    assert first["return_pct"] == pytest.approx(first["pnl"] / 100.0 * 100)
    assert pd.isna(trips.iloc[1]["exit_ts"]) and pd.isna(trips.iloc[1]["pnl"])
