"""``thunes backtest``, ``thunes backtest sweep``, ``thunes backtest portfolio``.

Thin: parses options, loads candles (:func:`thunes.cli._common.load_candles`: the store, else the sample files;
``--csv``, ``--sample``, ``--source``), calls
:mod:`thunes.backtest`, prints a summary and writes artifacts to ``settings.backtest.artifacts_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from thunes.cli._common import candle_source_options, load_candles
from thunes.core.errors import ConfigError

__all__ = ["register"]

SUMMARY_KEYS = ("start", "end", "bars", "final_equity", "total_return", "cagr", "sharpe", "sortino", "calmar",
                "max_drawdown", "n_trades", "win_rate", "profit_factor", "exposure", "fees_paid", "refused_filters",
                "refused_risk", "refused_gap")
STRATEGY_HELP = ("Strategy: a name (`thunes strategies list`, built-in or in trader.strategies_dir), module:Class "
                 "or file.py:Class (default: trader.strategy).")


def _parse_kv(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} must look like name=value")
        out[key.strip()] = value.strip()
    return out


def _parse_sizing(ctx: click.Context | None, param: click.Parameter | None, value: str | None):
    """``--sizing fraction:F | quote:AMOUNT | vol:ANNUAL_VOL`` -> the engine's sizing, refused at parse time
    when nonsense (the engine's own checks: quote > 0, fraction in (0, 1], vol > 0)."""
    if value is None:
        return None
    from thunes.backtest import FixedQuote, FractionOfEquity, VolTarget

    kind, _, number = value.partition(":")
    makers = {"fraction": lambda v: FractionOfEquity(fraction=v), "quote": lambda v: FixedQuote(amount=v),
              "vol": lambda v: VolTarget(annual_vol=v)}
    try:
        v = float(number)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected fraction:F, quote:AMOUNT or vol:ANNUAL_VOL",
                                 param_hint="--sizing") from None
    if kind not in makers:
        raise click.BadParameter(f"{value!r}: kind must be fraction, quote or vol", param_hint="--sizing")
    try:
        return makers[kind](v)
    except ConfigError as exc:
        raise click.BadParameter(f"{value!r}: {exc}", param_hint="--sizing") from None


def _parse_slippage(ctx: click.Context | None, param: click.Parameter | None, value: str | None):
    """``--slippage fixed:BPS | vol:BPS,K | volume:BPS,K`` -> the engine's slippage model; negative BPS or K
    is refused at parse time (the engine's own checks)."""
    if value is None:
        return None
    from thunes.backtest import FixedSlippage, VolatilitySlippage, VolumeSlippage

    usage = f"{value!r}: expected fixed:BPS, vol:BPS,K or volume:BPS,K"
    kind, _, rest = value.partition(":")
    try:
        nums = [float(x) for x in rest.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(usage, param_hint="--slippage") from None
    try:
        if kind == "fixed" and len(nums) == 1:
            return FixedSlippage(bps=nums[0])
        if kind == "vol" and len(nums) == 2:
            return VolatilitySlippage(bps=nums[0], k=nums[1])
        if kind == "volume" and len(nums) == 2:
            return VolumeSlippage(bps=nums[0], k=nums[1])
    except ConfigError as exc:
        raise click.BadParameter(f"{value!r}: {exc}", param_hint="--slippage") from None
    raise click.BadParameter(usage, param_hint="--slippage")


def _options(app: Any, stop_loss: float | None, take_profit: float | None, trailing_stop: float | None,
             allow_short: bool, no_risk: bool, no_filters: bool, sizing: Any, slippage: Any):
    """Backtest options from the settings and the parsed flags (``sizing``/``slippage`` come parsed by
    :func:`_parse_sizing` / :func:`_parse_slippage`)."""
    from thunes.backtest import BacktestOptions

    changes: dict[str, Any] = {"stop_loss": stop_loss, "take_profit": take_profit, "trailing_stop": trailing_stop,
                               "allow_short": allow_short, "apply_filters": not no_filters}
    if no_risk:
        changes["risk"] = None
    if sizing is not None:
        changes["sizing"] = sizing
    if slippage is not None:
        changes["slippage"] = slippage
    return BacktestOptions.from_settings(app.settings.backtest, app.settings.risk, **changes)


def _strategy_class(app: Any, name: str | None) -> type:
    """The strategy class for ``--strategy``: a built-in name, one of the strategies folder, module:Class or
    file.py:Class (the one resolver every command uses)."""
    from thunes.strategies.loader import resolve_strategy

    return resolve_strategy(name or app.settings.trader.strategy, folder=app.settings.trader.strategies_dir)


def _common(f):  # noqa: ANN001, ANN202
    opts = [
        click.option("--timeframe", "-t", default=None, help="Candle timeframe (default: trader.timeframe, 1h)."),
        click.option("--stop-loss", type=float, help="Stop-loss as a fraction (0.02 = 2 %)."),
        click.option("--take-profit", type=float, help="Take-profit as a fraction."),
        click.option("--trailing-stop", type=float, help="Trailing stop as a fraction."),
        click.option("--allow-short", is_flag=True, help="Allow shorts (research only; spot is long-only)."),
        click.option("--no-risk", is_flag=True,
                     help="Research preset: no risk limits (default: the live limits of settings.risk)."),
        click.option("--no-filters", is_flag=True, help="Do not round orders through the exchange filters."),
        click.option("--sizing", callback=_parse_sizing,
                     help="fraction:F in (0, 1] (default fraction:1), quote:AMOUNT > 0 or vol:ANNUAL_VOL > 0."),
        click.option("--slippage", callback=_parse_slippage,
                     help="fixed:BPS (default: settings), vol:BPS,K or volume:BPS,K (BPS, K >= 0)."),
        click.option("--out", type=click.Path(file_okay=False), help="Artifacts folder (default: backtest.artifacts_dir)."),
    ]
    f = candle_source_options(f)
    for o in reversed(opts):
        f = o(f)
    return f


@click.group("backtest", invoke_without_command=True)
@click.option("--strategy", "-s", default=None, help=STRATEGY_HELP)
@click.option("--symbol", default=None, help="Symbol, e.g. BTC/USDT (default: trader.symbol).")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@_common
@click.option("--report", is_flag=True, help="Also write the HTML report (plotly, works offline).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.pass_context
def backtest_group(ctx: click.Context, strategy, symbol, params, timeframe, candles, stop_loss,  # noqa: ANN001
                   take_profit, trailing_stop, allow_short, no_risk, no_filters, sizing, slippage, out, report,
                   as_json) -> None:
    """Backtest one strategy on one symbol; signals fill at the next bar's open.

    \b
    Examples:
      thunes backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h --report
      thunes backtest -s sma_cross --param fast=10 --param slow=50 --since 2022-01-01 --sample
      thunes backtest -s rsi_bollinger --csv candles.csv --stop-loss 0.03 --no-risk
    """
    if ctx.invoked_subcommand is not None:
        return
    from thunes.backtest import run_backtest
    from thunes.backtest.artifacts import write_artifacts
    from thunes.backtest.report import write_report

    app = ctx.obj
    symbol = (symbol or app.settings.trader.symbol).upper()
    given_timeframe = timeframe
    timeframe = timeframe or app.settings.trader.timeframe
    strat = _strategy_class(app, strategy)(**_parse_kv(params, "--param"))
    options = _options(app, stop_loss, take_profit, trailing_stop, allow_short, no_risk, no_filters, sizing, slippage)
    frame = load_candles(app, candles, symbol=symbol, timeframe=timeframe).frame
    if candles.csv_file and given_timeframe is None and len(frame) > 1:  # a file says its own timeframe
        from thunes.backtest.engine import infer_timeframe

        timeframe = infer_timeframe(frame.index)
    click.echo(f"{strat!r} on {symbol} {timeframe}", err=True)
    result = run_backtest(frame, strat, options=options, symbol=symbol, timeframe=timeframe)
    directory = Path(out) if out else Path(app.settings.backtest.artifacts_dir)
    paths = write_artifacts(result, directory)
    if report:
        paths["report"] = write_report(result, directory)
    if as_json:
        click.echo(json.dumps(_jsonable(result.stats), default=str, indent=2))
    else:
        for key in SUMMARY_KEYS:
            value = result.stats[key]
            click.echo(f"{key:<22} {value:.6g}" if isinstance(value, float) else f"{key:<22} {value}")
        click.echo(f"{'settings_hash':<22} {result.settings_hash}")
        for line in result.risk_lines():
            click.echo(line)
    for kind, path in paths.items():
        click.echo(f"wrote {kind}: {path}", err=True)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Metrics as JSON values: timestamps as ISO text, numpy scalars as Python numbers."""
    out = {}
    for k, v in values.items():
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _parse_grid(items: tuple[str, ...]) -> dict[str, list[str]]:
    """``fast=5:50:5`` (start:stop:step, inclusive) or ``slow=20,50,100``."""
    grid: dict[str, list[str]] = {}
    for name, spec in _parse_kv(items, "--grid").items():
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) != 3:
                raise ConfigError(f"--grid {name}={spec}: a range is START:STOP:STEP")
            try:
                a, b, s = (float(x) for x in parts)
            except ValueError:
                raise click.BadParameter(f"--grid {name}={spec}: START, STOP and STEP must be numbers") from None
            if s <= 0:
                raise ConfigError(f"--grid {name}={spec}: STEP must be > 0")
            if a > b:
                raise click.BadParameter(f"--grid {name}={spec}: empty range (START > STOP)")
            vals = np.arange(a, b + s / 2, s)
            grid[name] = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in vals]
        else:
            grid[name] = [v for v in spec.split(",") if v]
    return grid


@backtest_group.command("sweep")
@click.option("--strategy", "-s", default=None, help=STRATEGY_HELP)
@click.option("--symbol", "symbols", multiple=True, help="Symbol; repeatable for several (default trader.symbol).")
@click.option("--grid", "-g", "grid", multiple=True, required=True, metavar="NAME=SPEC",
              help="Parameter values: START:STOP:STEP (inclusive) or V1,V2,...; repeatable.")
@_common
@click.option("--top", default=10, show_default=True, help="Rows to print.")
@click.option("--sort", "sort_by", default="sharpe", show_default=True, help="Metric to rank by (descending).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the top rows, the ranking and the sweep files as one JSON document.")
@click.pass_obj
def sweep_cmd(app, strategy, symbols, grid, timeframe, candles, stop_loss, take_profit,  # noqa: ANN001
              trailing_stop, allow_short, no_risk, no_filters, sizing, slippage, out, top, sort_by, as_json) -> None:
    """Run a parameter grid as one parallel kernel call and print the top results.

    \b
    Example:
      thunes backtest sweep -s sma_cross --grid fast=5:50:5 --grid slow=20:200:20 --sample --top 10
    """
    from thunes.backtest.artifacts import write_sweep
    from thunes.backtest.sweep import run_sweep

    cls = _strategy_class(app, strategy)
    values = _parse_grid(grid)
    timeframe = timeframe or app.settings.trader.timeframe
    symbols = [s.upper() for s in symbols] or [app.settings.trader.symbol]
    options = _options(app, stop_loss, take_profit, trailing_stop, allow_short, no_risk, no_filters, sizing, slippage)
    frames = {}
    for sym in symbols:
        frames[sym] = load_candles(app, candles, symbol=sym, timeframe=timeframe).frame
    table = run_sweep(frames, cls, values, options, timeframe=timeframe, progress=True)
    click.echo(f"risk: {options.risk_description()} (per-combination counts in the sweep CSV)", err=True)
    if sort_by not in table.columns:
        raise ConfigError(f"--sort {sort_by!r} is not a metric; choose among {', '.join(table.columns)}")
    directory = Path(out) if out else Path(app.settings.backtest.artifacts_dir)
    written = []
    for sym in symbols:
        path = write_sweep(table[table.symbol == sym], directory, symbol=sym, timeframe=timeframe, strategy=cls.name)
        written.append(str(path))
        click.echo(f"wrote sweep: {path}", err=True)
    if table.attrs.get("skipped"):
        click.echo(f"skipped {table.attrs['skipped']} invalid combination(s)", err=True)
    params = [c for c in table.columns if c in cls.params_spec]
    cols = ["symbol", *params, "sharpe", "total_return", "max_drawdown", "n_trades", "win_rate", "final_equity"]
    if sort_by not in cols:
        cols.append(sort_by)
    best = table.sort_values(sort_by, ascending=False).head(top)[cols]
    if as_json:
        click.echo(json.dumps({
            "strategy": cls.name, "timeframe": timeframe, "symbols": symbols, "combinations": len(table),
            "skipped": int(table.attrs.get("skipped", 0)), "sort": sort_by, "risk": options.risk_description(),
            "top": [_jsonable(row) for row in best.to_dict(orient="records")], "sweeps": written,
        }, default=str, indent=2))
        return
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        click.echo(best.to_string(index=False))


@backtest_group.command("portfolio")
@click.option("--strategy", "-s", default=None, help=STRATEGY_HELP)
@click.option("--symbol", "symbols", multiple=True, required=True, help="Symbol; repeat for each one.")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@_common
@click.option("--report", is_flag=True, help="Also write the HTML report (equity, drawdown, monthly returns).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the metrics, the per-symbol trades and the files written as one JSON document.")
@click.pass_obj
def portfolio_cmd(app, strategy, symbols, params, timeframe, candles, stop_loss, take_profit,  # noqa: ANN001
                  trailing_stop, allow_short, no_risk, no_filters, sizing, slippage, out, report, as_json) -> None:
    """Backtest several symbols sharing one cash balance (risk limits count positions across them).

    \b
    Example:
      thunes backtest portfolio --sample -t 5m --symbol BTC/USDT --symbol ETH/USDT --symbol SOL/USDT \\
          --symbol XRP/USDT --symbol DOGE/USDT --symbol LTC/USDT --sizing fraction:0.3
    """
    from thunes.backtest.artifacts import write_artifacts
    from thunes.backtest.portfolio import run_portfolio
    from thunes.backtest.report import write_report

    if candles.csv_file:
        raise ConfigError("--csv holds one symbol; a portfolio loads from the store or --sample")
    strat = _strategy_class(app, strategy)(**_parse_kv(params, "--param"))
    timeframe = timeframe or app.settings.trader.timeframe
    options = _options(app, stop_loss, take_profit, trailing_stop, allow_short, no_risk, no_filters, sizing, slippage)
    frames = {}
    for sym in (s.upper() for s in symbols):
        frames[sym] = load_candles(app, candles, symbol=sym, timeframe=timeframe).frame
    result = run_portfolio(frames, strat, options=options, timeframe=timeframe)
    directory = Path(out) if out else Path(app.settings.backtest.artifacts_dir)
    paths = write_artifacts(result, directory)
    if report:
        paths["report"] = write_report(result, directory)
    by_symbol = result.trades.groupby("symbol").pnl.agg(["count", "sum"]).rename(
        columns={"count": "trades", "sum": "pnl"})
    if as_json:
        click.echo(json.dumps({
            "stats": _jsonable(result.stats), "settings_hash": result.settings_hash, "risk": result.risk_lines(),
            "by_symbol": {sym: {"trades": int(row.trades), "pnl": float(row.pnl)} for sym, row in by_symbol.iterrows()},
            "artifacts": {kind: str(path) for kind, path in paths.items()},
        }, default=str, indent=2))
    else:
        for key in SUMMARY_KEYS:
            value = result.stats[key]
            click.echo(f"{key:<22} {value:.6g}" if isinstance(value, float) else f"{key:<22} {value}")
        for line in result.risk_lines():
            click.echo(line)
        click.echo(by_symbol.to_string())
    for kind, path in paths.items():
        click.echo(f"wrote {kind}: {path}", err=True)


def register(root: click.Group) -> None:
    root.add_command(backtest_group)
