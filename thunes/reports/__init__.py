"""Reports people look at: charts of candles, indicators and trades (self-contained HTML, offline)."""

from thunes.reports.chart import indicator_series, render_chart, write_chart

__all__ = ["indicator_series", "render_chart", "write_chart"]
