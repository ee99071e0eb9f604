"""Parity: the trader in paper mode against the local exchange makes the backtester's trades.

Real BTC/USDT 1h candles (a gap-free span) when ../shared/data is present, synthetic ones otherwise.
The replay goes through everything live trading uses: websocket candles, risk, filters, the journal,
market orders over ccxt, fills, the ledger and the audit trail.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.data.samples import load_sample_candles
from thunes.execution.audit import verify_audit
from thunes.live.parity import ReplaySpec, run_parity
from thunes.strategies.sma_cross import SmaCross


def gap_free_tail(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    stamps = ts_ms(frame)
    ok = np.diff(stamps) == 3_600_000
    for end in range(len(frame), rows, -1):
        if ok[end - rows:end - 1].all():
            return frame.iloc[end - rows:end]
    raise AssertionError("no gap-free span")


def test_paper_trades_match_the_backtest(tmp_path):
    sample = load_sample_candles("BTC/USDT", "1h", limit=3000)
    candles = gap_free_tail(sample.frame, 520)
    strategy = SmaCross(fast=5, slow=20)

    spec = ReplaySpec(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"), start_bar=120, bars=399)
    report, paper, bt_trades = run_parity(candles, strategy, spec, workdir=tmp_path)

    table = report.frame()
    print(f"data: {'real' if sample.real else 'synthetic'}; {len(paper.trades)} paper trades\n{table}")
    # Golden counts of SmaCross(5, 20) round trips over bars 120..518 of each data source.
    assert report.paper_trades == (14 if sample.real else 10), table
    assert report.timing_identical, table
    assert report.ok, table
    assert paper.orders_sent == paper.exchange_orders  # one exchange order per intent, never two
    assert paper.positions_match, paper.reconcile
    assert verify_audit(tmp_path / "audit.jsonl").ok
