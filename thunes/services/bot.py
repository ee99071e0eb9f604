"""Bot services: run a multi-pair bot, and watch or steer a running one.

Running (:func:`open_bot` / :func:`run_bot`) assembles, from a :class:`~thunes.live.config.BotSettings`:

* the exchange: the local exchange in-process replaying every pair in lockstep (default, offline), a
  local exchange served by another process (``local.url``, e.g. ``thunes exchange serve --speed manual``:
  the bot then survives restarts against it), the Spot Testnet, or live (after the live safety rules of
  :mod:`thunes.services.safety`: both confirmations, trading-only keys, the position cap);
* the safety core and one trader per pair (:func:`thunes.live.stack.build_bot`), warmed up to each pair's
  last processed candle;
* the candle source (lockstep replay or websockets), the event log and audit subscribers, the jobs
  (reconcile, daily summary, decay check, backups) and the local control socket;
* with ``metrics_port``, the Prometheus metrics (:class:`~thunes.ops.metrics.BotMetrics`, every exchange
  call timed) served at ``http://127.0.0.1:<port>/metrics`` while the session is open (docs/observability.md).

Steering (:func:`bot_status`, :func:`pause_bot`, ...) goes through the running bot's control socket; with
no bot running, status, jobs, pause and resume read or change the state folder directly (a paused bot
starts paused). :func:`set_kill_switch` works in both cases: the risk manager reads its switch file
before every decision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import ConfigError, InsufficientData
from thunes.core.events import DailySummary, EventBus
from thunes.core.timeframes import parse_timeframe
from thunes.live.assembly import ReplayClock, warm_up
from thunes.live.bot import Bot, BotReport, BotStatus, read_bot_state
from thunes.live.config import BotSettings
from thunes.live.control import BotNotRunning, ControlServer, send_command
from thunes.live.sources import (
    ReplaySource,
    StreamKey,
    WebsocketSource,
    frame_fetch,
    port_fetch,
    remote_clock,
)
from thunes.live.stack import BotStack, build_bot
from thunes.live.subscribers import AuditSubscriber, EventLog, read_events
from thunes.services.safety import (
    LiveConfirmation,
    check_withdrawals_disabled,
    live_limits,
    require_live_confirmation,
)

__all__ = [
    "BotRunRequest",
    "BotRunResult",
    "BotSession",
    "StatusResult",
    "bot_jobs",
    "bot_status",
    "events",
    "force_exit",
    "open_bot",
    "pause_bot",
    "recent_candles",
    "reload_bot",
    "resume_bot",
    "run_bot",
    "set_kill_switch",
    "set_reduce_only",
    "start_reoptimisation",
    "stop_bot",
    "warm_up",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BotRunRequest:
    settings: BotSettings
    max_candles: int | None = None  # stop after this many candles (all pairs together)
    duration_s: float | None = None  # stop after this many wall seconds
    confirmation: LiveConfirmation = LiveConfirmation()
    max_quote: Decimal | None = None  # live: cap per trade and per position (default 25 quote)
    control: bool = True  # serve the control socket
    audit_fsync: str | None = None  # default: settings.audit.fsync
    metrics_port: int | None = None  # serve Prometheus metrics on this port (0: any free one); None: no metrics
    metrics_host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class BotRunResult:
    report: BotReport
    status: BotStatus
    state_dir: Path
    sources: dict[str, str]


class _SteppedClock(ReplayClock):
    """Market time of a local exchange that only this bot moves: read once, then kept by the source's steps.
    Waiting uses the wall clock, as for any replay (:class:`~thunes.live.assembly.ReplayClock`)."""

    def __init__(self, now_ms: int, advance: Callable[[int], None]) -> None:
        self._now = now_ms
        self._advance = advance

    def now_ms(self) -> int:
        return self._now

    def advance_to(self, t: int) -> None:
        self._advance(t)
        self._now = max(self._now, int(t))


@dataclass(slots=True, kw_only=True)
class BotSession:
    """An assembled bot, not yet running (``run()``); ``close()`` releases everything it opened."""

    bot: Bot
    stack: BotStack
    settings: BotSettings
    request: BotRunRequest
    sources: dict[str, str]
    closers: list[Callable[[], None]] = field(default_factory=list)
    control: ControlServer | None = None
    metrics: Any = None  # BotMetrics when request.metrics_port is set
    metrics_server: Any = None  # its MetricsServer, from run() until close()

    def serve_metrics(self) -> str | None:
        """Start the ``/metrics`` endpoint (once; ``run`` does it) and return its URL."""
        if self.metrics is None:
            return None
        if self.metrics_server is None:
            self.metrics_server = self.metrics.serve(port=int(self.request.metrics_port or 0),
                                                     host=self.request.metrics_host)
            self.closers.append(self.metrics_server.close)
        url: str | None = self.metrics_server.url
        return url

    def run(self) -> BotRunResult:
        self.serve_metrics()
        if self.request.control:
            self.control = ControlServer(self.bot, self.stack.state_dir).start()
        try:
            report = self.bot.run(max_candles=self.request.max_candles, deadline_s=self.request.duration_s)
        finally:
            if self.control is not None:
                self.control.stop()
        return BotRunResult(report=report, status=self.bot.status(), state_dir=self.stack.state_dir,
                            sources=self.sources)

    def close(self) -> None:
        for closer in [self.stack.close, *reversed(self.closers)]:
            try:
                closer()
            except Exception:  # noqa: BLE001 - close everything
                log.warning("closing %s failed", closer, exc_info=True)

    def __enter__(self) -> BotSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_deployed(assignments: Any, state_dir: Path) -> tuple[Any, ...]:
    """Each assignment with the parameters a scheduled re-optimisation deployed for it, if any."""
    from thunes.optimize.decay import deployed_path, read_deployed

    out = []
    for a in assignments:
        path = deployed_path(state_dir, a.strategy, a.symbol, a.timeframe)
        if path.exists():
            params = read_deployed(path)["params"]
            log.warning("%s: trading the deployed parameters %s from %s (not the config's %s)", a.symbol, params,
                        path, a.params)
            a = a.model_copy(update={"params": params})
        out.append(a)
    return tuple(out)


def _windows(assignments: Any) -> dict[str, int]:
    from thunes.strategies import get_strategy
    from thunes.strategies.window import trailing_window

    return {a.symbol: trailing_window(get_strategy(a.strategy)(**a.params)) for a in assignments}


def open_bot(request: BotRunRequest, app_settings: Any, *, frames: Mapping[str, Any] | None = None) -> BotSession:
    """Assemble the bot described by ``request.settings`` (see the module docstring); nothing trades yet.

    ``frames`` (by symbol) replaces loading the in-process local exchange's candles (tests, notebooks).
    """
    s = request.settings
    assignments = _with_deployed(s.resolved(), Path(s.state_dir))
    risk = s.risk_settings(app_settings.risk)
    closers: list[Callable[[], None]] = []
    sources: dict[str, str] = {}
    bus = EventBus()
    state_dir = Path(s.state_dir)
    clock: Clock
    try:
        if s.exchange == "local" and s.local.url is None:
            if (state_dir / "execution.sqlite").exists():
                raise ConfigError(
                    f"{state_dir} holds an earlier run, and the in-process local exchange starts fresh every time; "
                    "use a new state_dir, or serve the exchange in its own process (local.url) to resume")
            from thunes.exchange.ccxt_adapter import CcxtExchange
            from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange
            from thunes.live.local import replay_markets

            plan = replay_markets(assignments, warmups=_windows(assignments), bars=s.local.bars,
                                  store_url=s.local.store_url or app_settings.data.url, synthetic=s.local.synthetic,
                                  frames=frames)
            sources = plan.sources
            # The replay compresses hours of market into seconds of wall time, while Binance's request-weight
            # and order-rate limits count wall time: scaled by 1000 they never bind a replay as they would not
            # bind the same trading spread over real hours (the served exchange, local.url, keeps the real ones).
            sim = LocalExchange(candles=plan.frames, start_ms=plan.start_ms, weight_limit=6_000_000,
                                orders_per_10s=100_000, accounts=(
                AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, balances=dict(s.local.balances)),)).start()
            closers.append(sim.stop)
            port: Any = CcxtExchange.for_local(sim)  # a CcxtExchange, instrumented below when metrics are on
            clock = ReplayClock(sim.clock)
            fetch = frame_fetch({(a.symbol, a.timeframe): plan.frames[a.symbol] for a in assignments})
            make_source: Callable[[Any], Any] = lambda keys: ReplaySource(  # noqa: E731
                keys, fetch=fetch, now_ms=sim.now_ms, advance_to=sim.advance_to, end_ms=plan.end_ms,
                bar_wall_s=_bar_wall(s))
        elif s.exchange == "local":
            from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions
            from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET

            url = str(s.local.url).rstrip("/")
            port = CcxtExchange(CcxtOptions(mode="local", base_url=url, api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                                            enable_rate_limit=False))
            read_clock, advance = remote_clock(url)
            stepped = _SteppedClock(read_clock(), advance)
            clock = stepped
            sources = {a.symbol: f"local exchange at {url}" for a in assignments}
            make_source = lambda keys: ReplaySource(  # noqa: E731
                keys, fetch=port_fetch(port), now_ms=stepped.now_ms, advance_to=stepped.advance_to,
                end_ms=s.local.end_ms, bar_wall_s=_bar_wall(s))
        else:
            port, make_source, risk, assignments = _remote(request, app_settings, assignments, risk, bus, closers)
            clock = LiveClock()
            sources = {a.symbol: f"{s.exchange} websocket" for a in assignments}
        metrics = None
        if request.metrics_port is not None:
            from thunes.ops.metrics import BotMetrics

            metrics = BotMetrics(pairs=[(a.symbol, a.timeframe) for a in assignments], exchange=s.exchange)
            port = metrics.instrument_port(port)
        stack = build_bot(port, assignments=assignments, risk_settings=risk, state_dir=state_dir, bus=bus,
                          clock=clock, audit_fsync=request.audit_fsync or app_settings.audit.fsync,
                          max_signal_age_bars=s.max_signal_age_bars, settings=app_settings,
                          config_source=f"thunes bot ({s.exchange}, {len(assignments)} pairs)")
    except BaseException:
        for c in reversed(closers):
            c()
        raise
    event_log = EventLog(state_dir / "events.jsonl")
    bus.subscribe(event_log, name="event-log")
    bus.subscribe(AuditSubscriber(stack.audit), name="audit")
    closers.append(event_log.close)
    now = clock.now_ms()
    for trader in stack.traders.values():
        warm_up(trader, port, now)
    source = make_source(tuple(stack.traders))
    from thunes.live.jobs import JobScheduler

    jobs = JobScheduler(clock, bus=bus, state_path=state_dir / "jobs.json")
    bot = Bot(stack, source, jobs=jobs)
    _schedule_jobs(bot, jobs, s, app_settings, event_log)
    if metrics is not None:
        metrics.bind(bot)
    return BotSession(bot=bot, stack=stack, settings=s, request=request, sources=sources, closers=closers,
                      metrics=metrics)


def _bar_wall(s: BotSettings) -> float:
    if not s.local.speed:
        return 0.0
    from thunes.core.timeframes import parse_timeframe

    return min(parse_timeframe(a.timeframe).seconds for a in s.resolved()) / s.local.speed


def _remote(request: BotRunRequest, app_settings: Any, assignments: Any, risk: Any, bus: EventBus,
            closers: list[Callable[[], None]]) -> tuple[Any, Callable[[Any], Any], Any, Any]:
    """Testnet or live: keys, the live safety rules, one websocket feed per pair."""
    from thunes.live.assembly import feed_for
    from thunes.services.trading import WS_URLS, connect_remote

    s = request.settings
    mode = s.exchange
    if mode == "live":
        require_live_confirmation(request.confirmation)
    ex = app_settings.exchange
    port, feed_port = connect_remote(ex, mode)
    if mode == "live":
        verdict = check_withdrawals_disabled(port.client)
        log.warning("live: withdrawal permission of the keys: %s", verdict)
        limits = [live_limits(risk, a.quote_per_trade, request.max_quote) for a in assignments]
        assignments = tuple(a.model_copy(update={"quote_per_trade": lim.quote_per_trade})
                            for a, lim in zip(assignments, limits))
        risk = limits[0].risk
    ws = ex.ws_url or WS_URLS[mode]

    def make_source(keys: Any) -> WebsocketSource:
        feeds = {k: feed_for(feed_port, ws_url=ws, symbol=k.symbol, timeframe=k.timeframe,
                             store_url=app_settings.data.url) for k in keys}
        return WebsocketSource(feeds, on_event=bus.publish)

    return port, make_source, risk, assignments


def _schedule_jobs(bot: Bot, jobs: Any, s: BotSettings, app_settings: Any, event_log: EventLog) -> None:
    from thunes.live.jobs import backup_sqlite, crontab, daily_at, interval

    stack = bot.stack
    grace = s.jobs.misfire_grace_s

    def daily_summary() -> str:
        from datetime import datetime, timedelta

        from thunes.services.reports import daily

        now = stack.clock.now_ms()
        day = (datetime.fromtimestamp(now / 1000, tz=UTC).date() - timedelta(days=1))
        row = daily(stack.ledger.path, days=2, now_ms=now)[1]
        snap = stack.risk.state
        bot.bus.publish(DailySummary(ts_ms=now, day=day.isoformat(), trades=row.trades,
                                     realised_pnl=row.realised_pnl, fees=row.fees,
                                     open_positions=tuple(snap.open_positions), kill_switch=bool(snap.kill_switch)))
        return f"{day}: {row.trades} trades, realised {row.realised_pnl:.4f}"

    def decay_check() -> str:
        from thunes.optimize.decay import check_decay, write_json_atomic

        parts = []
        for key, trader in sorted(stack.traders.items()):
            window = trader.window()
            bars = len(window) - int(trader.strategy.warmup) - 1
            try:
                rep = check_decay(window, trader.strategy, window_bars=max(2, bars),
                                  min_sharpe=app_settings.optimize.decay_min_sharpe, symbol=key.symbol,
                                  timeframe=key.timeframe)
            except InsufficientData as exc:
                parts.append(f"{key.symbol}: {exc}")
                continue
            write_json_atomic(stack.state_dir / "decay" / f"{key.symbol.replace('/', '')}_{key.timeframe}.json",
                              rep.as_dict())
            parts.append(f"{key.symbol} {'DECAYED' if rep.decayed else 'ok'} (sharpe {rep.latest_sharpe:.2f})")
        return "; ".join(parts)

    def backup() -> str:
        from datetime import datetime

        now = stack.clock.now_ms()
        target = backup_sqlite(stack.state_dir / "execution.sqlite", stack.state_dir / "backups",
                               keep=s.jobs.backup_keep, stamp_ms=now)
        rotated = event_log.rotate(datetime.fromtimestamp(now / 1000, tz=UTC).strftime("%Y%m%d-%H%M%S"),
                                   keep=s.jobs.events_keep)
        return f"{target.name}; event log rotated to {rotated.name}" if rotated else target.name

    def reoptimise() -> str:
        return start_reoptimisation(bot, app_settings, trials=s.jobs.reoptimise_trials, bars=s.jobs.reoptimise_bars)

    if s.jobs.reoptimise_cron:
        jobs.add("reoptimise", crontab(s.jobs.reoptimise_cron), reoptimise, grace_s=grace)
    jobs.add("reconcile", interval(s.jobs.reconcile_minutes), bot.reconcile,
             grace_s=max(60.0, s.jobs.reconcile_minutes * 60))
    jobs.add("daily_summary", daily_at(s.jobs.daily_summary_at), daily_summary, grace_s=grace)
    jobs.add("decay_check", daily_at(s.jobs.decay_check_at), decay_check, grace_s=grace)
    jobs.add("backup", daily_at(s.jobs.backup_at), backup, grace_s=grace)


def recent_candles(stack: BotStack, key: StreamKey, bars: int) -> Any:
    """The last ``bars`` closed candles of a pair from the exchange (call it on the bot's thread)."""
    from thunes.live.feed import frame_from_candles

    tf = parse_timeframe(key.timeframe).ms
    end = stack.clock.now_ms() // tf * tf
    return frame_from_candles(port_fetch(stack.exchange)(key.symbol, key.timeframe, end - bars * tf, end))


def start_reoptimisation(bot: Bot, app_settings: Any, *, trials: int, bars: int, wait: bool = False,
                         ranges: Mapping[str, tuple[float, float]] | None = None) -> str:
    """Re-optimise every pair in a background thread (the candles are fetched here, on the bot's thread);
    each verdict goes back to the bot's thread (:meth:`Bot.apply_params`): DEPLOY only past the existing
    thresholds, audited either way. ``wait`` runs it to the end (a bot that is not running: tests, a one-off
    command; never from the bot's own thread, which must stay free to apply the verdicts)."""
    import threading

    from thunes.services.optimize import OptimiseRequest, optimise_and_decide

    running = getattr(bot, "_reoptimising", None)
    if running is not None and running.is_alive():
        return "the previous re-optimisation is still running"
    stack = bot.stack
    work = [(key, trader.strategy.name, recent_candles(stack, key, bars))
            for key, trader in sorted(stack.traders.items())]

    def run() -> None:
        for key, strategy, frame in work:
            try:
                res = optimise_and_decide(OptimiseRequest(
                    strategy=strategy, symbol=key.symbol, timeframe=key.timeframe, candles=frame, trials=trials,
                    deployed_dir=stack.state_dir, ranges=ranges,
                    data_source=f"exchange, last {len(frame)} candles"), app_settings)
            except Exception as exc:  # noqa: BLE001 - one pair's failed study does not stop the others
                log.error("re-optimisation of %s failed: %s", key.symbol, exc)
                stack.audit.append("reoptimise_failed",
                                   {"symbol": key.symbol, "error": f"{type(exc).__name__}: {exc}"})
                continue
            fut = bot.submit("apply_params", symbol=key.symbol, strategy=strategy, params=res.best_params,
                             deploy=res.deploy, reasons=list(res.reasons))
            fut.result(timeout=None if wait else 600)

    thread = threading.Thread(target=run, name="bot-reoptimise", daemon=True)
    bot._reoptimising = thread  # type: ignore[attr-defined]
    thread.start()
    if wait:
        thread.join()
    return f"started for {len(work)} pairs on their last {bars} candles, {trials} trials each"


def run_bot(request: BotRunRequest, app_settings: Any, *, on_session: Callable[[BotSession], None] | None = None,
            frames: Mapping[str, Any] | None = None) -> BotRunResult:
    """Assemble and run the bot until it stops; ``on_session`` sees it before it starts (signal handlers)."""
    with open_bot(request, app_settings, frames=frames) as session:
        if on_session is not None:
            on_session(session)
        return session.run()


# ------------------------------------------------------------------------------------------------------
# Steering a bot by its state folder
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class StatusResult:
    running: bool
    status: dict[str, Any]  # BotStatus.to_json() when running; what the state folder tells otherwise


def bot_status(state_dir: Path) -> StatusResult:
    """The running bot's status, or the last known state from its folder when it is not running."""
    try:
        return StatusResult(running=True, status=send_command(state_dir, "status"))
    except BotNotRunning:
        pass
    state_dir = Path(state_dir)
    if not state_dir.exists():
        raise ConfigError(f"{state_dir} is not a bot state folder (it does not exist)")
    saved = read_bot_state(state_dir)
    pairs = []
    for f in sorted(state_dir.glob("trader_*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        pairs.append({k: data.get(k) for k in ("symbol", "timeframe", "strategy", "last_bar_ts", "bars_processed",
                                               "orders_sent")})
    positions = []
    db_path = state_dir / "execution.sqlite"
    if db_path.exists():
        from thunes.execution import Database, PositionTracker

        db = Database.connect(f"sqlite:///{db_path.resolve()}")
        try:
            positions = [{"symbol": p.symbol, "qty": str(p.qty), "avg_price": str(p.avg_price), "cost": str(p.cost)}
                         for p in PositionTracker(db).open_positions()]
        finally:
            db.close()
    risk_file = state_dir / "risk_state.json"
    risk = json.loads(risk_file.read_text(encoding="utf-8")) if risk_file.exists() else {}
    return StatusResult(running=False, status={"state": saved.get("state", "never started"),
                                               "paused": bool(saved.get("paused", False)), "pairs": pairs,
                                               "positions": positions, "risk": risk,
                                               "clean_stop": saved.get("clean_stop")})


def _offline_pause(state_dir: Path, paused: bool) -> dict[str, Any]:
    from thunes.execution.risk import write_risk_state as write_json_atomic

    state_dir = Path(state_dir)
    if not state_dir.exists():
        raise ConfigError(f"{state_dir} is not a bot state folder (it does not exist)")
    saved = read_bot_state(state_dir)
    saved["paused"] = paused
    write_json_atomic(state_dir / "bot_state.json", saved)
    return {"running": False, "paused": paused}


def pause_bot(state_dir: Path, reason: str = "paused by operator") -> Any:
    """No new entries; exits still go out. A bot that is not running will start paused."""
    try:
        return send_command(state_dir, "pause", reason=reason)
    except BotNotRunning:
        return _offline_pause(state_dir, True)


def resume_bot(state_dir: Path, reason: str = "resumed by operator") -> Any:
    try:
        return send_command(state_dir, "resume", reason=reason)
    except BotNotRunning:
        return _offline_pause(state_dir, False)


def stop_bot(state_dir: Path, reason: str = "stop requested by operator") -> Any:
    """Ask the running bot to stop after the current candle (raises BotNotRunning when none runs)."""
    return send_command(state_dir, "stop", reason=reason)


def force_exit(state_dir: Path, symbol: str, reason: str = "force exit by operator") -> Any:
    """Sell the running bot's whole position in ``symbol`` now (through risk, filters and the journal)."""
    return send_command(state_dir, "force_exit", symbol=symbol.upper(), reason=reason)


def reload_bot(state_dir: Path) -> Any:
    return send_command(state_dir, "reload")


def bot_jobs(state_dir: Path) -> list[dict[str, Any]]:
    """Jobs with their last/next run and outcome (from the running bot, else its jobs.json)."""
    try:
        jobs: list[dict[str, Any]] = send_command(state_dir, "jobs")
        return jobs
    except BotNotRunning:
        path = Path(state_dir) / "jobs.json"
        if not path.exists():
            return []
        saved: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return list(saved.values())


def set_kill_switch(state_dir: Path, on: bool, *, reason: str, operator: str, risk_settings: Any,
                    audit_path: Path | None = None, settings: Any = None) -> dict[str, Any]:
    """Switch the bot's kill-switch (audited). A running bot sees it before its next decision."""
    from thunes.services.risk import switch_bot

    snapshot: dict[str, Any] = switch_bot("kill", state_dir, on, reason=reason, operator=operator,
                                          risk_settings=risk_settings, settings=settings,
                                          audit_path=audit_path).to_json()
    return snapshot


def set_reduce_only(state_dir: Path, on: bool, *, reason: str, operator: str, risk_settings: Any,
                    audit_path: Path | None = None, settings: Any = None) -> dict[str, Any]:
    """Reduce-only (exits only, every pair), audited; a running bot sees it before its next decision."""
    from thunes.services.risk import switch_bot

    snapshot: dict[str, Any] = switch_bot("reduce", state_dir, on, reason=reason, operator=operator,
                                          risk_settings=risk_settings, settings=settings,
                                          audit_path=audit_path).to_json()
    return snapshot


def events(state_dir: Path, *, kinds: set[str] | None = None) -> list[Any]:
    """The bot's event log (every event it published), oldest first."""
    return list(read_events(Path(state_dir) / "events.jsonl", kinds=kinds))
