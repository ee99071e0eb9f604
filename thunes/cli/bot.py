"""``thunes bot``: run a multi-pair bot and steer it. Thin: parse, call :mod:`thunes.services`, print.

``thunes bot run`` trades every pair of ``bot.toml`` (or ``--pairs``) in one process against the local
exchange (default, offline: the pairs' candles replayed in lockstep), the Spot Testnet or live. The other
commands talk to the running bot through its control socket (``<state_dir>/control.json``) or, when it
is not running, read its state folder. See docs/bot.md.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from thunes.cli import pass_app
from thunes.cli._common import parse_params

__all__ = ["bot_group", "register"]

_LATEST = Path("artifacts/bot/LATEST")


def _state_dir(state_dir: str | None, config: str | None) -> Path:
    """--state-dir > the config's state_dir > the folder of the last `thunes bot run` (artifacts/bot/LATEST)."""
    if state_dir:
        return Path(state_dir)
    if config:
        from thunes.live.config import load_bot_settings

        return Path(load_bot_settings(config).state_dir)
    if _LATEST.exists():
        return Path(_LATEST.read_text(encoding="utf-8").strip())
    from thunes.live.config import BotSettings

    return Path(BotSettings().state_dir)


def _where(fn):  # noqa: ANN001, ANN201 - click decorator
    fn = click.option("--state-dir", default=None, type=click.Path(file_okay=False),
                      help="The bot's state folder (default: the config's, else the last `bot run`).")(fn)
    return click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
                        help="bot.toml (its state_dir is used).")(fn)


@click.group("bot")
def bot_group() -> None:
    """A long-running multi-pair trading bot: run it, watch it, steer it (docs/bot.md).

    \b
    Example:
      thunes bot run --bars 300
      thunes bot status
    """


def _on_signal(bot: Any) -> Any:
    def handler(signum: int, _frame: Any) -> None:
        click.echo(f"\n{signal.Signals(signum).name}: stopping after the current candle...", err=True)
        bot.request_stop(f"signal {signal.Signals(signum).name}")
    return handler


def _echo_decision(key: Any, d: Any) -> None:
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(d.bar_ts / 1000))
    if d.action in ("buy", "sell") and d.filled_qty > 0:
        click.echo(f"  {key.symbol:10s} {when}  {d.action.upper():4s} filled {d.filled_qty} @ {d.avg_price:.6g}  "
                   f"[{d.status}] {d.reason}")
    elif d.action in ("buy", "sell"):
        click.echo(f"  {key.symbol:10s} {when}  {d.action.upper():4s} not sent: {d.reason}")


@bot_group.command("run")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="bot.toml (docs/bot.md).")
@click.option("--pairs", default=None, help="Comma-separated pairs (overrides the config), e.g. BTC/USDT,ETH/USDT.")
@click.option("--strategy", "strategy_name", default=None, help="Strategy for every pair without an assignment.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--timeframe", default=None, help="Candle timeframe of every pair without an assignment.")
@click.option("--exchange", "exchange", type=click.Choice(["local", "testnet", "live"]), default=None,
              help="local (default, offline replay), testnet or live.")
@click.option("--bars", default=None, type=int, help="Local replay: candles per pair to replay.")
@click.option("--speed", default=None, type=float,
              help="Local replay: market seconds per wall second (0: as fast as the bot goes).")
@click.option("--synthetic", is_flag=True, help="Local replay: generated markets instead of stored/sample candles.")
@click.option("--duration", default=None, type=float, help="Stop after this many wall seconds.")
@click.option("--candles", "max_candles", default=None, type=int, help="Stop after this many candles (all pairs).")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help="State folder (default: the config's; a new artifacts/bot/<time> for the in-process "
                   "local exchange).")
@click.option("--live", "live_flag", is_flag=True, help="Live only: required, trades real money.")
@click.option("--i-understand-the-risks", "understood", is_flag=True, help="Live only: required, you accept losses.")
@click.option("--max-quote", default=None, type=str, help="Live: cap on quote per trade and position (default 25).")
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: any free port); "
                   "docs/observability.md.")
@click.option("--quiet", is_flag=True, help="Print the summary only, not every order.")
@click.option("--telegram", "telegram", is_flag=True,
              help="Also run the Telegram control bot and alerts (docs/telegram.md; needs THUNES_TELEGRAM__TOKEN).")
@click.option("--telegram-config", default=None, type=click.Path(dir_okay=False),
              help="telegram.toml with users, roles and alert modes (default: $THUNES_TELEGRAM_CONFIG).")
@click.option("--api", "with_api", is_flag=True,
              help="Also serve the REST API on this bot (THUNES_API__* settings; docs/api.md).")
@pass_app
def run_cmd(app: Any, config: str | None, pairs: str | None, strategy_name: str | None, params: tuple[str, ...],
            timeframe: str | None, exchange: str | None, bars: int | None, speed: float | None, synthetic: bool,
            duration: float | None, max_candles: int | None, state_dir: str | None, live_flag: bool,
            understood: bool, max_quote: str | None, metrics_port: int | None, quiet: bool, telegram: bool,
            telegram_config: str | None, with_api: bool) -> None:
    """Trade several pairs in one process with one risk manager.

    \b
    Examples:
      thunes bot run --bars 300                                  # 4 pairs, local exchange, real 5m candles
      thunes bot run --pairs BTC/USDT,ETH/USDT,SOL/USDT --strategy sma_cross --param fast=5 --param slow=20
      thunes bot run --config bot.toml                           # pairs, assignments, risk, jobs from a file
      thunes bot run --exchange testnet --config bot.toml        # Spot Testnet, until Ctrl-C
      thunes bot run --exchange live --live --i-understand-the-risks --config bot.toml
      thunes bot run --config bot.toml --telegram --telegram-config telegram.toml

    Ctrl-C or SIGTERM stops after the current candle. While it runs, `thunes bot status|pause|resume|stop|
    force-exit SYMBOL|reload|jobs` steer it from another terminal.
    """
    from thunes.live.config import load_bot_settings
    from thunes.services.bot import BotRunRequest, run_bot
    from thunes.services.safety import LiveConfirmation

    overrides: dict[str, Any] = {"exchange": exchange, "strategy": strategy_name, "timeframe": timeframe,
                                 "state_dir": state_dir}
    if pairs:
        overrides["pairs"] = [p.strip() for p in pairs.split(",") if p.strip()]
    if params:
        overrides["params"] = parse_params(params)
    settings = load_bot_settings(config, **overrides)
    local = settings.local.model_copy(update={k: v for k, v in
                                              {"bars": bars, "speed": speed, "synthetic": synthetic or None}.items()
                                              if v is not None})
    settings = settings.model_copy(update={"local": local})
    if settings.exchange == "local" and settings.local.url is None and "state_dir" not in settings.model_fields_set:
        settings = settings.model_copy(update={"state_dir": Path("artifacts/bot") / time.strftime("%Y%m%d-%H%M%S")})
    cap = Decimal(max_quote) if max_quote is not None else None
    request = BotRunRequest(settings=settings, max_candles=max_candles, duration_s=duration,
                            confirmation=LiveConfirmation(live=live_flag, understood=understood), max_quote=cap,
                            metrics_port=metrics_port)
    pairs_txt = ", ".join(f"{a.symbol} {a.timeframe} {a.strategy}" for a in settings.resolved())
    click.echo(f"bot on {settings.exchange}: {pairs_txt}; state {settings.state_dir}", err=True)

    def on_session(session: Any) -> None:
        if not quiet:
            session.bot.on_decision = _echo_decision
        for sym, src in session.sources.items():
            click.echo(f"  {sym}: {src}", err=True)
        url = session.serve_metrics()
        if url is not None:
            click.echo(f"  metrics: {url}", err=True)
        _LATEST.parent.mkdir(parents=True, exist_ok=True)
        _LATEST.write_text(str(settings.state_dir) + "\n", encoding="utf-8")
        if telegram:  # started before the first candle: a bad token stops the run before it trades
            from thunes.ops.telegram import start_control

            extras["telegram"] = start_control(
                app.settings, state_dir=settings.state_dir, risk_settings=settings.risk_settings(app.settings.risk),
                config_path=telegram_config, bus=session.bot.bus, log_path=Path(app.settings.logging.dir) / "bot.jsonl")
        for s in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C / SIGTERM: stop after the current candle
            previous[s] = signal.signal(s, _on_signal(session.bot))

    previous: dict[Any, Any] = {}
    extras: dict[str, Any] = {}
    api_server = _api_server(app) if with_api else None
    if api_server is not None:
        def on_session_with_api(session: Any, _inner: Any = on_session) -> None:
            _inner(session)
            api_server.server.config.app.state.ctx.runner.attach(session)
            api_server.start()
            base = f"http://{api_server.server.config.host}:{api_server.port}"
            click.echo(f"  API on {base}/api/v1, dashboard on {base}/ui/", err=True)
        on_session = on_session_with_api  # noqa: F811
    try:
        result = run_bot(request, app.settings, on_session=on_session)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if "telegram" in extras:
            extras["telegram"].stop()  # after the bot's last events: the "stopped" alert goes out
        if api_server is not None:
            api_server.stop()
    _print_run(result)


def _api_server(app: Any) -> Any:
    """The REST API (thunes.api) for ``--api``, built before the bot so a bad API setting stops nothing."""
    from thunes.cli.api import _api_settings

    api = _api_settings(app)
    from thunes.api import ApiContext, ServerThread

    return ServerThread(ApiContext(app.settings, api))


def _print_run(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from thunes.services.reports import performance, round_trips

    r = result.report
    perf = {p.symbol: p for p in performance(result.state_dir / "ledger.csv")}
    trips = round_trips(result.state_dir / "ledger.csv")
    table = Table(title=f"bot run in {result.state_dir}")
    for col in ("pair", "candles", "orders", "round trips", "realised pnl", "avg return %"):
        table.add_column(col, justify="right")
    for p in result.status.pairs:
        pp = perf.get(p.symbol)
        table.add_row(p.symbol, str(p.bars_processed), str(r.orders_by_symbol.get(p.symbol, 0)),
                      str(sum(1 for t in trips if t.symbol == p.symbol)),
                      f"{pp.realised_pnl:.4f}" if pp else "-",
                      f"{pp.avg_return_pct:.3f}" if pp and pp.avg_return_pct is not None else "-")
    console = Console()
    (console if console.is_terminal else Console(width=120)).print(table)
    lat = sorted(r.latencies_s)
    lat_txt = f"; candle->order p50 {lat[len(lat) // 2] * 1000:.2f} ms, max {lat[-1] * 1000:.2f} ms" if lat else ""
    pos = ", ".join(f"{p.symbol} {p.qty}" for p in result.status.positions) or "none"
    click.echo(f"candles {r.candles}, orders {r.orders} on {len(r.orders_by_symbol)} pairs, fills {r.fills}, "
               f"denied by risk {r.denied}, reconciliations {r.reconciles} ({r.discrepancies} discrepancies)"
               f"{lat_txt}; open positions: {pos}; stopped: {r.stop_reason or 'end'}")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@bot_group.command("status")
@_where
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status_cmd(config: str | None, state_dir: str | None, as_json: bool) -> None:
    """Positions, open orders, balances, PnL today/total, risk state of the bot.

    \b
    Example:
      thunes bot status
      thunes bot status --state-dir artifacts/bot/20261205-0800 --json
    """
    from thunes.services.bot import bot_status

    where = _state_dir(state_dir, config)
    res = bot_status(where)
    if as_json:
        _echo_json({"state_dir": str(where), "running": res.running, **res.status})
        return
    s = res.status
    click.echo(f"bot {where}: {'RUNNING' if res.running else 'not running'}, state {s.get('state')}"
               f"{' (paused: exits only)' if s.get('paused') else ''}")
    for p in s.get("pairs", []):
        last = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["last_bar_ts"] / 1000)) if p.get("last_bar_ts") else "-"
        click.echo(f"  {p['symbol']:10s} {p['timeframe']:4s} {p['strategy']:14s} last candle {last}  "
                   f"candles {p.get('bars_processed')}  orders {p.get('orders_sent')}")
    positions = s.get("positions", [])
    px = lambda v: "-" if v in (None, "None") else f"{Decimal(str(v)):.8g}"  # noqa: E731
    click.echo("positions: " + (", ".join(f"{p['symbol']} {p['qty']} @ {px(p.get('avg_price'))}" for p in positions)
                                or "none"))
    if res.running:
        click.echo(f"open orders {s.get('open_orders')}; pnl today {s.get('pnl_today')}; realised total "
                   f"{s.get('realised_total')}; balances {s.get('balances')}")
    risk = s.get("risk") or {}
    click.echo(f"risk: kill-switch {'ON' if risk.get('kill_switch') else 'off'}"
               f"{' (' + str(risk.get('reason') or risk.get('kill_reason')) + ')' if risk.get('kill_switch') else ''}"
               f", reduce-only {'on' if risk.get('reduce_only') else 'off'}")


def _simple(name: str, help_text: str, call: str, **extra: Any):  # noqa: ANN202
    @bot_group.command(name, help=help_text)
    @_where
    @click.option("--reason", default=None, help="Why (written to the audit trail).")
    def cmd(config: str | None, state_dir: str | None, reason: str | None) -> None:
        from thunes.services import bot as svc

        fn = getattr(svc, call)
        result = fn(_state_dir(state_dir, config), reason) if reason else fn(_state_dir(state_dir, config))
        if isinstance(result, dict) and "state" in result:
            click.echo(f"bot state: {result['state']}{' (paused)' if result.get('paused') else ''}")
        else:
            _echo_json(result)
    return cmd


_simple("pause", "Stop opening positions (exits still go out); a stopped bot will start paused.\n\n\b\nExample:\n"
        "  thunes bot pause --reason \"news at 14:30\"", "pause_bot")
_simple("resume", "Open positions again after a pause.\n\n\b\nExample:\n  thunes bot resume", "resume_bot")
_simple("stop", "Stop the running bot after its current candle.\n\n\b\nExample:\n  thunes bot stop", "stop_bot")


@bot_group.command("force-exit")
@click.argument("symbol")
@_where
@click.option("--reason", default="force exit by operator", show_default=True)
def force_exit_cmd(symbol: str, config: str | None, state_dir: str | None, reason: str) -> None:
    """Sell the whole position in SYMBOL at market now (through risk, filters, journal and audit).

    \b
    Example:
      thunes bot force-exit ETH/USDT --reason "manual exit"
    """
    from thunes.services.bot import force_exit

    r = force_exit(_state_dir(state_dir, config), symbol, reason)
    click.echo(f"{r['symbol']}: {r['status']} filled {r['filled_qty']} ({r['client_order_id']})"
               f"{'; ' + r['error'] if r.get('error') else ''}")


@bot_group.command("reload")
@_where
def reload_cmd(config: str | None, state_dir: str | None) -> None:
    """Reload the exchange's market filters and the risk switch file (pairs need a restart).

    \b
    Example:
      thunes bot reload
    """
    from thunes.services.bot import reload_bot

    r = reload_bot(_state_dir(state_dir, config))
    click.echo(f"reloaded {r['markets']} markets; kill-switch {'ON' if r['risk']['kill_switch'] else 'off'}")


@bot_group.command("jobs")
@_where
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def jobs_cmd(config: str | None, state_dir: str | None, as_json: bool) -> None:
    """Scheduled jobs with their last and next run and outcome.

    \b
    Example:
      thunes bot jobs
    """
    from thunes.services.bot import bot_jobs

    fmt = lambda ms: "-" if not ms else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))  # noqa: E731
    rows = bot_jobs(_state_dir(state_dir, config))
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no job has been scheduled yet (the bot never ran here)")
    for j in rows:
        click.echo(f"  {j['name']:14s} {j['schedule']:28s} last {fmt(j.get('last_run_ms'))} "
                   f"[{j.get('last_outcome') or '-'}] next {fmt(j.get('next_run_ms'))}  runs {j.get('runs', 0)}, "
                   f"failed {j.get('failures', 0)}, missed {j.get('missed', 0)}  {j.get('last_detail') or ''}")


@bot_group.command("kill-switch")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--reason", required=True, help="Why (audited).")
@click.option("--operator", required=True, help="Who (audited).")
@_where
@pass_app
def kill_switch_cmd(app: Any, state: str, reason: str, operator: str, config: str | None,
                    state_dir: str | None) -> None:
    """Switch the bot's kill-switch: ON refuses every new order across all pairs.

    \b
    Example:
      thunes bot kill-switch on --reason "exchange incident" --operator alice
    """
    from thunes.services.bot import set_kill_switch

    snap = set_kill_switch(_state_dir(state_dir, config), state == "on", reason=reason, operator=operator,
                           risk_settings=app.settings.risk, settings=app.settings)
    click.echo(f"kill-switch {'ON' if snap['kill_switch'] else 'off'} (mode {snap['mode']})")


@bot_group.command("reduce-only")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--reason", required=True, help="Why (audited).")
@click.option("--operator", required=True, help="Who (audited).")
@_where
@pass_app
def reduce_only_cmd(app: Any, state: str, reason: str, operator: str, config: str | None,
                    state_dir: str | None) -> None:
    """Reduce-only mode: exits only, on every pair, until switched off.

    \b
    Example:
      thunes bot reduce-only on --reason "end of month" --operator bob
    """
    from thunes.services.bot import set_reduce_only

    snap = set_reduce_only(_state_dir(state_dir, config), state == "on", reason=reason, operator=operator,
                           risk_settings=app.settings.risk, settings=app.settings)
    click.echo(f"reduce-only {'on' if snap['reduce_only'] else 'off'} (mode {snap['mode']})")


@bot_group.command("trades")
@_where
@click.option("--page", default=1, show_default=True, type=int)
@click.option("--per-page", default=20, show_default=True, type=int)
@click.option("--symbol", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def trades_cmd(config: str | None, state_dir: str | None, page: int, per_page: int, symbol: str | None,
               as_json: bool) -> None:
    """Round trips from the bot's ledger, newest first.

    \b
    Example:
      thunes bot trades --symbol ETH/USDT --per-page 50
    """
    from thunes.services.reports import trades

    res = trades(_state_dir(state_dir, config) / "ledger.csv", page=page, per_page=per_page, symbol=symbol)
    if as_json:
        _echo_json(dataclasses.asdict(res))
        return
    fmt = lambda ms: "open" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))  # noqa: E731
    click.echo(f"page {res.page}/{res.pages} ({res.total} trades)")
    for t in res.trades:
        click.echo(f"  {t.symbol:10s} {fmt(t.entry_ms)} -> {fmt(t.exit_ms)}  qty {t.qty}  "
                   f"pnl {'-' if t.pnl is None else f'{t.pnl:.4f}'}  "
                   f"return {'-' if t.return_pct is None else f'{t.return_pct:.3f} %'}")


@bot_group.command("profit")
@_where
@click.option("--daily", "days", default=None, type=int, help="Also show the last N days.")
@click.option("--weekly", "weeks", default=None, type=int, help="Also show the last N weeks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def profit_cmd(config: str | None, state_dir: str | None, days: int | None, weeks: int | None,
               as_json: bool) -> None:
    """Profit summary, per pair, and optionally per day/week (by trade exit, UTC).

    \b
    Example:
      thunes bot profit --daily 7 --weekly 4
    """
    from thunes.services.reports import daily, performance, profit, weekly

    ledger = _state_dir(state_dir, config) / "ledger.csv"
    p = profit(ledger)
    if as_json:
        now = p.last_ms or int(time.time() * 1000)
        _echo_json({"profit": dataclasses.asdict(p), "pairs": [dataclasses.asdict(x) for x in performance(ledger)],
                    "daily": [dataclasses.asdict(x) for x in daily(ledger, days=days, now_ms=now)] if days else [],
                    "weekly": [dataclasses.asdict(x) for x in weekly(ledger, weeks=weeks, now_ms=now)] if weeks else []})
        return
    win = "-" if p.win_rate is None else f"{p.win_rate * 100:.1f} %"
    click.echo(f"closed {p.closed_trades} (open {p.open_trades}), wins {p.wins}, losses {p.losses}, win rate {win}, "
               f"realised {p.realised_pnl:.4f}, fees {p.fees:.4f}")
    for pp in performance(ledger):
        click.echo(f"  {pp.symbol:10s} trades {pp.trades:3d}  wins {pp.wins:3d}  realised {pp.realised_pnl:.4f}")
    now = p.last_ms or int(time.time() * 1000)
    for label, rows in (("day", daily(ledger, days=days, now_ms=now) if days else []),
                        ("week of", weekly(ledger, weeks=weeks, now_ms=now) if weeks else [])):
        for row in rows:
            click.echo(f"  {label} {row.start}: {row.trades} trades, realised {row.realised_pnl:.4f}")


def register(root: click.Group) -> None:
    root.add_command(bot_group)
