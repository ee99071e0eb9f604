"""Performance metrics of a backtest, from its equity curve and trade list.

One definition shared by single runs, portfolios, sweeps and optimiser trials, so an optimiser ranking
a sweep and a report showing one run agree: every metric is computed from a few sums by one function
(``_finish``); :func:`stats_from_kernel` reads the sums from the kernel's statistics row (and a run's
trade records: every prepared backtest, :mod:`thunes.backtest.prepared`), :func:`compute_metrics` from
an equity curve and a trade list (portfolios, stitched walk-forward windows), both with the kernel's
own per-bar equity step and one reduction over trades (``_trade_sums``). Conventions: simple per-bar returns, the first measured against the
initial cash; Sharpe and Sortino are annualised with ``sqrt(bars_per_year)`` (crypto trades
365 days a year), zero risk-free rate, sample standard deviation (ddof=1); Sortino's downside
deviation is ``sqrt(sum(min(r, 0)^2) / N)``; drawdowns are fractions of the running peak (the
initial cash counts as the first peak); ``n_trades`` counts the trade still open at the end,
while win rate, profit factor and expectancy use closed trades only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from thunes.backtest import _kernels as K
from thunes.core.timeframes import parse_timeframe

__all__ = [
    "METRIC_NAMES",
    "RISK_COUNT_NAMES",
    "bars_per_year",
    "compute_metrics",
    "risk_counts_from_kernel",
    "stats_from_kernel",
]

METRIC_NAMES = (
    "start", "end", "bars", "initial_cash", "final_equity", "total_return", "annual_return", "cagr",
    "volatility", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration_bars",
    "max_drawdown_duration_days", "n_trades", "n_closed_trades", "win_rate", "profit_factor",
    "expectancy", "exposure", "avg_holding_bars", "avg_holding_hours", "fees_paid", "turnover",
    "refused_filters", "refused_risk", "refused_gap",
)
# How often each risk rule bound (``refused_risk`` is the sum of the three ``refused_*`` entry counts).
RISK_COUNT_NAMES = (
    "refused_kill_switch", "refused_max_positions", "refused_cool_down", "exits_refused_kill_switch",
    "capped_loss_per_trade", "capped_position_quote", "kill_switch_bar",
)
METRIC_NAMES = METRIC_NAMES + RISK_COUNT_NAMES
_RISK_STATS = dict(zip(RISK_COUNT_NAMES, (K.S_REFUSED_KILL, K.S_REFUSED_MAXPOS, K.S_REFUSED_COOL,
                                          K.S_EXIT_REFUSED_KILL, K.S_CAPPED_LOSS, K.S_CAPPED_QUOTE, K.S_KILL_BAR)))


def risk_counts_from_kernel(stats: np.ndarray) -> dict[str, int]:
    """The per-rule risk counts of one row of kernel statistics (``kill_switch_bar`` -1: never tripped)."""
    return {name: int(stats[idx]) for name, idx in _RISK_STATS.items()}


def bars_per_year(timeframe: str) -> float:
    return 365.0 * 86400.0 / parse_timeframe(timeframe).seconds


@njit(cache=True)
def _equity_sums(equity, initial_cash):
    """The kernel's streaming statistics of an equity curve (the same per-bar step, so the same bits)."""
    state = K.equity_state(initial_cash)
    for i in range(equity.shape[0]):
        state = K.mark_equity(state, equity[i], i)
    return state[3], state[4], state[5], state[6], state[7]


_NO_TRADES: dict[str, Any] = dict(n_trades=0, n_closed=0, n_wins=0, gross_profit=0.0, gross_loss=0.0, fees=0.0,
                                  exposure_bars=0.0, hold_bars=0.0, turnover=0.0)


def _trade_sums(*, qty: np.ndarray, entry_price: np.ndarray, exit_price: np.ndarray, pnl: np.ndarray,
                fees: np.ndarray, is_open: np.ndarray, held: np.ndarray) -> dict[str, Any]:
    """The sums over trades that the metrics need, from one array per trade field (a trade list's columns
    or the kernel's records: the same reductions, so the same bits). ``held``: bars from the entry bar up
    to, not including, the exit bar (the end of the data for the open trade)."""
    closed = ~is_open
    won = pnl[closed]
    entry_notional = qty * entry_price
    exit_notional = qty[closed] * exit_price[closed]
    return dict(
        n_trades=int(qty.shape[0]), n_closed=int(closed.sum()), n_wins=int((won > 0).sum()),
        gross_profit=float(won[won > 0].sum()), gross_loss=float(-won[won <= 0].sum()), fees=float(fees.sum()),
        exposure_bars=float(held.sum()), hold_bars=float(held.sum()),
        turnover=float(entry_notional.sum() + exit_notional.sum()))


def _finish(
    *, n: int, bpy: float, initial_cash: float, final: float, sum_r: float, sum_r2: float, sum_d2: float,
    max_dd: float, max_dd_bars: float, n_trades: int, n_closed: int, n_wins: int, gross_profit: float,
    gross_loss: float, fees: float, exposure_bars: float, hold_bars: float, turnover: float,
    tf_hours: float, refused_filters: int, refused_risk: int, refused_gap: int = 0,
    risk_counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    total = final / initial_cash - 1.0
    years = n / bpy if bpy > 0 else float("nan")
    mean = sum_r / n if n else 0.0
    var = (sum_r2 - n * mean * mean) / (n - 1) if n > 1 else 0.0
    std = math.sqrt(var) if var > 1e-30 else 0.0
    down = math.sqrt(sum_d2 / n) if n else 0.0
    cagr = (final / initial_cash) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else -1.0
    nan = float("nan")
    return {
        "bars": n,
        "initial_cash": initial_cash,
        "final_equity": final,
        "total_return": total,
        "annual_return": mean * bpy,
        "cagr": cagr,
        "volatility": std * math.sqrt(bpy),
        "sharpe": mean / std * math.sqrt(bpy) if std > 0 else 0.0,
        "sortino": mean / down * math.sqrt(bpy) if down > 0 else 0.0,
        "calmar": cagr / max_dd if max_dd > 0 else nan,
        "max_drawdown": max_dd,
        "max_drawdown_duration_bars": int(max_dd_bars),
        "max_drawdown_duration_days": max_dd_bars * tf_hours / 24.0,
        "n_trades": int(n_trades),
        "n_closed_trades": int(n_closed),
        "win_rate": n_wins / n_closed if n_closed else nan,
        "profit_factor": gross_profit / gross_loss if gross_loss > 0 else (nan if gross_profit == 0 else math.inf),
        "expectancy": (gross_profit - gross_loss) / n_closed if n_closed else nan,
        "exposure": exposure_bars / n if n else 0.0,
        "avg_holding_bars": hold_bars / n_trades if n_trades else nan,
        "avg_holding_hours": hold_bars * tf_hours / n_trades if n_trades else nan,
        "fees_paid": fees,
        "turnover": turnover / initial_cash,
        "refused_filters": int(refused_filters),
        "refused_risk": int(refused_risk),
        "refused_gap": int(refused_gap),
        **{name: int((risk_counts or {}).get(name, -1 if name == "kill_switch_bar" else 0))
           for name in RISK_COUNT_NAMES},
    }


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    *,
    initial_cash: float,
    timeframe: str = "1h",
    refused_filters: int = 0,
    refused_risk: int = 0,
    refused_gap: int = 0,
    risk_counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """All metrics of a run as a flat dict (keys in :data:`METRIC_NAMES`).

    ``trades`` needs columns entry_ts, exit_ts (NaT for the trade still open), pnl, fees, qty,
    entry_price, exit_price, exit_reason; exposure and holding times are measured on the equity
    index (a trade holds the bars from its entry bar up to, not including, its exit bar).
    """
    tf = parse_timeframe(timeframe)
    bpy = 365.0 * 86400.0 / tf.seconds
    values = equity.to_numpy(dtype=np.float64)
    n = values.size
    sum_r, sum_r2, sum_d2, max_dd, max_dd_bars = _equity_sums(values, float(initial_cash))
    final = float(values[-1]) if n else float(initial_cash)
    idx = equity.index
    if len(trades):
        # DatetimeIndex against DatetimeIndex: int64 search (``Series.to_numpy()`` of tz-aware stamps
        # builds Timestamp objects, which cost two thirds of a 1M-bar run).
        is_open = trades["exit_reason"].to_numpy() == "open"
        start = idx.searchsorted(pd.DatetimeIndex(trades["entry_ts"]))
        exit_ts = trades["exit_ts"]
        stop = np.where(exit_ts.isna().to_numpy(), n, idx.searchsorted(pd.DatetimeIndex(exit_ts.fillna(idx[-1]))))
        sums = _trade_sums(
            qty=trades["qty"].to_numpy(), entry_price=trades["entry_price"].to_numpy(),
            exit_price=trades["exit_price"].to_numpy(), pnl=trades["pnl"].to_numpy(dtype=np.float64),
            fees=trades["fees"].to_numpy(), is_open=is_open, held=(stop - start).astype(np.float64))
    else:
        sums = _NO_TRADES
    out: dict[str, Any] = {
        "start": idx[0] if n else None,
        "end": idx[-1] if n else None,
    }
    out.update(_finish(
        n=n, bpy=bpy, initial_cash=float(initial_cash), final=final, sum_r=sum_r, sum_r2=sum_r2,
        sum_d2=sum_d2, max_dd=max_dd, max_dd_bars=max_dd_bars, tf_hours=tf.seconds / 3600.0,
        refused_filters=refused_filters, refused_risk=refused_risk, refused_gap=refused_gap,
        risk_counts=risk_counts, **sums,
    ))
    return {k: out[k] for k in METRIC_NAMES}


def stats_from_kernel(
    stats: np.ndarray, *, initial_cash: float, timeframe: str, records: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics (without start/end) from one row of the kernel's streaming statistics.

    With the run's trade ``records`` (``R_*`` rows, the open trade included), the sums over trades
    (fees, turnover, gross profit and loss, bars held) are taken from them with the reductions
    :func:`compute_metrics` applies to the trade list, so the metrics equal those of the trade list and
    equity curve bit for bit (the kernel's running sums add them in another order: last-bit
    differences). Without records (a sweep keeps none) the kernel's sums are used.
    """
    tf = parse_timeframe(timeframe)
    s = stats
    n = int(s[K.S_N_BARS])
    if records is None:
        sums = dict(
            n_trades=int(s[K.S_N_CLOSED] + s[K.S_OPEN_TRADE]), n_closed=int(s[K.S_N_CLOSED]),
            n_wins=int(s[K.S_N_WINS]), gross_profit=float(s[K.S_GROSS_PROFIT]),
            gross_loss=float(s[K.S_GROSS_LOSS]), fees=float(s[K.S_FEES]),
            exposure_bars=float(s[K.S_EXPOSURE_BARS]), hold_bars=float(s[K.S_HOLD_BARS]),
            turnover=float(s[K.S_TURNOVER]))
    elif records.shape[0] == 0:
        sums = _NO_TRADES
    else:
        is_open = records[:, K.R_REASON] == float(K.REASON_NAMES.index("open"))
        stop = np.where(is_open, n, records[:, K.R_EXIT_BAR].astype(np.int64))
        sums = _trade_sums(
            qty=records[:, K.R_QTY], entry_price=records[:, K.R_ENTRY_PRICE],
            exit_price=records[:, K.R_EXIT_PRICE], pnl=records[:, K.R_PNL],
            fees=records[:, K.R_ENTRY_FEE] + records[:, K.R_EXIT_FEE], is_open=is_open,
            held=(stop - records[:, K.R_ENTRY_BAR].astype(np.int64)).astype(np.float64))
    return _finish(
        n=n, bpy=365.0 * 86400.0 / tf.seconds, initial_cash=initial_cash,
        final=float(s[K.S_FINAL_EQUITY]), sum_r=float(s[K.S_SUM_R]), sum_r2=float(s[K.S_SUM_R2]),
        sum_d2=float(s[K.S_SUM_DOWN_R2]), max_dd=float(s[K.S_MAX_DD]), max_dd_bars=float(s[K.S_MAX_DD_BARS]),
        tf_hours=tf.seconds / 3600.0, refused_filters=int(s[K.S_REFUSED_FILTERS]),
        refused_risk=int(s[K.S_REFUSED_RISK]), refused_gap=int(s[K.S_REFUSED_GAP]),
        risk_counts=risk_counts_from_kernel(s), **sums,
    )
