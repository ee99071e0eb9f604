"""Assembly of the multi-pair bot: one safety core shared by one trader per pair.

::

    exchange port (one RecordingPort, one ccxt client) ─┐
    one Database: OrderJournal + PositionTracker       ├─> one OrderExecutor ─> GatedExecutor (pause, events)
    one RiskManager (max positions, one per symbol,    │                              │
        daily-loss kill-switch, cool-down) ────────────┘                    Trader(BTC) Trader(ETH) ...
    one AuditTrail, one Ledger, one Reconciler over every symbol, one EventBus

Every trader is the unchanged :class:`~thunes.live.trader.Trader` (the same class that paper- and
live-trades one pair and that parity tests against the backtester); only its executor is the shared
one, wrapped by :class:`GatedExecutor`. All of them are driven by one thread (:class:`~thunes.live.bot.Bot`),
so the ccxt client, which is not thread-safe, sees one call at a time, and the risk manager's checks are
atomic across pairs anyway (its own lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import ConfigError, ExchangeError
from thunes.core.events import (
    EventBus,
    KillSwitchChanged,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RiskDenied,
)
from thunes.execution.account import close_all
from thunes.execution.ledger import Ledger
from thunes.live.config import Assignment
from thunes.live.sources import StreamKey

__all__ = ["PAUSED_RULE", "BotStack", "GatedExecutor", "build_bot"]

log = logging.getLogger(__name__)
ZERO = Decimal(0)
PAUSED_RULE = "paused"


class GatedExecutor:
    """The shared :class:`~thunes.execution.orders.OrderExecutor`, with the bot's pause gate and events.

    * While the bot is paused an entry is refused before the risk manager sees it (rule ``paused``);
      exits always go through, so a paused bot still closes positions on its strategies' exits.
    * After every order it publishes what happened: ``RiskDenied``, ``OrderSubmitted``, ``OrderFilled``,
      ``OrderRejected``, and ``KillSwitchChanged`` when the order (a realised loss) tripped the switch.
      (Position events come from the bot, after the trader has written off an exit's dust.)
    * A lock serialises orders, so a force-exit from a control thread never interleaves with the loop.
    """

    def __init__(self, inner: Any, *, bus: EventBus, clock: Clock) -> None:
        self.inner = inner
        self.bus = bus
        self.clock = clock
        self.paused = False
        self.lock = threading.RLock()
        self._kill = bool(inner.risk.state.kill_switch)

    @property
    def markets(self) -> Any:
        return self.inner.markets

    @property
    def risk(self) -> Any:
        return self.inner.risk

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def execute(self, intent: Any) -> Any:
        outcome = self.execute_many([intent])[0]
        if isinstance(outcome, ExchangeError):
            raise outcome
        return outcome

    def execute_many(self, intents: Sequence[Any]) -> list[Any]:
        """The inner executor's :meth:`~thunes.execution.orders.OrderExecutor.execute_many` behind the pause gate,
        publishing each order's events (an exchange error takes the place of its outcome, as there)."""
        from thunes.execution.orders import OrderOutcome, intent_client_order_id
        from thunes.execution.risk import Denied

        outcomes: list[Any] = [None] * len(intents)
        gated = []
        for i, intent in enumerate(intents):
            if self.paused and not intent.is_exit:
                denied = Denied(intent=intent, rule=PAUSED_RULE, reason="the bot is paused: exits only",
                                decision_id=-1)
                self.bus.publish(RiskDenied(ts_ms=self.clock.now_ms(), symbol=intent.symbol, side=str(intent.side),
                                            rule=PAUSED_RULE, reason=denied.reason))
                outcomes[i] = OrderOutcome(intent=intent, client_order_id=intent_client_order_id(intent),
                                           decision=denied)
            else:
                gated.append(i)
        if gated:
            with self.lock:
                placed = self.inner.execute_many([intents[i] for i in gated])
            for i, outcome in zip(gated, placed, strict=True):
                outcomes[i] = outcome
                if not isinstance(outcome, ExchangeError):
                    self._publish(intents[i], outcome)
        return outcomes

    def _publish(self, intent: Any, outcome: Any) -> None:
        from thunes.execution.risk import Denied

        now = self.clock.now_ms()
        side = str(intent.side)
        cid = outcome.client_order_id
        decision = outcome.decision
        events: list[Any] = []
        if isinstance(decision, Denied):
            events.append(RiskDenied(ts_ms=now, symbol=intent.symbol, side=side, rule=decision.rule,
                                     reason=decision.reason))
        elif outcome.entry is not None and not outcome.duplicate:
            events.append(OrderSubmitted(ts_ms=now, symbol=intent.symbol, side=side, client_order_id=cid,
                                         bar_ts=intent.bar_ts, strategy=intent.strategy, reason=intent.reason))
            if outcome.filled_qty > 0:
                events.append(OrderFilled(ts_ms=now, symbol=intent.symbol, side=side, client_order_id=cid,
                                          qty=outcome.filled_qty, avg_price=outcome.cum_quote / outcome.filled_qty,
                                          status=str(outcome.status)))
            elif outcome.error or str(outcome.status) in ("REJECTED", "EXPIRED", "CANCELED"):
                events.append(OrderRejected(ts_ms=now, symbol=intent.symbol, side=side, client_order_id=cid,
                                            reason=outcome.error or str(outcome.status)))
        elif outcome.error:
            events.append(OrderRejected(ts_ms=now, symbol=intent.symbol, side=side, client_order_id=cid,
                                        reason=outcome.error))
        self.bus.publish_all(events)
        self.check_kill_switch()

    def check_kill_switch(self) -> None:
        """Publish ``KillSwitchChanged`` when the switch moved since the last look (an order, a mark, a person)."""
        snap = self.inner.risk.state
        if bool(snap.kill_switch) != self._kill:
            self._kill = bool(snap.kill_switch)
            self.bus.publish(KillSwitchChanged(ts_ms=self.clock.now_ms(), on=self._kill, reason=snap.kill_reason,
                                               operator=snap.kill_operator))


@dataclass(slots=True, kw_only=True)
class BotStack:
    """Everything the bot was built from (closed together by :meth:`close`)."""

    traders: dict[StreamKey, Any]
    assignments: dict[StreamKey, Assignment]
    exchange: Any
    executor: GatedExecutor
    risk: Any
    journal: Any
    positions: Any
    audit: Any
    ledger: Any
    reconciler: Any
    baseline: Any
    db: Any
    markets: dict[str, Any]
    bus: EventBus
    clock: Clock
    state_dir: Path
    lease: Any = None  # the AccountLease held while the bot trades
    closers: list[Any] = field(default_factory=list)

    def trader_for(self, symbol: str) -> Any:
        for key, trader in self.traders.items():
            if key.symbol == symbol:
                return trader
        raise ConfigError(f"the bot does not trade {symbol!r}; it trades {sorted(k.symbol for k in self.traders)}")

    def close(self) -> None:
        close_all(*self.closers, self.ledger.close, getattr(self.audit, "close", None), getattr(self.db, "close", None),
                  getattr(self.lease, "release", None))


def build_bot(
    exchange: Any,
    *,
    assignments: Sequence[Assignment],
    risk_settings: Any,
    state_dir: Path,
    bus: EventBus | None = None,
    clock: Clock | None = None,
    audit_path: Path | None = None,
    ledger_path: Path | None = None,
    audit_fsync: str = "always",
    settle_ms: int | None = None,
    max_signal_age_bars: float = 0.5,
    durable: bool = True,
    settings: Any = None,
    config_source: str = "thunes bot",
) -> BotStack:
    """Build the shared safety core and one trader per assignment (see the module docstring).

    The execution database, the risk switch file, the reconciliation baseline and each trader's state
    file live in ``state_dir``; the audit trail and ledger default to ``state_dir/audit.jsonl`` and
    ``state_dir/ledger.csv``. At start the risk manager is restored from the tracked positions
    (:meth:`OrderExecutor.restore_risk`), so a restart knows what it holds across every pair.
    """
    from thunes.execution import TradeIntent
    from thunes.execution.account import open_account
    from thunes.execution.reconcile import Baseline, Reconciler
    from thunes.live.trader import RecordingPort, Trader, TraderOptions
    from thunes.strategies import get_strategy

    if not assignments:
        raise ConfigError("the bot needs at least one assignment (pair, strategy, timeframe)")
    clock = clock or LiveClock()
    bus = bus or EventBus()
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    port = exchange if isinstance(exchange, RecordingPort) else RecordingPort(exchange)
    markets = port.load_markets()
    missing = [a.symbol for a in assignments if a.symbol not in markets]
    if missing:
        raise ConfigError(f"the exchange has no market {', '.join(missing)}")
    strategies = {}
    for a in assignments:
        try:
            strategies[a.symbol] = get_strategy(a.strategy)(**a.params)
        except TypeError as exc:
            raise ConfigError(f"{a.symbol}: strategy {a.strategy}: {exc}") from exc
    account = open_account(port, markets, risk_settings=risk_settings,
                           db_url=f"sqlite:///{(state_dir / 'execution.sqlite').resolve()}",
                           audit_path=audit_path or state_dir / "audit.jsonl",
                           risk_state_path=state_dir / "risk_state.json", clock=clock, audit_fsync=audit_fsync,
                           settle_ms=settle_ms, settings=settings, config_source=config_source, durable=durable)
    db, journal, positions, audit, risk, inner = (account.db, account.journal, account.positions, account.audit,
                                                  account.risk, account.executor)
    executor = GatedExecutor(inner, bus=bus, clock=clock)
    ledger = Ledger(ledger_path or state_dir / "ledger.csv")
    baseline = Baseline(db, legacy_json=state_dir / "baseline.json")
    tolerance = {}
    for a in assignments:
        f = markets[a.symbol].filters
        tolerance[a.symbol] = f.market_step_size if f.market_step_size > 0 else f.step_size
    reconciler = Reconciler(port, journal=journal, positions=positions, symbols=[a.symbol for a in assignments],
                            baseline=baseline, executor=inner, audit=audit, clock=clock, tolerance=tolerance)
    traders: dict[StreamKey, Any] = {}
    by_key: dict[StreamKey, Assignment] = {}
    for a in assignments:
        key = StreamKey(a.symbol, a.timeframe)
        options = TraderOptions(symbol=a.symbol, timeframe=a.timeframe, quote_per_trade=a.quote_per_trade,
                                state_dir=state_dir, max_signal_age_bars=max_signal_age_bars)
        # reconciler=None: the bot reconciles every pair at once (one call, one report), not each trader.
        traders[key] = Trader(exchange=port, strategy=strategies[a.symbol], options=options, executor=executor,
                              positions=positions, ledger=ledger, audit=audit, clock=clock, reconciler=None,
                              intent_factory=TradeIntent,
                              dust_sink=lambda symbol, qty: baseline.add(symbol.split("/")[0], qty))
        by_key[key] = a
    return BotStack(traders=traders, assignments=by_key, exchange=port, executor=executor, risk=risk,
                    journal=journal, positions=positions, audit=audit, ledger=ledger, reconciler=reconciler,
                    baseline=baseline, db=db, markets=markets, bus=bus, clock=clock, state_dir=state_dir,
                    lease=account.lease)
