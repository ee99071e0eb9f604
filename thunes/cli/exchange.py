"""``thunes exchange serve``: run the local Binance-Spot-compatible exchange on 127.0.0.1."""

from __future__ import annotations

import signal
import threading

import click

__all__ = ["register"]


@click.group("exchange")
def exchange_group() -> None:
    """The local exchange (Binance Spot compatible) for paper trading, demos and tests.

    \b
    Example:
      thunes exchange serve --port 8765
    """


@exchange_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback only is sensible).")
@click.option("--port", type=int, default=None, help="Port (default: settings exchange.local_port, 8765).")
@click.option("--replay", "replay", multiple=True, metavar="[SYMBOL=]FILE",
              help="Replay candles from a CSV/Parquet/Binance-archive file; repeatable. SYMBOL defaults to "
                   "the BASEQUOTE found in the file name (e.g. binance_BTCUSDT_1h.csv.gz -> BTC/USDT).")
@click.option("--from-store", "from_store", multiple=True, metavar="SYMBOL@TIMEFRAME",
              help="Replay candles from the candle store (settings data.url, or --store); repeatable, "
                   "e.g. BTC/USDT@1h. Combines with --replay.")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="Candle store for --from-store (default: settings data.url).")
@click.option("--symbols", default="BTC/USDT,ETH/USDT", show_default=True,
              help="Markets to generate when neither --replay nor --from-store is given.")
@click.option("--timeframe", default="1m", show_default=True, help="Timeframe of generated candles.")
@click.option("--speed", default="1", show_default=True,
              help="Replay speed: 1 = real time, N = N times faster, 'max' = as fast as possible, "
                   "'manual' = only when POST /admin/clock moves it.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated market.")
@click.option("--balance", "balances", multiple=True, metavar="ASSET=AMOUNT",
              help="Starting balance of the demo account; repeatable (default: USDT=10000 BTC=0.5 ETH=5).")
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: until Ctrl-C or SIGTERM).")
@click.pass_obj
def serve(app, host: str, port: int | None, replay: tuple[str, ...], from_store: tuple[str, ...],  # noqa: ANN001
          store_url: str | None, symbols: str, timeframe: str, speed: str, seed: int,
          balances: tuple[str, ...], duration: float | None) -> None:
    """Start the local exchange. Point ccxt at http://HOST:PORT/api/v3 (see docs/exchange.md).

    Prints the base URL and the demo API key/secret of the default account, then serves until Ctrl-C or
    SIGTERM. Without --replay/--from-store it generates a market (reproducible by --seed).

    \b
    Examples:
      thunes exchange serve --port 8765
      thunes exchange serve --replay ../shared/data/binance_BTCUSDT_1h.csv.gz --speed 600
      thunes exchange serve --from-store BTC/USDT@1h --from-store ETH/USDT@1h --speed max
    """
    from decimal import Decimal, InvalidOperation

    from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange, SimOptions

    candles = {**_load_replays(replay), **load_from_store(from_store, app.settings.data, store_url)} or None
    parsed_speed: float | str | None
    if speed == "manual":
        parsed_speed = None
    elif speed == "max":
        parsed_speed = "max"
    else:
        try:
            parsed_speed = float(speed)
        except ValueError:
            raise click.BadParameter("use a number, 'max' or 'manual'", param_hint="--speed") from None
        if parsed_speed <= 0:
            raise click.BadParameter("must be positive", param_hint="--speed")
    extra: dict = {}
    if balances:
        funds: dict[str, str] = {}
        for item in balances:
            asset, sep, amount = item.partition("=")
            try:
                if not sep or not asset or Decimal(amount) < 0:
                    raise InvalidOperation
            except InvalidOperation:
                raise click.BadParameter(f"{item!r}: write ASSET=AMOUNT, e.g. USDT=10000", param_hint="--balance") \
                    from None
            funds[asset.strip().upper()] = amount.strip()
        extra["accounts"] = (AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, balances=funds),)
    opts = SimOptions(host=host, port=app.settings.exchange.local_port if port is None else port,
                      symbols=tuple(s.strip().upper() for s in symbols.split(",") if s.strip()),
                      timeframe=timeframe, seed=seed, speed=parsed_speed, **extra)  # type: ignore[arg-type]
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with LocalExchange(opts, candles=candles) as sim:
            click.echo(f"local exchange listening on {sim.base_url}")
            click.echo(f"  REST base for ccxt : {sim.base_url}/api/v3")
            click.echo(f"  market streams     : {sim.ws_url}")
            click.echo(f"  api key / secret   : {sim.api_key} / {sim.secret}")
            funds = sim.options.accounts[0].balances
            click.echo(f"  balances           : {', '.join(f'{a} {v}' for a, v in funds.items()) or 'none'}")
            click.echo(f"  markets            : {', '.join(sorted(sim.engine.specs))}  (Ctrl-C to stop)")
            try:
                stop.wait(duration)
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("local exchange stopped")


@exchange_group.command("faults")
@click.argument("changes", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--url", default=None, metavar="URL",
              help="The running exchange (default: http://<exchange.local_host>:<exchange.local_port>).")
@click.option("--clear", is_flag=True, help="Switch every fault off (applied before NAME=VALUE changes).")
@click.option("--drop-ws", is_flag=True, help="Close every websocket connection now.")
@click.option("--shutdown", "shutdown", is_flag=True, help="Send serverShutdown on the streams, then close them.")
@click.pass_obj
def faults_cmd(app, changes: tuple[str, ...], url: str | None, clear: bool, drop_ws: bool,  # noqa: ANN001
               shutdown: bool) -> None:
    """Switch faults of a running local exchange (POST /admin/faults) and print them.

    NAME is a field of thunes.exchange.sim.FaultState: delay_ms, stall, http_error, http_error_count,
    error_code, error_code_count, storm_status, storm_count, storm_retry_after, clock_skew_ms,
    lose_order_responses, lose_mode, malformed_frames, paths (comma-separated). Values are JSON
    (numbers, true/false) or plain text.

    \b
    Examples:
      thunes exchange faults                                  # show the current faults
      thunes exchange faults http_error=503 http_error_count=3
      thunes exchange faults storm_status=429 storm_count=5 storm_retry_after=2
      thunes exchange faults lose_order_responses=1 paths=/api/v3/order
      thunes exchange faults --drop-ws
      thunes exchange faults --clear
    """
    import json

    base = _admin_base(app, url)
    payload: dict[str, object] = {}
    for item in changes:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="NAME=VALUE")
        if name == "paths":
            payload[name] = [p for p in text.split(",") if p]
            continue
        try:
            payload[name] = json.loads(text)
        except ValueError:
            payload[name] = text
    if drop_ws and shutdown:
        raise click.UsageError("give one of --drop-ws and --shutdown")
    if drop_ws or shutdown:
        payload["action"] = "drop_ws" if drop_ws else "server_shutdown"
    requests = ([("DELETE", None)] if clear else []) + ([("POST", payload)] if payload else [])
    state: dict = {}
    for method, body in requests or [("GET", None)]:
        state = _admin(base, "/admin/faults", method, body)
    active = {k: v for k, v in state.items() if k in ("delay_ms", "stall", "http_error", "error_code",
                                                       "storm_status", "clock_skew_ms", "lose_order_responses",
                                                       "malformed_frames", "paths") and v}
    click.echo(json.dumps(state, sort_keys=True))
    click.echo("active: " + (", ".join(f"{k}={v}" for k, v in active.items()) if active else "none"))


@exchange_group.command("clock")
@click.option("--steps", type=int, default=None, help="Advance this many candles of the base timeframe.")
@click.option("--to", "to", default=None, metavar="TIME",
              help="Advance to this time (epoch ms or ISO 8601, e.g. 2024-03-01T12:00Z).")
@click.option("--url", default=None, metavar="URL",
              help="The running exchange (default: http://<exchange.local_host>:<exchange.local_port>).")
@click.pass_obj
def clock_cmd(app, steps: int | None, to: str | None, url: str | None) -> None:  # noqa: ANN001
    """Show or move the market clock of a running local exchange (POST /admin/clock).

    With --speed manual the clock moves only this way; resting orders trade against the price path of every
    candle passed. The clock never goes back.

    \b
    Examples:
      thunes exchange clock                  # show it
      thunes exchange clock --steps 12       # twelve candles on
      thunes exchange clock --to 2024-03-01T12:00Z
    """
    from thunes.core.timeframes import utc_ms

    if steps is not None and to is not None:
        raise click.UsageError("give one of --steps and --to")
    payload: dict[str, int] | None = None
    if steps is not None:
        if steps < 1:
            raise click.BadParameter("must be at least 1", param_hint="--steps")
        payload = {"steps": steps}
    elif to is not None:
        payload = {"to": int(to) if to.isdigit() else utc_ms(to)}
    state = _admin(_admin_base(app, url), "/admin/clock", "POST" if payload else "GET", payload)
    import datetime as dt

    when = dt.datetime.fromtimestamp(state["now"] / 1000, tz=dt.UTC).isoformat()
    click.echo(f"market clock {when} ({state['now']}), speed {state['speed'] or 'manual'}")


def _admin_base(app, url: str | None) -> str:  # noqa: ANN001
    settings = app.settings.exchange
    return (url or f"http://{settings.local_host}:{settings.local_port}").rstrip("/")


def _admin(base: str, path: str, method: str, body: dict | None) -> dict:
    """One call to the local exchange's admin endpoint; its JSON answer."""
    import json
    import urllib.error
    import urllib.request

    from thunes.core.errors import ExchangeUnavailable

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read() or b"{}")
        raise click.UsageError(answer.get("error", f"HTTP {exc.code}")) from None
    except OSError as exc:
        raise ExchangeUnavailable(f"no local exchange answers at {base}: {exc}") from exc


def load_from_store(items: tuple[str, ...], data_settings, url: str | None = None) -> dict:  # noqa: ANN001
    """Candle frames by symbol from the candle store, for ``SYMBOL@TIMEFRAME`` items."""
    if not items:
        return {}
    from thunes.data.store import store_from_settings

    out = {}
    store = store_from_settings(data_settings, url=url)
    try:
        for item in items:
            symbol, sep, timeframe = item.partition("@")
            if not sep or not symbol or not timeframe:
                raise click.BadParameter(f"{item!r}: write SYMBOL@TIMEFRAME, e.g. BTC/USDT@1h",
                                         param_hint="--from-store")
            frame = store.load(symbol.upper(), timeframe)
            if len(frame) < 2:
                raise click.BadParameter(f"the store holds {len(frame)} {timeframe} candles of {symbol.upper()}; "
                                         "import or download some first (thunes data --help)",
                                         param_hint="--from-store")
            out[symbol.upper()] = frame
    finally:
        store.close()
    return out


def _load_replays(items: tuple[str, ...]) -> dict:
    if not items:
        return {}
    import re
    from pathlib import Path

    from thunes.core.candles import candles_frame
    from thunes.data.io import read_candle_file

    out = {}
    for item in items:
        symbol, sep, path = item.partition("=")
        if not sep:
            path, symbol = item, ""
        if not Path(path).exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="--replay")
        if not symbol:
            match = re.search(r"([A-Z]{2,10})(USDT|BUSD|USDC|BTC|ETH)", Path(path).name.upper())
            if not match:
                raise click.BadParameter(f"cannot tell the symbol of {path}; write SYMBOL=FILE", param_hint="--replay")
            symbol = f"{match.group(1)}/{match.group(2)}"
        table = read_candle_file(Path(path))
        out[symbol.upper()] = candles_frame(table["ts"].to_numpy(), table["open"], table["high"], table["low"],
                                            table["close"], table["volume"])
    return out


def register(root: click.Group) -> None:
    root.add_command(exchange_group)
