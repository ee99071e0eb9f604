"""Trading services: one strategy on one pair, on the local exchange (paper), the Spot Testnet or live.

* :func:`run_paper` - the local exchange started in-process, replaying candles (given, or by the rule of
  :func:`thunes.data.sources.load_candles`: the store, else the real sample files) at ``replay_speed``; a fresh account every run, its journal, ledger and
  candles in the run folder.
* :func:`run_remote` - the Spot Testnet (``mode="testnet"``) or real money (``mode="live"``). Live runs
  obey :mod:`thunes.services.safety` here, whatever the edge: both confirmations, API keys that cannot
  withdraw (where the exchange tells), and the position and per-trade caps.

Both build the same trader (:func:`thunes.live.assembly.build_stack`), warm its window up to its last
processed candle (:func:`thunes.live.assembly.warm_up`: a restart decides every candle closed while it was
down), and run it on the websocket feed until ``max_bars`` candles, ``duration_s`` seconds, the end of
the replay or a stop request. Every run of a mode shares that mode's operator state,
``<trader.state_dir>/<mode>/risk_state.json`` (kill-switch, reduce-only: what :mod:`thunes.services.risk`
changes), and the audit trail at settings ``audit.path``. A local run records its folder in
``<trader.state_dir>/local/latest_run.json`` so that :func:`thunes.services.risk.risk_status` finds it.

The edges (``thunes paper``/``thunes live``) parse, call and print: ``notify`` receives the start-up
lines, ``on_decision`` every decided candle, and ``stop_hook`` the trader before its loop starts (the CLI
turns SIGINT/SIGTERM into :meth:`~thunes.live.trader.Trader.request_stop` there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from thunes.core.errors import AuthenticationError, ConfigError, ExchangeError
from thunes.services.safety import (
    LiveConfirmation,
    LiveLimits,
    check_withdrawals_disabled,
    live_limits,
    require_live_confirmation,
)

if TYPE_CHECKING:
    from thunes.data.sources import LoadedCandles

__all__ = [
    "WS_URLS",
    "PaperRequest",
    "RemoteRequest",
    "TradingResult",
    "connect_remote",
    "run_paper",
    "run_remote",
]

WS_URLS = {"testnet": "wss://stream.testnet.binance.vision/ws", "live": "wss://stream.binance.com:9443/ws"}

Notify = Callable[[str], None]
StopHook = Callable[[Any], AbstractContextManager[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperRequest:
    """A paper run on the local exchange. ``None`` fields take the settings' ``trader`` section."""

    strategy: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    symbol: str | None = None
    timeframe: str | None = None
    replay_speed: float = 600.0  # market seconds per wall second
    duration_s: float | None = None
    max_bars: int | None = None
    db: str | None = None  # candle store to replay from (default: settings data.url)
    out_dir: Path | None = None  # run folder (default: artifacts/paper/<time>)


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteRequest:
    """A run on the Spot Testnet or live. ``None`` fields take the settings' ``trader`` section."""

    mode: Literal["testnet", "live"]
    strategy: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    symbol: str | None = None
    timeframe: str | None = None
    duration_s: float | None = None
    max_bars: int | None = None
    db: str | None = None  # candle store for the streamed candles (default: settings data.url)
    confirmation: LiveConfirmation = LiveConfirmation()  # live: both acknowledgements
    max_quote: Decimal | None = None  # live: cap per trade and per position (default LIVE_DEFAULT_MAX_QUOTE)


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingResult:
    """What a run did: the trader's report, its ledger and round trips, the last reconciliation."""

    mode: str  # local | testnet | live
    symbol: str
    timeframe: str
    strategy: str  # the strategy's repr, parameters included
    report: Any  # TraderReport
    ledger_path: Path
    round_trips: pd.DataFrame | None  # from the ledger (None: no ledger written); open trades have NaN exits
    reconcile_ok: bool | None  # the last reconciliation found nothing to fix (None: none ran)
    run_dir: Path | None = None  # local runs
    withdrawals: str | None = None  # live: 'disabled' | 'unknown'
    limits: LiveLimits | None = None  # live: the caps applied


def _strategy(settings: Any, name: str | None, params: Mapping[str, Any]) -> Any:
    from thunes.strategies import get_strategy

    return get_strategy(name or settings.trader.strategy)(**dict(params))


def _options(settings: Any, symbol: str, timeframe: str, state_dir: Path, quote: Decimal | None = None) -> Any:
    from thunes.live.trader import TraderOptions

    t = settings.trader
    return TraderOptions(symbol=symbol, timeframe=timeframe,
                         quote_per_trade=quote if quote is not None else t.quote_per_trade, state_dir=state_dir,
                         reconcile_every_s=float(t.reconcile_minutes) * 60)


def _result(stack: Any, report: Any, ledger_path: Path, **kw: Any) -> TradingResult:
    from thunes.execution.ledger import read_ledger
    from thunes.live.parity import ledger_round_trips

    trips = ledger_round_trips(read_ledger(ledger_path)) if ledger_path.exists() else None
    last = stack.reconciler.last
    return TradingResult(report=report, ledger_path=ledger_path, round_trips=trips,
                         reconcile_ok=None if last is None else bool(last.ok), **kw)


def _quiet(_: str) -> None:
    return None


def run_paper(settings: Any, request: PaperRequest, *, candles: LoadedCandles | None = None,
              notify: Notify = _quiet, on_decision: Callable[[Any], None] | None = None,
              stop_hook: StopHook | None = None) -> TradingResult:
    """Paper-trade on the local exchange replaying ``candles`` (default: :func:`thunes.data.sources.load_candles`
    of the symbol and timeframe from the store ``request.db``, else the real sample files). See the module
    docstring."""
    from thunes.core.candles import ts_ms
    from thunes.core.timeframes import parse_timeframe
    from thunes.exchange.ccxt_adapter import CcxtExchange
    from thunes.exchange.sim import LocalExchange
    from thunes.execution.risk import write_run_pointer
    from thunes.live.assembly import ReplayClock, build_stack, feed_for, warm_up

    speed = float(request.replay_speed)
    if speed <= 0:
        raise ConfigError(f"the replay speed must be > 0, got {speed:g}")
    strategy = _strategy(settings, request.strategy, request.params)
    symbol = request.symbol or settings.trader.symbol
    timeframe = request.timeframe or settings.trader.timeframe
    tf = parse_timeframe(timeframe)
    if candles is None:
        from thunes.data.sources import CandleQuery, load_candles

        candles = load_candles(CandleQuery(symbol=symbol, timeframe=timeframe, store_url=request.db), settings.data)
    frame, source = candles.frame, candles.source
    warm = max(4 * strategy.warmup, strategy.warmup + 250)
    if len(frame) < warm + 10:
        raise ConfigError(f"{source} has {len(frame)} candles; the replay needs at least {warm + 10}")
    # Start late enough that the whole duration fits in the data, early enough to have the warm-up. With
    # max_bars, keep 15 s of wall-clock slack ahead: the replay runs while the trader loads markets and
    # warms up, and on a busy machine that start-up could otherwise eat the candles it was meant to trade.
    slack = 5 + int(15 * speed / tf.seconds)
    duration, max_bars = request.duration_s, request.max_bars
    wanted = int((duration or 3600) * speed / tf.seconds) + 5 if max_bars is None else max_bars + slack
    start = max(warm, len(frame) - wanted)
    stamps = ts_ms(frame)
    run_dir = Path(request.out_dir) if request.out_dir else Path("artifacts/paper") / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    mode_dir = Path(settings.trader.state_dir) / "local"
    audit_path = Path(settings.audit.path)
    ledger_path = run_dir / "ledger.csv"
    notify(f"local exchange replaying {symbol} {timeframe} from {source}, {len(frame) - start} bars ahead, "
           f"{speed:g}x; strategy {strategy!r}; run folder {run_dir}; audit {audit_path}; "
           f"kill-switch {mode_dir / 'risk_state.json'}")
    sim = LocalExchange(candles={symbol: frame}, speed=speed, start_ms=int(stamps[start]),
                        tick_s=min(0.25, max(0.02, tf.seconds / speed / 4))).start()
    stack = None
    try:
        port, feed_port = CcxtExchange.for_local(sim), CcxtExchange.for_local(sim)
        db_url = f"sqlite:///{(run_dir / 'state' / 'execution.sqlite').resolve()}"
        stack = build_stack(port, strategy=strategy, options=_options(settings, symbol, timeframe, run_dir / "state"),
                            risk_settings=settings.risk, audit_path=audit_path, ledger_path=ledger_path,
                            clock=ReplayClock(sim.clock), audit_fsync=settings.audit.fsync, db_url=db_url,
                            risk_state_path=mode_dir / "risk_state.json", settings=settings,
                            config_source=f"thunes paper (local replay, run {run_dir})")
        write_run_pointer(mode_dir, db_url=db_url, audit_path=audit_path, clock="replay", run_dir=run_dir)
        warm_up(stack.trader, port, sim.now_ms())
        bar_wall_s = tf.seconds / speed
        feed = feed_for(feed_port, ws_url=sim.ws_url, symbol=symbol, timeframe=timeframe,
                        store_url=f"sqlite:///{(run_dir / 'candles.sqlite').resolve()}",
                        stale_after_s=max(5.0, 3 * bar_wall_s))
        with (stop_hook or (lambda _t: nullcontext()))(stack.trader):
            # The run ends at the duration, max_bars or the end of the data; as a safety net it never outlives
            # the replay by more than a minute (a feed that died quietly must not hang the caller).
            deadline = duration if duration is not None else (len(frame) - start) * bar_wall_s + 60.0
            report = stack.trader.run(feed, max_bars=max_bars, deadline_s=deadline, until_ts=int(stamps[-2]),
                                      on_decision=on_decision)
        return _result(stack, report, ledger_path, mode="local", symbol=symbol, timeframe=timeframe,
                       strategy=repr(strategy), run_dir=run_dir)
    finally:
        if stack is not None:
            stack.close()
        sim.stop()


def connect_remote(exchange_settings: Any, mode: str) -> tuple[Any, Any]:
    """Two ccxt ports on the testnet or live exchange (one for orders, one for the feed's backfill; the
    ccxt client is not thread-safe), after checking that the exchange accepts the keys.

    A configured base URL takes every endpoint with it, the API-restrictions check included.
    """
    from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions

    ex = exchange_settings
    if ex.api_key is None or ex.api_secret is None:
        raise ConfigError(f"{mode} trading needs API keys: set THUNES_EXCHANGE__API_KEY and "
                          "THUNES_EXCHANGE__API_SECRET in the environment (or .env)")
    base = CcxtOptions.from_settings(ex)
    opts = CcxtOptions(exchange_id=base.exchange_id, mode=mode, base_url=ex.base_url, ws_url=ex.ws_url,  # type: ignore[arg-type]
                       api_key=base.api_key, secret=base.secret, timeout_s=base.timeout_s)
    port, feed_port = CcxtExchange(opts), CcxtExchange(opts)
    if ex.base_url:
        port.client.urls["api"]["sapi"] = f"{opts.rest_root()}/sapi/v1"
    try:
        port.fetch_balance()
    except AuthenticationError as exc:
        raise ConfigError(f"the {mode} exchange refused the API keys: {exc}") from exc
    return port, feed_port


def run_remote(settings: Any, request: RemoteRequest, *, notify: Notify = _quiet,
               on_decision: Callable[[Any], None] | None = None,
               stop_hook: StopHook | None = None) -> TradingResult:
    """Trade the Spot Testnet or, with both confirmations, real money (see the module docstring).

    Live: an exchange error that stops the run comes out as one ``ConfigError`` line.
    """
    if request.mode not in WS_URLS:
        raise ConfigError(f"unknown trading mode {request.mode!r}: testnet or live")
    if request.mode == "live":
        require_live_confirmation(request.confirmation)
        try:
            return _run_remote(settings, request, notify=notify, on_decision=on_decision, stop_hook=stop_hook)
        except ExchangeError as exc:
            raise ConfigError(f"live trading stopped: {exc}") from exc
    return _run_remote(settings, request, notify=notify, on_decision=on_decision, stop_hook=stop_hook)


def _run_remote(settings: Any, request: RemoteRequest, *, notify: Notify, on_decision: Callable[[Any], None] | None,
                stop_hook: StopHook | None) -> TradingResult:
    from thunes.live.assembly import build_stack, feed_for, warm_up

    mode = request.mode
    strategy = _strategy(settings, request.strategy, request.params)
    port, feed_port = connect_remote(settings.exchange, mode)
    risk = settings.risk
    quote = settings.trader.quote_per_trade
    withdrawals = limits = None
    if mode == "live":
        withdrawals = check_withdrawals_disabled(port.client)
        notify(f"withdrawal permission of the keys: {withdrawals}")
        limits = live_limits(risk, quote, request.max_quote)
        risk, quote = limits.risk, limits.quote_per_trade
        notify(f"live limits: {quote} quote per trade, max position {risk.max_position_quote}")
    symbol = request.symbol or settings.trader.symbol
    timeframe = request.timeframe or settings.trader.timeframe
    state_dir = Path(settings.trader.state_dir) / mode
    ledger_path = Path(settings.trader.ledger_path)
    if mode != "live":
        ledger_path = ledger_path.with_name(f"{ledger_path.stem}_{mode}{ledger_path.suffix}")
    # The effective settings (live caps applied) are what the start's config record hashes.
    effective = settings.model_copy(update={
        "risk": risk, "trader": settings.trader.model_copy(update={"quote_per_trade": quote})})
    stack = build_stack(port, strategy=strategy, options=_options(settings, symbol, timeframe, state_dir, quote),
                        risk_settings=risk, settings=effective, audit_path=Path(settings.audit.path),
                        ledger_path=ledger_path, audit_fsync=settings.audit.fsync,
                        config_source=f"thunes {'live' if mode == 'live' else 'paper --testnet'}")
    try:
        warm_up(stack.trader, port, int(time.time() * 1000))
        feed = feed_for(feed_port, ws_url=settings.exchange.ws_url or WS_URLS[mode], symbol=symbol,
                        timeframe=timeframe, store_url=request.db or settings.data.url)
        notify(f"{mode}: trading {symbol} {timeframe} with {strategy!r}; Ctrl-C stops after the current candle")
        with (stop_hook or (lambda _t: nullcontext()))(stack.trader):
            report = stack.trader.run(feed, max_bars=request.max_bars, deadline_s=request.duration_s,
                                      on_decision=on_decision)
        return _result(stack, report, ledger_path, mode=mode, symbol=symbol, timeframe=timeframe,
                       strategy=repr(strategy), withdrawals=withdrawals, limits=limits)
    finally:
        stack.close()
