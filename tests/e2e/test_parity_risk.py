"""Parity on short timeframes with the risk limits binding: the paper trader and the backtest trade alike.

The backtest runs with the trader's own ``RiskSettings`` (one place for the knobs) and its risk model
takes the live risk manager's decisions, so a cool-down, the kill-switch, the per-trade loss cap or the
position cap change both sides in the same way. A fast SMA crossover on 1m and 5m candles trades often,
and each case sets one limit so that it binds. Real candles when ../shared/data is present, synthetic
ones otherwise.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.core.timeframes import parse_timeframe
from thunes.data.samples import load_sample_candles
from thunes.live.parity import ReplaySpec, run_parity
from thunes.strategies.sma_cross import SmaCross

BARS = 300
WARM = 40


def gap_free_tail(frame: pd.DataFrame, rows: int, timeframe: str) -> pd.DataFrame:
    ok = np.diff(ts_ms(frame)) == parse_timeframe(timeframe).ms
    for end in range(len(frame), rows, -1):
        if ok[end - rows:end - 1].all():
            return frame.iloc[end - rows:end]
    raise AssertionError("no gap-free span")


# Each case makes one rule bind (the default cool-down of 30 minutes binds on its own on 1m/5m bars).
CASES = {
    "cool_down": RiskSettings(),
    "kill_switch": RiskSettings(max_daily_loss=Decimal("0.6"), cool_down_minutes=0),
    "loss_per_trade": RiskSettings(max_loss_per_trade=Decimal("0.5"), cool_down_minutes=0),
    "position_quote": RiskSettings(max_position_quote=Decimal("40"), cool_down_minutes=0),
}


def replay(timeframe: str, settings: RiskSettings, workdir):
    sample = load_sample_candles("BTC/USDT", timeframe, limit=5000)
    candles = gap_free_tail(sample.frame, WARM + BARS + 1, timeframe)
    spec = ReplaySpec(symbol="BTC/USDT", timeframe=timeframe, quote_per_trade=Decimal("100"),
                      risk_settings=settings, start_bar=WARM, bars=BARS)
    return run_parity(candles, SmaCross(fast=3, slow=8), spec, workdir=workdir)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("timeframe", ["1m", "5m"])
def test_paper_and_backtest_take_the_same_risk_decisions(timeframe, case, tmp_path):
    report, paper, bt_trades = replay(timeframe, CASES[case], tmp_path)
    table = report.frame()
    # Golden trade counts of each (timeframe, case): on the real files, then on the synthetic fallback.
    golden = {("1m", "cool_down"): (7, 6), ("1m", "kill_switch"): (1, 2), ("1m", "loss_per_trade"): (19, 22),
              ("1m", "position_quote"): (19, 22), ("5m", "cool_down"): (15, 14), ("5m", "kill_switch"): (2, 3),
              ("5m", "loss_per_trade"): (24, 21), ("5m", "position_quote"): (24, 21)}
    real = load_sample_candles("BTC/USDT", timeframe, limit=1).real
    assert report.paper_trades == golden[(timeframe, case)][0 if real else 1], table
    assert report.timing_identical, table.to_string()
    assert report.ok, table.to_string()
    # The rule did bind, on the paper side (a denial, or a size under quote_per_trade) and so on both.
    denied = [d.reason for d in paper.decisions if "denied" in (d.reason or "")]
    notional = bt_trades.qty * bt_trades.entry_price
    if case == "cool_down":
        assert any("(cool_down)" in r for r in denied), denied
    elif case == "kill_switch":
        assert any("(kill_switch)" in r for r in denied), denied
    elif case == "loss_per_trade":
        assert (notional < 0.5 / 0.02 * 1.01).all() and (paper.trades.qty * paper.trades.entry_price < 26).all()
    else:
        assert (notional <= 40.0 + 1e-9).all() and (paper.trades.qty * paper.trades.entry_price <= 40.01).all()


def test_a_rerun_into_the_same_folder_gives_the_same_report(tmp_path):
    """A second replay into the same folder starts from scratch: same trades, refusals still carry their
    risk reason (not 'missed')."""
    first, _, _ = replay("5m", CASES["kill_switch"].model_copy(update={"cool_down_minutes": 30}), tmp_path)
    second, _, _ = replay("5m", CASES["kill_switch"].model_copy(update={"cool_down_minutes": 30}), tmp_path)
    pd.testing.assert_frame_equal(first.frame(), second.frame())
    assert second.ok and "missed" not in set(second.frame().cause)
