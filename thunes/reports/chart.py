"""``thunes plot``: candlesticks with volume, the strategy's indicators and its trades, as one HTML file.

Like the backtest report, the page embeds plotly's JavaScript, so it opens offline. The price pane holds
the candles, the indicators that live on the price scale (moving averages, bands) and the trade markers
(entries as triangles, exits as crosses with their reason and P&L); indicators on another scale (RSI, a
z-score) get a pane of their own; volume is the bottom pane.

Indicators come from the strategy's optional ``indicators(candles) -> {name: Series}`` method (the
template of ``thunes strategies new`` has one); a strategy without it is plotted with its trades only.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from thunes.backtest.report import add_trade_markers
from thunes.core.errors import StrategyError
from thunes.files import atomic_write

__all__ = ["indicator_series", "render_chart", "write_chart"]


def indicator_series(strategy: Any, candles: pd.DataFrame) -> dict[str, pd.Series]:
    """The strategy's indicators on ``candles`` (``{}`` when it declares none)."""
    method = getattr(strategy, "indicators", None)
    if method is None:
        return {}
    values = method(candles)
    if not isinstance(values, Mapping):
        raise StrategyError(f"{type(strategy).__name__}.indicators() must return a mapping name -> Series")
    return {str(k): pd.Series(v, index=candles.index) if not isinstance(v, pd.Series) else v
            for k, v in values.items()}


def _on_price_scale(series: pd.Series, candles: pd.DataFrame) -> bool:
    values = series.dropna()
    if values.empty:
        return True
    low, high = float(candles["low"].min()), float(candles["high"].max())
    median = float(values.median())
    return 0.5 * low <= median <= 2.0 * high


def render_chart(candles: pd.DataFrame, *, title: str, trades: pd.DataFrame | None = None,
                 indicators: Mapping[str, pd.Series] | None = None) -> str:
    """The chart as one HTML page (plotly.js embedded)."""
    indicators = dict(indicators or {})
    overlays = {k: v for k, v in indicators.items() if _on_price_scale(v, candles)}
    panes = {k: v for k, v in indicators.items() if k not in overlays}
    rows = 2 + (1 if panes else 0)
    heights = [0.62, 0.2, 0.18] if panes else [0.78, 0.22]
    titles = ("price", "indicators", "volume") if panes else ("price", "volume")
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, row_heights=heights, vertical_spacing=0.03,
                        subplot_titles=titles)
    fig.add_trace(go.Candlestick(x=candles.index, open=candles["open"], high=candles["high"], low=candles["low"],
                                 close=candles["close"], name="candles"), row=1, col=1)
    for name, series in overlays.items():
        fig.add_trace(go.Scatter(x=series.index, y=series.values, name=name, mode="lines",
                                 line={"width": 1.2}), row=1, col=1)
    for name, series in panes.items():
        fig.add_trace(go.Scatter(x=series.index, y=series.values, name=name, mode="lines",
                                 line={"width": 1.2}), row=2, col=1)
    if trades is not None and len(trades):
        _add_trades(fig, trades, candles.index)
    up = (candles["close"] >= candles["open"]).to_numpy()
    fig.add_trace(go.Bar(x=candles.index, y=candles["volume"], name="volume", showlegend=False,
                         marker={"color": np.where(up, "rgba(38,166,154,0.6)", "rgba(239,83,80,0.6)")}),
                  row=rows, col=1)
    fig.update_layout(height=900, title=title, template="plotly_white", legend={"orientation": "h"},
                      xaxis_rangeslider_visible=False)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body>"
            + fig.to_html(include_plotlyjs=True, full_html=False) + "</body></html>")


def _add_trades(fig: go.Figure, trades: pd.DataFrame, index: pd.Index) -> None:
    start, end = index[0], index[-1]
    shown = trades[(trades.entry_ts >= start) & (trades.entry_ts <= end)]
    add_trade_markers(fig, shown)


def write_chart(path: str | Path, html_text: str) -> Path:
    return atomic_write(path, html_text)
