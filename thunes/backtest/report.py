"""A self-contained HTML report of one run (plotly, JavaScript embedded: works offline).

Panels: price with entry/exit markers, equity, drawdown, and a monthly-returns heatmap, followed
by the metrics table. Long price series are thinned to about 20 000 points for the browser (the
markers stay exact).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from thunes.backtest.artifacts import run_stem
from thunes.backtest.engine import BacktestResult
from thunes.files import atomic_write

__all__ = ["figure", "monthly_returns", "render_report", "write_report"]

_MAX_POINTS = 20_000


def monthly_returns(equity: pd.Series, initial_cash: float) -> pd.DataFrame:
    """Month-by-month returns as a year x month table (fractions)."""
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    prev = month_end.shift(1)
    prev.iloc[0] = initial_cash
    rets = month_end / prev - 1.0
    table = rets.unstack(level=1)
    table.index.name, table.columns.name = "year", "month"
    return table.reindex(columns=range(1, 13))


_HEAT_MARGIN = {"t": 50, "b": 40, "l": 60, "r": 20}


def _heatmap_height(years: int) -> int:
    """Pixel height of the monthly-returns heatmap: the margins plus 30 px a year, and at least 120 px of
    plot area. (Plotly's default margins take 180 px: a figure of 150-180 px would leave no plot area
    and Chromium would draw nothing, 'Something went wrong with axis scaling'.)"""
    return _HEAT_MARGIN["t"] + _HEAT_MARGIN["b"] + max(120, 30 * max(1, years))


def add_trade_markers(fig: Any, trades: pd.DataFrame, *, trace: Any = None, entry_size: int = 10,
                      exit_size: int = 8, row: int = 1) -> None:
    """Entry markers (long: green triangle up, short: red triangle down) and exit crosses with their reason and
    PnL, drawn on the price pane of ``fig`` (``trace``: ``go.Scatter``, or ``go.Scattergl`` for many points)."""
    trace = trace or go.Scatter
    if not len(trades):
        return
    for side, label, symbol, color in (("long", "long entry", "triangle-up", "green"),
                                       ("short", "short entry", "triangle-down", "red")):
        frame = trades[trades.side == side]
        if len(frame):
            fig.add_trace(trace(x=frame.entry_ts, y=frame.entry_price, mode="markers", name=label,
                                marker={"symbol": symbol, "color": color, "size": entry_size}), row=row, col=1)
    closed = trades[trades.exit_reason != "open"]
    if len(closed):
        fig.add_trace(trace(
            x=closed.exit_ts, y=closed.exit_price, mode="markers", name="exit",
            marker={"symbol": "x", "color": "black", "size": exit_size},
            text=closed.exit_reason + " pnl " + closed.pnl.round(2).astype(str), hoverinfo="text+x+y",
        ), row=row, col=1)


def _thin(series: pd.Series) -> pd.Series:
    step = max(1, math.ceil(len(series) / _MAX_POINTS))
    return series.iloc[::step] if step > 1 else series


def figure(result: BacktestResult) -> go.Figure:
    """Price with entry/exit markers, equity and drawdown, as one plotly figure."""
    equity = result.equity
    drawdown = equity / np.maximum.accumulate(np.maximum(equity.to_numpy(), result.options.initial_cash)) - 1.0
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.5, 0.3, 0.2], vertical_spacing=0.03,
                        subplot_titles=("price and trades", "equity", "drawdown"))
    if result.candles is not None:
        close = _thin(result.candles["close"])
        fig.add_trace(go.Scattergl(x=close.index, y=close.values, name="close", line={"width": 1}), row=1, col=1)
    add_trade_markers(fig, result.trades, trace=go.Scattergl, entry_size=8, exit_size=7)
    eq = _thin(equity)
    fig.add_trace(go.Scattergl(x=eq.index, y=eq.values, name="equity", line={"width": 1}), row=2, col=1)
    dd = _thin(pd.Series(drawdown, index=equity.index))
    fig.add_trace(go.Scattergl(x=dd.index, y=dd.values, name="drawdown", fill="tozeroy", line={"width": 1}),
                  row=3, col=1)
    fig.update_layout(height=900, title=f"{result.strategy} {result.params} on {result.symbol} {result.timeframe}",
                      template="plotly_white", legend={"orientation": "h"})
    return fig


def render_report(result: BacktestResult) -> str:
    """The report as one HTML string."""
    equity = result.equity
    fig = figure(result)
    months = monthly_returns(equity, result.options.initial_cash)
    heat = go.Figure(go.Heatmap(
        z=(months.to_numpy() * 100.0), x=[f"{m:02d}" for m in months.columns], y=[str(y) for y in months.index],
        colorscale="RdYlGn", zmid=0.0, colorbar={"title": "%"},
        text=np.where(np.isnan(months.to_numpy()), "", np.round(months.to_numpy() * 100.0, 2).astype(str)),
        texttemplate="%{text}",
    ))
    heat.update_layout(title="monthly returns (%)", height=_heatmap_height(len(months)), template="plotly_white",
                       margin=_HEAT_MARGIN)
    # Years and months are labels, not numbers: a numeric axis would put ticks at 2023.5.
    heat.update_xaxes(type="category")
    heat.update_yaxes(type="category", autorange="reversed")
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in result.stats.items())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>THUNES backtest {html.escape(result.symbol)} {html.escape(result.timeframe)}</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td{border:1px solid #ccc;padding:2px 8px}</style></head><body>"
        + fig.to_html(include_plotlyjs=True, full_html=False)
        + heat.to_html(include_plotlyjs=False, full_html=False)
        + f"<h3>metrics</h3><table>{rows}</table>"
        + "".join(f"<p>{html.escape(line)}</p>" for line in result.risk_lines())
        + f"<p>settings hash {html.escape(result.settings_hash)}</p>"
        "</body></html>"
    )


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_report(result: BacktestResult, directory: str | Path) -> Path:
    """Write ``report_<stem>.html`` (stem: :func:`~thunes.backtest.artifacts.run_stem`, the name of the run's
    other files) into ``directory`` and return its path."""
    path = Path(directory) / f"report_{run_stem(result)}.html"
    atomic_write(path, render_report(result))
    return path
