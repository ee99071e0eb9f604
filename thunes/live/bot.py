"""The multi-pair bot: one thread trading every pair's closed candles, in the order they close.

::

    CandleSource ──(key, candle)──> Bot loop ──> Trader[key].on_candle ──> GatedExecutor ──> exchange
                                     │  ├─ risk.mark(symbol, close)        (daily loss counts open positions)
                                     │  ├─ bus: CandleClosed, SignalDecided, order/position events
                                     │  └─ between candles: control commands, scheduled jobs
                                     └─ start: restore risk, reconcile every pair; stop: reconcile, flush

The candles of a bar that the source holds at once go to their traders together
(:func:`~thunes.live.trader.trade_together`: every pair decides, the orders are journaled in one commit and
sent back to back, the answers booked after the last send): the same orders as one candle at a time, the
last pair's order out sooner.

One thread does everything that touches the exchange client and the databases, so nothing needs more
locking than the risk manager already has, and the order of events is the order of candles. Control
commands (status, pause, resume, stop, force-exit, reload) arrive from other threads (the control
socket, an API) through :meth:`Bot.submit` and are executed by the loop between two candles.

Restart: each trader resumes after its own last processed candle (its state file); the source is
started from there, so every candle closed while the bot was down is processed (a signal too old to
trade is skipped and audited, never acted on late); the deterministic client order id makes a candle
processed twice never place a second order. Paused state, the kill-switch (risk state file) and job
times survive a restart too.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError, ThunesError
from thunes.core.events import (
    BotState,
    BotStateChanged,
    CandleClosed,
    DecisionAction,
    PositionClosed,
    PositionOpened,
    ReconcileMismatch,
    SignalDecided,
)
from thunes.execution.risk import write_risk_state as write_json_atomic
from thunes.live.sources import CandleSource, SourcedCandle, StreamKey
from thunes.live.stack import BotStack
from thunes.strategies.window import CONVERGENCE_WARMUPS

__all__ = ["Bot", "BotReport", "BotStatus", "PairStatus", "PositionStatus", "read_bot_state"]

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass(slots=True)
class BotReport:
    """Summary of one :meth:`Bot.run`."""

    candles: int = 0
    orders: int = 0
    fills: int = 0
    skipped: int = 0
    denied: int = 0
    reconciles: int = 0
    discrepancies: int = 0
    stop_reason: str = ""
    orders_by_symbol: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairStatus:
    symbol: str
    timeframe: str
    strategy: str
    params: dict[str, Any]
    last_bar_ts: int | None
    bars_processed: int
    orders_sent: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionStatus:
    symbol: str
    qty: Decimal
    avg_price: Decimal | None
    cost: Decimal
    mark: Decimal | None
    unrealised: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BotStatus:
    state: BotState
    paused: bool
    now_ms: int
    pairs: tuple[PairStatus, ...]
    positions: tuple[PositionStatus, ...]
    open_orders: int
    balances: dict[str, str]
    pnl_today: Decimal
    realised_total: Decimal
    risk: dict[str, Any]
    candles: int
    orders: int

    def to_json(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:  # Decimal -> str, tuple -> list, dataclass -> dict, recursively
            if isinstance(v, Decimal):
                return str(v)
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if hasattr(v, "__dataclass_fields__"):
                return {k: plain(getattr(v, k)) for k in v.__dataclass_fields__}
            return v
        out: dict[str, Any] = plain(self)
        return out


def read_bot_state(state_dir: Path) -> dict[str, Any]:
    path = Path(state_dir) / "bot_state.json"
    if not path.exists():
        return {}
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state
    except ValueError as exc:
        raise ConfigError(f"bot state {path} is unreadable ({exc}); move it away to start fresh") from exc


class Bot:
    """Drives the traders of a :class:`BotStack` from one :class:`CandleSource` (module docstring)."""

    def __init__(self, stack: BotStack, source: CandleSource, *, jobs: Any = None, poll_s: float = 0.1,
                 on_decision: Callable[[StreamKey, Any], None] | None = None) -> None:
        self.stack = stack
        self.source = source
        self.jobs = jobs
        self.poll_s = poll_s
        self.on_decision = on_decision
        self.bus = stack.bus
        self.clock = stack.clock
        self.report = BotReport()
        self.state = BotState.STOPPED
        self._stop = threading.Event()
        self._commands: queue.Queue[tuple[str, dict[str, Any], Future[Any]]] = queue.Queue()
        self._state_path = stack.state_dir / "bot_state.json"
        saved = read_bot_state(stack.state_dir)
        stack.executor.paused = bool(saved.get("paused", False))
        self._last_close: dict[str, Decimal] = {}
        self._running = False
        self._open = set(stack.risk.state.open_positions)  # what the risk manager counts (dust is not a position)

    # -- state -----------------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return bool(self.stack.executor.paused)

    def _set_state(self, state: BotState, reason: str = "") -> None:
        self.state = state
        self._save(clean_stop=state is BotState.STOPPED)
        self.bus.publish(BotStateChanged(ts_ms=self.clock.now_ms(), state=state, reason=reason))

    def _save(self, *, clean_stop: bool = False) -> None:
        write_json_atomic(self._state_path, {
            "state": str(self.state), "paused": self.paused, "pid": os.getpid(), "updated_ms": self.clock.now_ms(),
            "clean_stop": clean_stop,
        })

    # -- control (any thread) --------------------------------------------------------------------------
    def submit(self, command: str, **args: Any) -> Future[Any]:
        """Queue a command for the loop thread: status, pause, resume, stop, force_exit, reload."""
        fut: Future[Any] = Future()
        if command not in _COMMANDS:
            fut.set_exception(ConfigError(f"unknown bot command {command!r}; known: {', '.join(sorted(_COMMANDS))}"))
            return fut
        if command == "stop":
            self.request_stop(args.get("reason") or "stop requested")
            fut.set_result({"stopping": True})
            return fut
        if not self._running:
            self._execute(command, args, fut)  # no loop thread to hand it to (a built bot not started)
            return fut
        self._commands.put((command, args, fut))
        return fut

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop after the current candle (safe from a signal handler or another thread)."""
        if not self._stop.is_set():
            self.report.stop_reason = reason
            self._stop.set()

    def _drain_commands(self) -> None:
        while True:
            try:
                command, args, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            self._execute(command, args, fut)

    def _execute(self, command: str, args: dict[str, Any], fut: Future[Any]) -> None:
        try:
            fut.set_result(getattr(self, _COMMANDS[command])(**args))
        except Exception as exc:  # noqa: BLE001 - the caller gets the error; the loop goes on
            fut.set_exception(exc)

    def pause(self, reason: str = "paused by operator") -> BotStatus:
        """No new entries (exits still go out); survives a restart."""
        if not self.paused:
            self.stack.executor.paused = True
            self.stack.audit.append("bot_paused", {"reason": reason})
            self._set_state(BotState.PAUSED, reason)
        return self.status()

    def resume(self, reason: str = "resumed by operator") -> BotStatus:
        if self.paused:
            self.stack.executor.paused = False
            self.stack.audit.append("bot_resumed", {"reason": reason})
            self._set_state(BotState.RUNNING if self._is_running() else self.state, reason)
        return self.status()

    def _is_running(self) -> bool:
        return self._running

    def jobs_status(self) -> list[dict[str, Any]]:
        from dataclasses import asdict

        return [asdict(j) for j in self.jobs.jobs()] if self.jobs is not None else []

    def force_exit(self, symbol: str, reason: str = "force exit by operator") -> dict[str, Any]:
        """Sell the whole position in ``symbol`` at market now (through risk, filters and the journal)."""
        from thunes.core.enums import Side
        from thunes.execution.risk import TradeIntent

        trader = self.stack.trader_for(symbol)
        pos = self.stack.positions.position(symbol)
        if pos is None or pos.qty <= 0:
            raise ConfigError(f"no open position in {symbol}")
        price = self._last_close.get(symbol) or pos.avg_price or ZERO
        bar_ts = trader.state.last_bar_ts or self.clock.now_ms()
        intent = TradeIntent(symbol=symbol, side=Side.SELL, qty=pos.qty, price=price, reason=reason,
                             strategy=f"{trader.strategy.name}-force", bar_ts=int(bar_ts), is_exit=True)
        outcome = self.stack.executor.execute(intent)
        trader.record_fills(outcome.client_order_id, reason)
        if outcome.filled_qty > 0:
            trader.write_off_dust(price)
        self._position_events(symbol)
        return {"symbol": symbol, "client_order_id": outcome.client_order_id,
                "status": None if outcome.status is None else str(outcome.status),
                "filled_qty": str(outcome.filled_qty), "error": outcome.error}

    def apply_params(self, symbol: str, strategy: str, params: dict[str, Any], deploy: bool,
                     reasons: list[str]) -> dict[str, Any]:
        """The verdict of a re-optimisation of ``symbol`` (audited either way); a DEPLOY switches the pair's
        strategy parameters now when its trading window already holds what they need, else at the next start
        (the deployed file in the state folder is read by every start)."""
        from thunes.strategies import get_strategy

        trader = self.stack.trader_for(symbol)
        applied = "not deployed"
        if deploy:
            if strategy != trader.strategy.name:
                raise ConfigError(f"{symbol} trades {trader.strategy.name}, not {strategy}")
            new = get_strategy(strategy)(**params)
            # The running window suffices when it holds the warm-ups recursive indicators need to converge (the
            # extra 250 bars of a fresh window are a floor for short warm-ups, not a need of the new parameters).
            need = CONVERGENCE_WARMUPS * new.warmup
            if need <= trader.window_bars:
                trader.strategy = new
                applied = "applied now"
            else:
                applied = (f"applied at the next start (needs a {need}-candle window, "
                           f"this one holds {trader.window_bars})")
        self.stack.audit.append("reoptimised", {"symbol": symbol, "strategy": strategy, "params": params,
                                                "deploy": deploy, "reasons": reasons, "applied": applied})
        return {"symbol": symbol, "deploy": deploy, "applied": applied, "params": params}

    def reload(self) -> dict[str, Any]:
        """Re-read the risk switch file and the markets' filters (the pairs themselves need a restart)."""
        self.stack.markets.update(self.stack.exchange.load_markets(reload=True))
        self.stack.executor.check_kill_switch()
        return {"markets": len(self.stack.markets), "risk": self.stack.risk.state.to_json()}

    def status(self) -> BotStatus:
        s = self.stack
        positions = []
        for p in s.positions.open_positions():
            mark = self._last_close.get(p.symbol)
            positions.append(PositionStatus(symbol=p.symbol, qty=p.qty, avg_price=p.avg_price, cost=p.cost, mark=mark,
                                            unrealised=None if mark is None else p.unrealised(mark)))
        pairs = tuple(PairStatus(symbol=k.symbol, timeframe=k.timeframe, strategy=t.strategy.name,
                                 params=dict(t.strategy.params), last_bar_ts=t.state.last_bar_ts,
                                 bars_processed=t.state.bars_processed, orders_sent=t.state.orders_sent)
                      for k, t in sorted(s.traders.items()))
        try:
            balances = {a: str(b.total) for a, b in sorted(s.exchange.fetch_balance().items()) if b.total != 0}
        except ThunesError as exc:
            balances = {"error": str(exc)}
        snap = s.risk.state
        return BotStatus(state=self.state, paused=self.paused, now_ms=self.clock.now_ms(), pairs=pairs,
                         positions=tuple(positions), open_orders=s.journal.count_open(),
                         balances=balances, pnl_today=snap.daily_pnl,
                         realised_total=s.positions.realised_since(0), risk=snap.to_json(),
                         candles=self.report.candles, orders=self.report.orders)

    # -- reconciliation --------------------------------------------------------------------------------
    def reconcile(self) -> str:
        """Reconcile every pair at once; adopted orders' fills go to the ledger; mismatches are published."""
        report = self.stack.reconciler()
        self.report.reconciles += 1
        self.report.discrepancies += len(report.discrepancies)
        now = self.clock.now_ms()
        for d in report.discrepancies:
            self.bus.publish(ReconcileMismatch(ts_ms=now, symbol=d.symbol, mismatch=d.kind, detail=d.detail,
                                               resolution=d.action))
            if d.action == "adopted" and d.client_order_id is not None:
                entry = self.stack.journal.get(d.client_order_id)
                why = getattr(entry, "reason", "") or "order"
                try:
                    trader = self.stack.trader_for(d.symbol)
                except ConfigError:
                    continue
                trader.record_fills(d.client_order_id, f"{why} (adopted at reconciliation: {d.kind})")
        self.stack.executor.check_kill_switch()
        if report.error:
            return f"error: {report.error}"
        return f"{len(report.discrepancies)} discrepancies ({len(report.flagged)} flagged)"

    def ledger_catch_up(self) -> int:
        """Write to the ledger the fills of journaled orders it lacks; returns rows written.

        A crash after the executor journaled an order's fills but before the trader wrote them to the ledger
        leaves the journal right and the ledger short, and reconciliation sees nothing wrong (journal and
        exchange agree). At every start the journal's filled orders are checked against the ledger and the
        missing fills fetched from the exchange (by client order id, then its trades).
        """
        from thunes.execution.ledger import read_ledger

        s = self.stack
        have = {r.client_order_id for r in read_ledger(s.ledger.path)} if Path(s.ledger.path).exists() else set()
        written = 0
        for entry in s.journal.entries():
            if entry.filled_qty <= 0 or entry.client_order_id in have:
                continue
            try:
                trader = s.trader_for(entry.symbol)
                s.exchange.fetch_order(entry.symbol, entry.client_order_id)  # RecordingPort keeps the answer
            except (ConfigError, ThunesError) as exc:
                log.warning("ledger catch-up: %s %s: %s", entry.symbol, entry.client_order_id, exc)
                continue
            n = trader.record_fills(entry.client_order_id, f"{entry.reason or 'order'} (ledger caught up at start)")
            written += n
        if written:
            s.audit.append("ledger_caught_up", {"rows": written})
        return written

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, *, max_candles: int | None = None, deadline_s: float | None = None) -> BotReport:
        """Trade until a stop request, ``max_candles`` processed candles, ``deadline_s`` wall seconds, or the
        end of a replay."""
        from thunes.live.trader import frozen_heap

        self._running = True
        self._set_state(BotState.STARTING, "start")
        self.stack.audit.append("bot_started", {
            "pairs": [{"symbol": k.symbol, "timeframe": k.timeframe, "strategy": t.strategy.name,
                       "params": t.strategy.params, "resume_after": t.state.last_bar_ts}
                      for k, t in sorted(self.stack.traders.items())], "paused": self.paused,
        })
        try:
            self.reconcile()
            self.ledger_catch_up()
            with frozen_heap():
                self._anchor()
                self.source.start({k: t.last_ts for k, t in self.stack.traders.items()})
                self._set_state(BotState.PAUSED if self.paused else BotState.RUNNING, "started")
                start = time.monotonic()
                processed = 0
                while not self._stop.is_set():
                    self._drain_commands()
                    if self.jobs is not None:
                        self.jobs.tick()
                    if deadline_s is not None and time.monotonic() - start >= deadline_s:
                        self.request_stop(f"duration of {deadline_s:g}s reached")
                        break
                    item = self.source.get(timeout=self.poll_s)
                    if item is None:
                        if self.source.exhausted:
                            self.request_stop("replay finished")
                        continue
                    if self._stop.is_set():
                        break  # a stop request wins over a candle that arrived meanwhile: no new order
                    # The rest of the bar already at hand goes with it: the pairs' orders are placed together.
                    room = len(self.stack.traders) - 1
                    if max_candles is not None:
                        room = min(room, max_candles - processed - 1)
                    processed += self._on_candles([item, *self.source.ready(room)] if room > 0 else [item])
                    if max_candles is not None and processed >= max_candles:
                        self.request_stop(f"{max_candles} candles processed")
        finally:
            self._shutdown()
        return self.report

    def _anchor(self) -> None:
        """On a pair's first start, mark its newest warm-up candle as processed (saved at once).

        Otherwise a crash before the first candle was handled would leave the pair without a resume
        point, and the restart would start from the exchange's *new* time, skipping what closed between.
        """
        from thunes.live.state import save_state

        for trader in self.stack.traders.values():
            if trader.state.last_bar_ts is None and trader.last_ts is not None:
                trader.state.last_bar_ts = trader.last_ts
                save_state(trader.state_path, trader.state)

    def _on_candles(self, items: list[SourcedCandle]) -> int:
        """Handle candles handed out together, in runs of distinct pairs (a pair's next candle waits for this
        one's outcome); returns how many were processed (not skipped as already handled)."""
        done, run = 0, list[SourcedCandle]()
        for item in items:
            if any(other.key == item.key for other in run):
                done += self._on_run(run)
                run = []
            run.append(item)
        return done + (self._on_run(run) if run else 0)

    def _on_run(self, run: list[SourcedCandle]) -> int:
        from thunes.live.trader import trade_together

        arrived = []
        for item in run:
            trader = self.stack.traders.get(item.key)
            if trader is None:
                continue
            self._last_close[item.key.symbol] = Decimal(repr(float(item.candle.close)))
            fresh = trader.state.last_bar_ts is None or item.candle.ts_ms > trader.state.last_bar_ts
            if fresh:
                # Published before the trader handles it: a crash in between re-delivers the candle after the
                # restart (its state was not saved), so the event log never lacks a processed candle.
                self.bus.publish(CandleClosed(ts_ms=self.clock.now_ms(), symbol=item.key.symbol,
                                              timeframe=item.key.timeframe, bar_ts=item.candle.ts_ms,
                                              close=float(item.candle.close), source=item.candle.source))
            arrived.append((item, trader, fresh))
        if len(arrived) == 1:
            item, trader, _fresh = arrived[0]
            decisions = [trader.on_candle(item.candle, received_at=item.received_at)]
        else:
            decisions = trade_together([(trader, item.candle, item.received_at) for item, trader, _f in arrived])
        return sum(self._decided(item.key, trader, fresh, decision)
                   for (item, trader, fresh), decision in zip(arrived, decisions, strict=True))

    def _decided(self, key: StreamKey, trader: Any, fresh: bool, decision: Any) -> bool:
        """Events, report, marks and the kill-switch after a pair's candle was decided; False when it was not
        processed (handled before a restart)."""
        from thunes.live.trader import ALREADY_PROCESSED

        if decision.reason == ALREADY_PROCESSED or not fresh:
            return False
        close = self._last_close[key.symbol]
        candle_ts = decision.bar_ts
        now = self.clock.now_ms()
        action = DecisionAction(decision.action)
        self.bus.publish(SignalDecided(ts_ms=now, symbol=key.symbol, timeframe=key.timeframe,
                                       strategy=trader.strategy.name, bar_ts=candle_ts, action=action,
                                       reason=decision.reason, latency_s=decision.latency_s))
        r = self.report
        r.candles += 1
        if action in (DecisionAction.BUY, DecisionAction.SELL):
            if decision.client_order_id is not None and decision.status is not None:
                r.orders += 1
                r.orders_by_symbol[key.symbol] = r.orders_by_symbol.get(key.symbol, 0) + 1
                if decision.filled_qty > 0:
                    r.fills += 1
                if decision.latency_s is not None:
                    r.latencies_s.append(decision.latency_s)
            elif "denied" in decision.reason:
                r.denied += 1
        elif action is DecisionAction.SKIP:
            r.skipped += 1
        if self._position_events(key.symbol):
            self.stack.risk.mark(key.symbol, close)  # the daily loss counts what open positions have lost
        self.stack.executor.check_kill_switch()
        if self.on_decision is not None:
            self.on_decision(key, decision)
        return True

    def _position_events(self, symbol: str) -> bool:
        """Publish PositionOpened/Closed when the symbol's position appeared or went; True while one is open.

        Looked at after the trader has handled the candle, when an exit's unsellable dust is already
        written off, so a closed position is closed here even though Binance left a few satoshis.
        """
        pos = self.stack.positions.position(symbol)
        held = pos is not None and pos.qty > 0
        if held and symbol not in self._open:
            self._open.add(symbol)
            self.bus.publish(PositionOpened(ts_ms=self.clock.now_ms(), symbol=symbol, qty=pos.qty,
                                            avg_price=pos.avg_price))
        elif not held and symbol in self._open:
            self._open.discard(symbol)
            self.bus.publish(PositionClosed(ts_ms=self.clock.now_ms(), symbol=symbol,
                                            realised_pnl=pos.realised_pnl if pos is not None else ZERO))
        return held

    def _shutdown(self) -> None:
        self._set_state(BotState.STOPPING, self.report.stop_reason)
        try:
            self.source.stop()
        except Exception:  # noqa: BLE001 - the final reconciliation matters more
            log.warning("stopping the candle source failed", exc_info=True)
        try:
            self.reconcile()
        except ThunesError as exc:
            log.warning("final reconciliation failed: %s", exc)
        self._drain_commands()
        self.stack.audit.append("bot_stopped", {"reason": self.report.stop_reason, "candles": self.report.candles,
                                                "orders": self.report.orders})
        self._running = False
        self._set_state(BotState.STOPPED, self.report.stop_reason)
        if self.jobs is not None:
            self.jobs.save()


_COMMANDS = {"status": "status", "pause": "pause", "resume": "resume", "stop": "request_stop",
             "force_exit": "force_exit", "reload": "reload", "reconcile": "reconcile", "jobs": "jobs_status",
             "apply_params": "apply_params"}
