"""``thunes plot``: a candlestick chart of a strategy's run (offline HTML). Thin: loads candles, runs the
backtest, hands candles, indicators and trades to :mod:`thunes.reports.chart`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thunes.cli._common import candle_options, load_candles, parse_params

__all__ = ["register"]


@click.command("plot")
@candle_options
@click.option("--strategy", "-s", default=None,
              help="Strategy whose indicators and trades are drawn: a name, module:Class or file.py:Class "
                   "(default: trader.strategy).")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--last", "last", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Draw the last N candles (the backtest runs on all loaded ones).")
@click.option("--no-trades", is_flag=True, help="Candles and indicators only (no backtest).")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="HTML file to write (default: <backtest.artifacts_dir>/chart_<strategy>_<SYMBOL>_<tf>.html).")
@click.pass_obj
def plot_cmd(app: Any, symbol, timeframe, candles, strategy, params, last,  # noqa: ANN001
             no_trades, out) -> None:
    """Chart candlesticks with volume, the strategy's indicators and its trades, as a self-contained HTML
    page (plotly embedded: opens offline in any browser).

    \b
    Examples:
      thunes plot --sample --strategy sma_cross --param fast=10 --param slow=50
      thunes plot --symbol ETH/USDT --timeframe 4h --since 2024-01-01 --last 500 --out eth.html
      thunes plot --csv candles.csv --strategy strategies/breakout.py:Breakout --no-trades
    """
    from thunes.backtest import BacktestOptions, run_backtest
    from thunes.reports.chart import indicator_series, render_chart, write_chart
    from thunes.strategies.loader import resolve_strategy

    settings = app.settings
    cls = resolve_strategy(strategy or settings.trader.strategy, folder=settings.trader.strategies_dir)
    strat = cls(**parse_params(params))
    loaded = load_candles(app, candles, symbol=symbol, timeframe=timeframe)
    frame, source = loaded.frame, loaded.source
    trades = None
    if not no_trades:
        options = BacktestOptions.from_settings(settings.backtest, settings.risk)
        trades = run_backtest(frame, strat, options=options, symbol=symbol, timeframe=timeframe).trades
    indicators = {k: v.iloc[-last:] for k, v in indicator_series(strat, frame).items()}
    shown = frame.iloc[-last:]
    title = f"{strat!r} on {symbol} {timeframe}"
    page = render_chart(shown, title=title, trades=trades, indicators=indicators)
    stem = f"chart_{cls.name}_{symbol.replace('/', '').upper()}_{timeframe}.html"
    path = write_chart(Path(out) if out else Path(settings.backtest.artifacts_dir) / stem, page)
    n_trades = 0 if trades is None else int((trades.entry_ts >= shown.index[0]).sum())
    click.echo(f"{len(shown):,} candles from {source}, {len(indicators)} indicator(s), {n_trades} trade(s) shown",
               err=True)
    click.echo(f"wrote {path}")


def register(root: click.Group) -> None:
    root.add_command(plot_cmd)
