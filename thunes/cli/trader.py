"""``thunes paper``, ``thunes live`` and ``thunes parity``: thin commands over :mod:`thunes.services.trading`.

Paper trading defaults to the local exchange started in-process, replaying candles at ``--replay-speed``:
the store, else the real sample files (the rule of :mod:`thunes.data.sources`; ``--sample`` or ``--source
synthetic`` to run without data); ``--testnet`` trades the
Binance Spot Testnet instead. Live trading needs ``--live --i-understand-the-risks``, API keys from the
environment, keys that cannot withdraw (checked where the exchange reports it) and runs with small
position limits unless told otherwise: the rules of :mod:`thunes.services.safety`, enforced by the service.

Every run of a mode shares that mode's operator state, ``<trader.state_dir>/<mode>/risk_state.json``
(kill-switch, reduce-only, what ``thunes risk`` writes), and the audit trail at settings ``audit.path``
(what ``thunes audit verify`` checks by default). A local paper run keeps its journal, ledger and candles
in its run folder (each replay is a fresh exchange account) and records that folder in
``<trader.state_dir>/local/latest_run.json`` so that ``thunes risk status`` finds it.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from thunes.cli import pass_app
from thunes.cli._common import (
    CandleSourceArgs,
    at_most_once,
    candle_source_options,
    load_candles,
    parse_params,
)
from thunes.core.errors import ConfigError
from thunes.services.safety import LIVE_DEFAULT_MAX_QUOTE

__all__ = ["live", "paper", "parity", "register"]


def _strategy(name: str, params: tuple[str, ...]) -> Any:
    from thunes.strategies import get_strategy

    return get_strategy(name)(**parse_params(params))


@contextmanager
def _stop_on_signals(trader: Any) -> Iterator[None]:
    """SIGINT/SIGTERM ask the trader to stop after the current candle (no new order, state flushed)."""
    def handler(signum: int, _frame: Any) -> None:
        click.echo(f"\n{signal.Signals(signum).name}: stopping after the current candle...", err=True)
        trader.request_stop(f"signal {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _echo_decision(d: Any, *, err: bool = False) -> None:
    """One line per order decision: the signal bar (its close), the side, what filled and why (on stderr
    when stdout carries JSON)."""
    from thunes.live.trader import ALREADY_PROCESSED
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(d.bar_ts / 1000))
    if d.action in ("buy", "sell") and d.filled_qty > 0:
        click.echo(f"  signal bar {when}  {d.action.upper():4s} filled {d.filled_qty} @ {d.avg_price:.2f}  "
                   f"[{d.status}] {d.reason}", err=err)
    elif d.action in ("buy", "sell"):
        state = f"[{d.status}] " if d.status is not None else ""
        click.echo(f"  signal bar {when}  {d.action.upper():4s} not filled: {state}{d.reason}", err=err)
    elif d.action == "skip" and d.reason != ALREADY_PROCESSED:
        click.echo(f"  signal bar {when}  skipped: {d.reason}", err=err)


def _echo_json(value: Any) -> None:
    """One JSON object on stdout (the only thing there with --json; progress and logs go to stderr)."""
    click.echo(json.dumps(value, indent=2, default=str))


def _number(value: Any) -> float | None:
    """A float for JSON; NaN (an open trade's exit) becomes null."""
    return None if value is None or value != value else float(value)


def _console() -> Any:
    """A rich console; piped output (make, CI, a log file) gets 120 columns instead of rich's 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 120))


def _print_summary(result: Any) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"round trips in {result.ledger_path} (fill times)")
    for col in ("entry", "exit", "qty", "entry price", "exit price", "pnl (quote)", "return %"):
        table.add_column(col, justify="right")
    num = lambda v, digits: "-" if v != v else f"{v:.{digits}f}"  # noqa: E731 - NaN (open trade) prints "-"
    if result.round_trips is not None:
        for t in result.round_trips.itertuples():
            table.add_row(str(t.entry_ts)[:16], "open" if str(t.exit_ts) == "NaT" else str(t.exit_ts)[:16],
                          f"{t.qty:.6f}", f"{t.entry_price:.2f}", num(t.exit_price, 2), num(t.pnl, 4),
                          num(t.return_pct, 3))
    console.print(table)
    report = result.report
    lat = sorted(report.latencies_s)
    lat_txt = (f"; candle->order p50 {lat[len(lat) // 2] * 1000:.2f} ms, max {lat[-1] * 1000:.2f} ms"
               if lat else "")
    click.echo(f"bars {report.bars}, orders {report.orders}, fills {report.fills}, skipped {report.skipped}, "
               f"reconciliations {report.reconciles} ({'ok' if result.reconcile_ok else 'see audit'})"
               f"{lat_txt}; stopped: {report.stop_reason or 'end'}")
    if report.orders == 0 and report.bars:
        click.echo(f"no order in {report.bars} candles: the strategy gave no entry signal in this span; a shorter "
                   "--timeframe (5m: 360 candles in 3 minutes at 600x) or a longer --duration gives it more candles")


def _summary_json(result: Any, audit_path: Path, candles_source: str | None) -> dict[str, Any]:
    """What :func:`_print_summary` prints, as one JSON object."""
    report = result.report
    lat = sorted(report.latencies_s)
    trips = result.round_trips
    rows = [] if trips is None else [
        {"entry_ts": str(t.entry_ts), "exit_ts": None if str(t.exit_ts) == "NaT" else str(t.exit_ts),
         "qty": _number(t.qty), "entry_price": _number(t.entry_price), "exit_price": _number(t.exit_price),
         "pnl": _number(t.pnl), "return_pct": _number(t.return_pct)} for t in trips.itertuples()]
    closed = [r for r in rows if r["exit_ts"] is not None]
    return {
        "mode": result.mode, "symbol": result.symbol, "timeframe": result.timeframe, "strategy": result.strategy,
        "candles": candles_source, "bars": report.bars, "orders": report.orders, "fills": report.fills,
        "skipped": report.skipped, "reconciliations": report.reconciles, "reconcile_ok": result.reconcile_ok,
        "stopped": report.stop_reason or "end", "trades": len(rows), "closed_trades": len(closed),
        "pnl": float(sum(r["pnl"] or 0.0 for r in closed)), "round_trips": rows,
        "latency_ms": {"p50": lat[len(lat) // 2] * 1000, "max": lat[-1] * 1000} if lat else None,
        "run_dir": None if result.run_dir is None else str(result.run_dir), "ledger": str(result.ledger_path),
        "audit": str(audit_path),
    }


def _notify(line: str) -> None:
    click.echo(line, err=True)


# ------------------------------------------------------------------------------------------------------
# paper
# ------------------------------------------------------------------------------------------------------
@click.command()
@click.option("--strategy", "strategy_name", default=None, help="Strategy name (default: settings trader.strategy).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--symbol", default=None, multiple=True, callback=at_most_once,
              help="Unified symbol (default: settings trader.symbol); one symbol (several pairs: thunes bot run).")
@click.option("--timeframe", default=None, multiple=True, callback=at_most_once,
              help="Candle timeframe (default: settings trader.timeframe).")
@click.option("--replay-speed", default=600.0, show_default=True, type=float,
              help="Local exchange only: market seconds per wall second (600: a 1h bar every 6 s).")
@click.option("--duration", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many wall seconds.")
@click.option("--bars", "max_bars", default=None, type=click.IntRange(min=1),
              help="Stop after this many closed candles.")
@click.option("--testnet", is_flag=True, help="Trade the Binance Spot Testnet (keys from THUNES_EXCHANGE__API_KEY/"
                                              "THUNES_EXCHANGE__API_SECRET) instead of the local exchange.")
@candle_source_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Local runs: folder for ledger, journal, candles (default: artifacts/paper/<time>); the audit "
                   "trail is settings audit.path and the kill-switch <trader.state_dir>/local, shared by every run.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run's summary (orders, fills, round trips, PnL, files) as one JSON object on stdout.")
@pass_app
def paper(app: Any, strategy_name: str | None, params: tuple[str, ...], symbol: str | None, timeframe: str | None,
          replay_speed: float, duration: float | None, max_bars: int | None, testnet: bool, candles: CandleSourceArgs,
          out_dir: str | None, as_json: bool) -> None:
    """Paper-trade a strategy: the local exchange (default) replaying candles, or the Spot Testnet.

    The local exchange replays the candle store, else the real sample files (--sample: synthetic candles
    where there is none; --source synthetic: always).

    \b
    Examples:
      thunes paper --timeframe 5m --replay-speed 600 --duration 180   # 360 candles in 3 minutes
      thunes paper --strategy sma_cross --param fast=5 --param slow=20 --timeframe 5m --bars 300 --sample
      thunes paper --sample --bars 50 --replay-speed 36000 --json      # the summary as JSON
      thunes paper --testnet                                          # Spot Testnet, until Ctrl-C

    Every fill is printed and written to the ledger (CSV); Ctrl-C or SIGTERM stops after the current
    candle. THUNES_EXCHANGE__BASE_URL / THUNES_EXCHANGE__WS_URL point --testnet at another host.
    """
    from thunes.services.trading import PaperRequest, RemoteRequest, run_paper, run_remote

    if replay_speed <= 0:
        raise click.BadParameter("must be > 0", param_hint="--replay-speed")
    decision = (lambda d: _echo_decision(d, err=True)) if as_json else _echo_decision
    hooks = dict(notify=_notify, on_decision=decision, stop_hook=_stop_on_signals)
    source = None
    if testnet:
        if candles != CandleSourceArgs(db=candles.db):
            raise click.UsageError("--testnet trades the exchange's own candles: --since, --until, --csv, --sample "
                                   "and --source are for the local exchange")
        result = run_remote(app.settings, RemoteRequest(
            mode="testnet", strategy=strategy_name, params=parse_params(params), symbol=symbol, timeframe=timeframe,
            duration_s=duration, max_bars=max_bars, db=candles.db), **hooks)
    else:
        symbol = symbol or app.settings.trader.symbol
        timeframe = timeframe or app.settings.trader.timeframe
        loaded = load_candles(app, candles, symbol=symbol, timeframe=timeframe)
        source = loaded.source
        result = run_paper(app.settings, PaperRequest(
            strategy=strategy_name, params=parse_params(params), symbol=symbol, timeframe=timeframe,
            replay_speed=replay_speed, duration_s=duration, max_bars=max_bars, db=candles.db,
            out_dir=Path(out_dir) if out_dir else None),
            candles=loaded, **hooks)
    if as_json:
        _echo_json(_summary_json(result, Path(app.settings.audit.path), source))
    else:
        _print_summary(result)


# ------------------------------------------------------------------------------------------------------
# testnet / live
# ------------------------------------------------------------------------------------------------------
@click.command()
@click.option("--live", "live_flag", is_flag=True, help="Required: trade real money on the real exchange.")
@click.option("--i-understand-the-risks", "understood", is_flag=True, help="Required: you accept real losses.")
@click.option("--strategy", "strategy_name", default=None, help="Strategy name (default: settings trader.strategy).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--symbol", default=None, multiple=True, callback=at_most_once,
              help="Unified symbol (default: settings trader.symbol); one symbol (several pairs: thunes bot run).")
@click.option("--timeframe", default=None, multiple=True, callback=at_most_once,
              help="Candle timeframe (default: settings trader.timeframe).")
@click.option("--max-quote", default=None, type=str,
              help=f"Cap on quote per trade and position size (default {LIVE_DEFAULT_MAX_QUOTE}).")
@click.option("--duration", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many wall seconds.")
@click.option("--bars", "max_bars", default=None, type=click.IntRange(min=1),
              help="Stop after this many closed candles.")
@click.option("--db", default=None, metavar="URL", help="Candle store for the streamed candles (default: settings).")
@pass_app
def live(app: Any, live_flag: bool, understood: bool, strategy_name: str | None, params: tuple[str, ...],
         symbol: str | None, timeframe: str | None, max_quote: str | None, duration: float | None,
         max_bars: int | None, db: str | None) -> None:
    """Trade real money on Binance Spot. Needs --live --i-understand-the-risks.

    \b
    Keys come from THUNES_EXCHANGE__API_KEY / THUNES_EXCHANGE__API_SECRET and must not allow withdrawals
    (checked through Binance's API restrictions where it answers). Position size is capped at
    --max-quote (default 25 quote) unless raised explicitly. THUNES_EXCHANGE__BASE_URL and
    THUNES_EXCHANGE__WS_URL override the exchange's addresses (every endpoint follows them). Example:
      thunes live --live --i-understand-the-risks --strategy sma_cross --max-quote 20
    """
    from thunes.services.safety import LiveConfirmation, require_live_confirmation
    from thunes.services.trading import RemoteRequest, run_remote

    confirmation = LiveConfirmation(live=live_flag, understood=understood)
    try:
        require_live_confirmation(confirmation)  # the service checks it again; here it is a usage error (exit 2)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    cap = Decimal(max_quote) if max_quote is not None else None
    if cap is not None and cap <= 0:
        raise click.BadParameter("must be > 0", param_hint="--max-quote")
    result = run_remote(app.settings, RemoteRequest(
        mode="live", strategy=strategy_name, params=parse_params(params), symbol=symbol, timeframe=timeframe,
        duration_s=duration, max_bars=max_bars, db=db, confirmation=confirmation, max_quote=cap),
        notify=_notify, on_decision=_echo_decision, stop_hook=_stop_on_signals)
    _print_summary(result)


# ------------------------------------------------------------------------------------------------------
# parity
# ------------------------------------------------------------------------------------------------------
@click.command()
@click.option("--strategy", "strategy_name", default=None, help="Strategy name (default: settings trader.strategy).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--symbol", default=None, multiple=True, callback=at_most_once,
              help="Unified symbol (default: settings trader.symbol); one symbol (several pairs: thunes bot run).")
@click.option("--timeframe", default=None, multiple=True, callback=at_most_once,
              help="Candle timeframe (default: settings trader.timeframe).")
@click.option("--bars", default=300, show_default=True, type=click.IntRange(min=1), help="Closed candles to replay.")
@candle_source_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Keep ledger, audit and journal here (default: a temporary folder; a previous replay's "
                   "files there are replaced).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the verdict, both trade counts and every round trip as one JSON object on stdout.")
@pass_app
def parity(app: Any, strategy_name: str | None, params: tuple[str, ...], symbol: str | None, timeframe: str | None,
           bars: int, candles: CandleSourceArgs, out_dir: str | None, as_json: bool) -> None:
    """Replay the last --bars candles through the paper trader and the backtester; compare trade by trade.

    \b
    Prints one row per round trip: entry/exit times, both returns, their difference and its cause
    (identical, fees, slippage, signal timing, rejected, missed, data gap). Exit code 1 when entries or
    exits differ or a return differs by more than the modelled costs. Candles: the store, else the real
    sample files (--sample, --source synthetic, --csv FILE to choose). Examples:
      thunes parity --strategy sma_cross --param fast=5 --param slow=20 --bars 400
      thunes parity --sample --bars 200 --json
    """
    from rich.table import Table
    from tqdm import tqdm

    from thunes.live.parity import ReplaySpec, run_parity

    strategy = _strategy(strategy_name or app.settings.trader.strategy, params)
    symbol = symbol or app.settings.trader.symbol
    timeframe = timeframe or app.settings.trader.timeframe
    loaded = load_candles(app, candles, symbol=symbol, timeframe=timeframe)
    frame, source = loaded.frame, loaded.source
    warm = max(4 * strategy.warmup, strategy.warmup + 250)
    frame = frame.iloc[-(warm + bars + 1):]
    if len(frame) < warm + 2:
        raise ConfigError(f"{source}: {len(frame)} candles, need more than {warm + 1}")
    workdir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="thunes-parity-"))
    click.echo(f"parity on {symbol} {timeframe} ({source}), {len(frame) - warm - 1} bars, {strategy!r}", err=True)
    with tqdm(total=len(frame) - warm - 1, desc="paper replay", unit="bar", file=sys.stderr) as bar:
        spec = ReplaySpec(symbol=symbol, timeframe=timeframe, quote_per_trade=app.settings.trader.quote_per_trade,
                          risk_settings=app.settings.risk, start_bar=warm)
        report, paper_run, _ = run_parity(frame, strategy, spec, workdir=workdir,
                                          progress=lambda done, total: bar.update(done - bar.n))
    verdict = "PARITY OK" if report.ok else "PARITY BROKEN"
    if as_json:
        rows = [{"entry_ts": None if r.entry_ts is None else str(r.entry_ts),
                 "exit_ts": None if r.exit_ts is None or str(r.exit_ts) == "NaT" else str(r.exit_ts),
                 "backtest_return_pct": _number(r.bt_return), "paper_return_pct": _number(r.paper_return),
                 "diff_pct": None if r.bt_return is None or r.paper_return is None
                 else float(r.paper_return - r.bt_return),
                 "cause": r.cause, "within_tolerance": bool(r.within_tolerance)} for r in report.rows]
        _echo_json({"match": report.ok, "verdict": verdict, "timing_identical": report.timing_identical,
                    "backtest_trades": report.backtest_trades, "paper_trades": report.paper_trades,
                    "tolerance_pct": report.tolerance, "symbol": symbol, "timeframe": timeframe,
                    "strategy": repr(strategy), "bars": len(frame) - warm - 1, "candles": source,
                    "differences": [r for r in rows if r["cause"] != "identical"],
                    "round_trips": rows, "workdir": str(workdir)})
        if not report.ok:
            sys.exit(1)
        return
    table = Table(title=f"backtest vs paper ({report.backtest_trades} vs {report.paper_trades} trades; "
                        f"tolerance {report.tolerance:.3f} % per trade)")
    for col in ("entry", "exit", "backtest %", "paper %", "diff %", "cause", "ok"):
        table.add_column(col, justify="right")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in report.rows:
        diff = None if r.bt_return is None or r.paper_return is None else r.paper_return - r.bt_return
        table.add_row(str(r.entry_ts)[:16], "-" if r.exit_ts is None or str(r.exit_ts) == "NaT" else str(r.exit_ts)[:16],
                      fmt(r.bt_return), fmt(r.paper_return), fmt(diff), r.cause, "yes" if r.within_tolerance else "NO")
    _console().print(table)
    click.echo(f"{verdict}: entries/exits identical: {report.timing_identical}; ledger and audit in {workdir}")
    if not report.ok:
        sys.exit(1)


def register(root: click.Group) -> None:
    root.add_command(paper)
    root.add_command(live)
    root.add_command(parity)
