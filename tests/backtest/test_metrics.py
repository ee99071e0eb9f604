"""Metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from thunes.backtest.metrics import METRIC_NAMES, compute_metrics

IDX = pd.date_range("2024-01-01", periods=4, freq="1D", tz="UTC", name="ts")


def _trades(rows):
    cols = ["entry_ts", "exit_ts", "qty", "entry_price", "exit_price", "pnl", "fees", "exit_reason"]
    return pd.DataFrame(rows, columns=cols)


def test_metrics_golden_numbers():
    # Arrange: equity 100 -> 110 -> 99 -> 121 on daily bars; two closed trades (+15, -4).
    equity = pd.Series([110.0, 99.0, 121.0, 121.0], index=IDX)
    trades = _trades([
        (IDX[0], IDX[1], 1.0, 100.0, 115.0, 15.0, 0.5, "signal"),
        (IDX[1], IDX[3], 1.0, 100.0, 96.0, -4.0, 0.5, "stop_loss"),
    ])
    # Act
    m = compute_metrics(equity, trades, initial_cash=100.0, timeframe="1d")
    # Assert
    r = np.array([0.10, -0.10, 121 / 99 - 1, 0.0])
    assert m["total_return"] == pytest.approx(0.21)
    assert m["max_drawdown"] == pytest.approx(0.10)          # 110 -> 99
    assert m["max_drawdown_duration_bars"] == 1
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt((0.01) / 4) * math.sqrt(365))
    assert m["cagr"] == pytest.approx(1.21 ** (365 / 4) - 1)
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(15 / 4)
    assert m["expectancy"] == pytest.approx(5.5)
    assert m["exposure"] == pytest.approx((1 + 2) / 4)
    assert m["avg_holding_hours"] == pytest.approx(36.0)
    assert m["fees_paid"] == 1.0
    assert m["turnover"] == pytest.approx((100 + 115 + 100 + 96) / 100)
    assert m["annual_return"] == pytest.approx(r.mean() * 365)
    assert m["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(365))
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.10)
    assert m["max_drawdown_duration_days"] == pytest.approx(1.0)
    assert m["avg_holding_bars"] == pytest.approx(1.5)
    assert (m["n_trades"], m["n_closed_trades"]) == (2, 2)


def test_every_metric_the_issue_lists_is_reported():
    # total and annualised return, CAGR, Sharpe, Sortino, Calmar, max drawdown and its duration, win
    # rate, profit factor, expectancy, exposure, number of trades, average holding time, fees, turnover
    required = {"total_return", "annual_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown",
                "max_drawdown_duration_bars", "win_rate", "profit_factor", "expectancy", "exposure", "n_trades",
                "avg_holding_hours", "fees_paid", "turnover"}
    m = compute_metrics(pd.Series(100.0, index=IDX), _trades([]), initial_cash=100.0, timeframe="1d")
    assert required <= set(m) and list(m) == list(METRIC_NAMES)


def test_metrics_of_a_flat_run_are_zero_not_errors():
    m = compute_metrics(pd.Series(100.0, index=IDX), _trades([]), initial_cash=100.0, timeframe="1d")
    assert (m["total_return"], m["sharpe"], m["max_drawdown"], m["n_trades"]) == (0.0, 0.0, 0.0, 0)
    assert math.isnan(m["win_rate"])
