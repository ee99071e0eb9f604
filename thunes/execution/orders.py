"""The order executor: intent -> risk -> filters -> write-ahead journal -> exchange -> journal/positions.

::

    execute(intent)
      ├─ journal already has the intent's client order id?  -> return it (never a second order)
      ├─ risk.check(intent)                 Denied -> outcome, nothing sent
      ├─ filters.prepare_*_order            FilterRejected -> slot released, nothing sent
      ├─ journal.record_sent: one commit before the request leaves (write-ahead); the risk decision and
      │     the order intent audit records go into the audit outbox in the same commit: one fsync in all
      │     (without an outbox: audited in one group, fsynced while the journal commits)
      ├─ exchange.place_order(client_order_id=...)   through the circuit breaker and the rate limiter
      │     OrderRejected        -> REJECTED (a -1013 also reloads the market filters)
      │     retryable / unknown  -> look the order up by client order id; resend only if not found
      └─ apply the result: journal status + position delta in one transaction, then risk + audit

The client order id is ``client_order_id(strategy, symbol, side, bar_ts, entry|exit)``: replaying the same
intent after a crash finds the journal row, and the exchange knows the order by the same id.

**When a missing order is final.** Binance accepts a signed request while ``timestamp < serverTime + 1000``
and ``serverTime - timestamp <= recvWindow``, and refuses a reused client order id only while the first
order is *open*. A request whose answer was lost (a 502, a timeout) may therefore still land and fill up to
``recvWindow`` after it was signed, plus however far our clock runs ahead of the exchange's (below 1000 ms,
or every prompt request is refused with -1021 and the adapter resyncs). Resending before then can fill twice.
So the executor polls the order by client order id until :func:`min_settle_ms` has passed since the call
returned (after the signature, so the wait is never short), and only a not-found from a lookup sent after
that is final. The settle time derives from the port's ``recv_window_ms``; an explicit
``ExecutorOptions.settle_ms`` below it is refused with ``ConfigError``. Waits use the clock's monotonic
seconds: in a replay the market clock runs ahead of the wall clock that signs and checks requests.

:meth:`OrderExecutor.recover` runs at start-up (and from reconciliation): SENT rows are looked up by client
order id; found ones are applied, missing ones are polled until the settle time has passed since this
executor started (the previous process, which may have signed the request, died before that). A row proven
never placed (and a PENDING row, journaled by a caller that uses that stage) is an intent that was never
sent, and it is re-decided rather than dropped: an exit is sent again (a position must never stay open
because of a crash), an entry is sent again while its bar is younger than ``entry_ttl_ms`` and otherwise
closed as EXPIRED with its risk slot released; either goes through the risk manager first (a denial closes
the row as CANCELED, audited). The resend uses the same client order id: the original can no longer be
accepted, and the exchange refuses only ids of open orders. Open orders are refreshed.

**While an outcome is unknown, the symbol is held.** An order left SENT (its answer lost and its lookups
failing, or found so by :meth:`OrderExecutor.restore_risk` after a restart) may still land. Until it is resolved
the risk manager denies every new intent on its symbol (rule ``order_outcome_unknown``): a second exit could
sell the same coins twice, a second entry buy past the position cap. Each new intent on a held symbol first
tries once more to resolve it (:meth:`OrderExecutor.resolve_unknown`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import (
    AuthenticationError,
    ConfigError,
    DuplicateOrder,
    ExchangeError,
    FilterRejected,
    OrderNotFound,
    OrderRejected,
    RetryableError,
    StoreError,
)
from thunes.core.ids import client_order_id
from thunes.core.markets import Market, round_down_to_step
from thunes.exchange.port import ExchangePort
from thunes.exchange.types import OrderRequest, OrderResult
from thunes.execution.audit import AuditTrail, OutboxBatch
from thunes.execution.circuit_breaker import CircuitBreaker, CircuitOpen
from thunes.execution.filters import (
    MarketBook,
    PreparedOrder,
    market_step,
    prepare_limit_order,
    prepare_market_order,
)
from thunes.execution.journal import JournalEntry, OrderJournal
from thunes.execution.positions import PositionTracker
from thunes.execution.rate_limiter import RateLimiter
from thunes.execution.risk import Approved, Denied, RiskManager, TradeIntent

__all__ = [
    "CLOCK_AHEAD_LIMIT_MS",
    "SETTLE_MARGIN_MS",
    "ExecutorOptions",
    "OrderExecutor",
    "OrderOutcome",
    "RecoveryReport",
    "intent_client_order_id",
    "min_settle_ms",
]

ZERO = Decimal(0)
# Binance refuses a timestamp 1000 ms or more ahead of its clock: a request it accepts carries at most that skew.
CLOCK_AHEAD_LIMIT_MS = 1_000
SETTLE_MARGIN_MS = 500


def min_settle_ms(recv_window_ms: int) -> int:
    """The shortest wait after a lost answer before a not-found order is final: the ``recvWindow`` the request
    was signed with, plus the clock skew the exchange tolerates, plus a margin (4 s window -> 5.5 s)."""
    return int(recv_window_ms) + CLOCK_AHEAD_LIMIT_MS + SETTLE_MARGIN_MS


def intent_client_order_id(intent: TradeIntent) -> str:
    """The deterministic client order id of an intent (same intent, same id, across restarts)."""
    return client_order_id(intent.strategy, intent.symbol, str(intent.side), intent.bar_ts,
                           "exit" if intent.is_exit else "entry")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorOptions:
    order_type: OrderType = OrderType.MARKET
    limit_offset_bps: Decimal = Decimal(0)  # LIMIT orders: price = ref ∓ offset (buy below, sell above)
    send_attempts: int = 3  # sends of one order when lookups prove the previous attempt was not placed
    lookup_attempts: int = 3
    retry_sleep_s: float = 0.5  # also the interval of the lookups while a lost answer settles
    # None: min_settle_ms(exchange.recv_window_ms). A value below that is refused (ConfigError).
    settle_ms: int | None = None
    # An entry found never placed at recovery is sent again while now - bar_ts <= entry_ttl_ms (the trader sets
    # its signal-age rule here); None: such entries are closed as EXPIRED. Exits are always sent again.
    entry_ttl_ms: int | None = None
    # The risk decision and order intent records are committed with the journal's SENT row, in the audit outbox
    # (one fsync before the send), when the trail's anchors live in the journal's database; False: the file is
    # fsynced itself (the benchmark compares).
    audit_outbox: bool = True
    # Without the outbox: fsync the audit file on a helper thread while the journal commits (both durable
    # before the order leaves, in about the time of one fsync); False: one after the other.
    overlap_fsyncs: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderOutcome:
    intent: TradeIntent
    client_order_id: str
    decision: Approved | Denied | None = None
    entry: JournalEntry | None = None
    duplicate: bool = False
    error: str | None = None

    @property
    def status(self) -> OrderStatus | None:
        return self.entry.status if self.entry is not None else None

    @property
    def filled_qty(self) -> Decimal:
        return self.entry.filled_qty if self.entry is not None else ZERO

    @property
    def cum_quote(self) -> Decimal:
        return self.entry.cum_quote if self.entry is not None else ZERO

    @property
    def placed(self) -> bool:
        return self.entry is not None and self.entry.status not in (OrderStatus.PENDING, OrderStatus.REJECTED) \
            and not (self.entry.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
                     and self.entry.exchange_order_id is None)


@dataclass(slots=True)
class RecoveryReport:
    resolved: list[str] = field(default_factory=list)  # found at the exchange, journal updated
    never_sent: list[str] = field(default_factory=list)  # PENDING at crash: never left, re-decided
    not_found: list[str] = field(default_factory=list)  # SENT, unknown to the exchange after settling: re-decided
    resent: list[str] = field(default_factory=list)  # never placed, sent again (exits; entries still young)
    expired: list[str] = field(default_factory=list)  # never placed entries older than entry_ttl_ms: EXPIRED
    denied: list[str] = field(default_factory=list)  # never placed, the risk manager refused a resend: CANCELED
    refreshed: list[str] = field(default_factory=list)  # open orders re-read
    unresolved: list[str] = field(default_factory=list)  # lookup failed; try again later


class OrderExecutor:
    """Places orders safely. Thread-compatible (no shared mutable state of its own besides the exchange
    client, which ccxt does not make thread-safe): give each trading loop its own executor."""

    def __init__(
        self,
        exchange: ExchangePort,
        *,
        risk: RiskManager,
        journal: OrderJournal,
        positions: PositionTracker,
        markets: MarketBook | Mapping[str, Market],
        clock: Clock | None = None,
        audit: AuditTrail | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        options: ExecutorOptions = ExecutorOptions(),
    ) -> None:
        self.exchange = exchange
        self.risk = risk
        self.journal = journal
        self.positions = positions
        self.markets = markets
        self.clock = clock or LiveClock()
        self.audit = audit
        self.breaker = breaker
        self.limiter = limiter
        self.options = options
        self._settle_floor_check()  # a settle time below the port's signed window fails here, not at a lost answer
        self._born = self.clock.monotonic()  # any request of a previous process was signed before this
        self._unknown_since: dict[str, float] = {}  # client order id -> monotonic time its last send returned

    @property
    def settle_ms(self) -> int:
        """Milliseconds after a send returned before a not-found is final (see the module docstring)."""
        return self._settle_floor_check()

    def _settle_floor_check(self) -> int:
        floor = min_settle_ms(self.exchange.recv_window_ms)
        chosen = self.options.settle_ms
        if chosen is None:
            return floor
        if chosen < floor:
            raise ConfigError(
                f"ExecutorOptions.settle_ms={chosen} is below what the exchange port signs with: recvWindow "
                f"{self.exchange.recv_window_ms} ms + {CLOCK_AHEAD_LIMIT_MS} ms clock skew + "
                f"{SETTLE_MARGIN_MS} ms = {floor} ms; a lost order could still land after a resend "
                f"(leave settle_ms unset to derive it)")
        return chosen

    # -- helpers -------------------------------------------------------------------------------------
    def _audit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(kind, payload)

    def _audit_group(self) -> AbstractContextManager[Any]:
        """One audit fsync for the records written inside (see :meth:`AuditTrail.group`)."""
        group = getattr(self.audit, "group", None)
        return group() if group is not None else nullcontext()

    def _audit_outbox(self) -> AbstractContextManager[OutboxBatch | None]:
        """The trail's outbox block when its anchors share the journal's database connection (one commit can
        then carry the audit records and the journal row), else a block that yields None."""
        anchors = getattr(self.audit, "anchors", None)
        if not self.options.audit_outbox or anchors is None or getattr(anchors, "db", None) is not self.journal.db:
            return nullcontext()
        return self.audit.outbox()  # type: ignore[union-attr]

    def _audit_sync_soon(self) -> Future[bool] | None:
        """Start the audit fsync now (fsync=always only), to overlap it with the journal commit."""
        if self.audit is None or getattr(self.audit, "fsync", None) != "always" or \
                not hasattr(self.audit, "sync_soon"):
            return None
        return self.audit.sync_soon()

    def _market(self, symbol: str) -> Market:
        market = self.markets.get(symbol)
        if market is None:
            raise FilterRejected(f"unknown symbol {symbol!r}", code=-1121, filter_name="SYMBOL")
        return market

    def _call(self, fn: Any, *args: Any, orders: int = 0, weight: float = 1) -> Any:
        if self.limiter is not None:
            self.limiter.acquire(weight=weight, orders=orders)
        try:
            if self.breaker is not None:
                return self.breaker.call(fn, *args)
            return fn(*args)
        except RetryableError as exc:
            if self.limiter is not None:
                self.limiter.observe_error(exc)
            raise
        finally:
            if self.limiter is not None:
                # ccxt keeps the last answer's headers (X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-*)
                client = getattr(self.exchange, "client", None)
                self.limiter.update_from_headers(getattr(client, "last_response_headers", None))

    def _is_dust(self, symbol: str, qty: Decimal, price: Decimal | None) -> bool:
        """True when ``qty`` cannot be sold at market: below the step, the minimum quantity or notional."""
        market = self.markets.get(symbol)
        if market is None or qty <= 0:
            return qty <= 0
        f = market.filters
        q = round_down_to_step(qty, market_step(market))
        if q <= 0 or q < f.min_qty or (f.market_min_qty > 0 and q < f.market_min_qty):
            return True
        return price is not None and f.apply_min_to_market and q * price < f.min_notional

    def restore_risk(self) -> None:
        """Rebuild the risk manager's state from the database after a restart (dust is not a position):
        the one restore path, :meth:`RiskManager.restore_from`, on the risk manager's own clock. Orders the
        journal cannot place (PENDING, SENT) hold their symbol until :meth:`recover` resolves them."""
        self.risk.restore_from(self.positions, is_dust=lambda p: self._is_dust(p.symbol, p.qty, p.avg_price))
        for entry in self.journal.unresolved():
            self.risk.order_outcome_unknown(entry.symbol, entry.client_order_id)

    def _prepare(self, intent: TradeIntent, approved: Approved) -> PreparedOrder:
        market = self._market(intent.symbol)
        open_orders = self.journal.count_open(intent.symbol)
        qty = approved.qty
        if intent.is_exit and intent.qty is None:
            # Sell everything held, including dust left by earlier base-asset fees.
            held = self.positions.position(intent.symbol)
            if held is not None and held.qty > qty:
                qty = held.qty
        if self.options.order_type is OrderType.MARKET:
            return prepare_market_order(market, intent.side, qty=qty, ref_price=intent.price,
                                        open_orders=open_orders)
        offset = intent.price * self.options.limit_offset_bps / Decimal(10_000)
        price = intent.price - offset if intent.side is Side.BUY else intent.price + offset
        return prepare_limit_order(market, intent.side, qty=qty, price=price, ref_price=intent.price,
                                   open_orders=open_orders)

    # -- the order path ------------------------------------------------------------------------------
    def execute(self, intent: TradeIntent) -> OrderOutcome:
        outcome = self.execute_many([intent])[0]
        if isinstance(outcome, ExchangeError):
            raise outcome
        return outcome

    def execute_many(self, intents: Sequence[TradeIntent]) -> list[OrderOutcome | ExchangeError]:
        """Place the orders of several intents at once (one bar's decisions across pairs): each intent's outcome,
        or the exchange error that ended its path (the others go on), in the intents' order.

        The exits go first, then the entries, so that an entry is checked against the day's loss with the
        exits' results booked, as one at a time. Within each group the risk checks run one after the other
        (each sees the slots the previous ones reserved), the group's journal rows and their audit records
        are made durable in one commit, the orders are sent back to back, and only then are the answers
        booked, in one commit: the bookkeeping of one order no longer delays the next one's send. Intents
        on one symbol are kept apart: the second waits for the first's group to be booked.
        """
        outcomes: list[OrderOutcome | ExchangeError | None] = [None] * len(intents)
        pending = list(range(len(intents)))
        while pending:
            exits = [i for i in pending if intents[i].is_exit]
            wave, seen = [], set()
            for i in exits or pending:
                if intents[i].symbol not in seen:
                    seen.add(intents[i].symbol)
                    wave.append(i)
            for i, outcome in zip(wave, self._execute_group([intents[i] for i in wave]), strict=True):
                outcomes[i] = outcome
            pending = [i for i in pending if outcomes[i] is None]
        return [o for o in outcomes if o is not None]

    def _execute_group(self, intents: list[TradeIntent]) -> list[OrderOutcome | ExchangeError]:
        outcomes: list[OrderOutcome | ExchangeError | None] = [None] * len(intents)
        todo: list[int] = []
        for i, intent in enumerate(intents):
            cid = intent_client_order_id(intent)
            existing = self.journal.get(cid)
            if existing is not None:
                outcomes[i] = OrderOutcome(intent=intent, client_order_id=cid, entry=existing, duplicate=True)
                continue
            if self.risk.unknown_orders(intent.symbol):
                try:  # one lookup each; what is still unknown denies the intent below
                    self.resolve_unknown(intent.symbol)
                except ExchangeError as exc:
                    outcomes[i] = exc
                    continue
            todo.append(i)
        journaled = self._journal_intents([intents[i] for i in todo])
        sent: list[tuple[int, JournalEntry]] = []
        for i, step in zip(todo, journaled, strict=True):
            if isinstance(step, OrderOutcome):
                outcomes[i] = step
            else:
                sent.append((i, step[1]))
        # Back to back: each request leaves as soon as the previous answer is in; the answers are booked after
        # the last send. Should this stop half-way (an unexpected error), the rows not sent hold their symbols.
        answers: list[tuple[int, JournalEntry, OrderResult | JournalEntry]] = []
        try:
            for i, entry in sent:
                answers.append((i, entry, self._place(entry)))
        except BaseException:
            for _i, entry in sent[len(answers):]:
                self.risk.order_outcome_unknown(entry.symbol, entry.client_order_id)
            raise
        booked = self._apply_all([(entry, a) for _i, entry, a in answers if isinstance(a, OrderResult)])
        for i, entry, answer in answers:
            intent = intents[i]
            decision = journaled[todo.index(i)][0]  # type: ignore[index]
            final = booked.pop(0) if isinstance(answer, OrderResult) else answer
            if isinstance(final, ExchangeError):
                outcomes[i] = final
            else:
                outcomes[i] = OrderOutcome(intent=intent, client_order_id=entry.client_order_id, decision=decision,
                                           entry=final, error=final.error)
        return [o for o in outcomes if o is not None]

    def _journal_intents(self, intents: list[TradeIntent]) -> list[OrderOutcome | tuple[Approved, JournalEntry]]:
        """Risk check, filters and the write-ahead journal row of each intent: an outcome for an intent that
        goes no further, else its approval and SENT row.

        One fsync before the requests leave: the journal commit (write-ahead) carries the risk decision and the
        order intent records in the audit outbox (AuditTrail.outbox). Without an outbox, two at the same time:
        the journal commit and one audit fsync covering the records (one group, see AuditTrail.group).
        """
        steps: list[OrderOutcome | tuple[Approved, PreparedOrder]] = []
        with self._audit_group(), self._audit_outbox() as outbox:
            for intent in intents:
                cid = intent_client_order_id(intent)
                decision = self.risk.check(intent)
                if isinstance(decision, Denied):
                    steps.append(OrderOutcome(intent=intent, client_order_id=cid, decision=decision))
                    continue
                try:
                    prepared = self._prepare(intent, decision)
                except FilterRejected as exc:
                    if decision.reserved:
                        self.risk.release(intent.symbol)
                    self._audit("order_refused", {"client_order_id": cid, "symbol": intent.symbol,
                                                  "filter": exc.filter_name, "error": str(exc)})
                    steps.append(OrderOutcome(intent=intent, client_order_id=cid, decision=decision,
                                              error=str(exc)))
                    continue
                self._audit("order_intent", {"client_order_id": cid, "symbol": prepared.symbol,
                                             "side": str(prepared.side), "type": str(prepared.order_type),
                                             "qty": str(prepared.qty),
                                             "price": None if prepared.price is None else str(prepared.price),
                                             "ref_price": str(prepared.ref_price),
                                             "decision_id": decision.decision_id, "strategy": intent.strategy,
                                             "bar_ts": intent.bar_ts, "reason": intent.reason})
                steps.append((decision, prepared))
            approved = [(intent, step) for intent, step in zip(intents, steps, strict=True) if isinstance(step, tuple)]
            if not approved:
                return [s for s in steps if isinstance(s, OrderOutcome)]
            audit_synced = self._audit_sync_soon() if outbox is None and self.options.overlap_fsyncs else None
            rows: list[tuple[JournalEntry, bool]] = []
            try:
                with self.journal.db.transaction():
                    if outbox is not None:
                        outbox.store()
                    for intent, (_decision, prepared) in approved:
                        rows.append(self.journal.record_sent(
                            intent_client_order_id(intent), prepared, strategy=intent.strategy, reason=intent.reason,
                            bar_ts=intent.bar_ts, is_exit=intent.is_exit))
                if outbox is not None:
                    outbox.committed()
            except StoreError as exc:
                # Not journaled, so never sent: say so after the intent records, and free the slots.
                for intent, (decision, _prepared) in approved:
                    if decision.reserved:
                        self.risk.release(intent.symbol)
                    self._audit("order_not_sent", {"client_order_id": intent_client_order_id(intent),
                                                   "error": f"journal write failed: {exc}"})
                raise
            finally:
                if audit_synced is not None:
                    audit_synced.result()
            out: list[OrderOutcome | tuple[Approved, JournalEntry]] = []
            made = iter(rows)
            for intent, step in zip(intents, steps, strict=True):
                if isinstance(step, OrderOutcome):
                    out.append(step)
                    continue
                decision, _prepared = step
                entry, created = next(made)
                if not created:  # another thread journaled the same intent between our get() and here
                    if decision.reserved:
                        self.risk.release(intent.symbol)
                    self._audit("order_intent_withdrawn", {"client_order_id": entry.client_order_id,
                                                           "reason": "already journaled by another caller"})
                    out.append(OrderOutcome(intent=intent, client_order_id=entry.client_order_id, entry=entry,
                                            duplicate=True))
                else:
                    out.append((decision, entry))
            return out

    def _request(self, entry: JournalEntry) -> OrderRequest:
        return OrderRequest(symbol=entry.symbol, side=entry.side, type=entry.order_type,
                            client_order_id=entry.client_order_id, qty=entry.qty,
                            price=entry.price if entry.order_type is OrderType.LIMIT else None,
                            time_in_force=None)

    def _close_unsent(self, entry: JournalEntry, status: OrderStatus, error: str) -> JournalEntry:
        _, new = self.journal.apply_update(entry.client_order_id, status, error=error)
        self.risk.order_outcome_known(entry.client_order_id)
        if not entry.is_exit:
            self.risk.release(entry.symbol)
        self._audit("order_result", {"client_order_id": entry.client_order_id, "status": str(status),
                                     "error": error, "filled_qty": "0"})
        return new

    def _send(self, entry: JournalEntry) -> JournalEntry:
        """Send a journaled order and book its answer."""
        answer = self._place(entry)
        if isinstance(answer, JournalEntry):
            return answer
        booked = self._apply_all([(entry, answer)])[0]
        if isinstance(booked, ExchangeError):
            raise booked
        return booked

    def _place(self, entry: JournalEntry) -> OrderResult | JournalEntry:
        """Send a journaled order: the exchange's answer, not yet booked, or the row closed or left unknown when
        there is no answer to book (rejected, never sent, outcome unknown)."""
        request = self._request(entry)
        last_error = ""
        for _attempt in range(max(1, self.options.send_attempts)):
            try:
                try:
                    result: OrderResult = self._call(self.exchange.place_order, request, orders=1)
                finally:
                    # Taken after the call returned, so after any signature it made (an -1021 resync signs twice).
                    self._unknown_since[entry.client_order_id] = self.clock.monotonic()
                self._unknown_since.pop(entry.client_order_id, None)
                return result
            except CircuitOpen as exc:
                # Refused before leaving the process: certainly not placed.
                self._unknown_since.pop(entry.client_order_id, None)
                return self._close_unsent(entry, OrderStatus.CANCELED, f"not sent: {exc}")
            except DuplicateOrder:
                found, _known = self._lookup(entry)
                if found is not None:
                    self._unknown_since.pop(entry.client_order_id, None)
                    return found
                last_error = "duplicate order reported but not found"
            except OrderRejected as exc:
                self._unknown_since.pop(entry.client_order_id, None)
                if isinstance(exc, FilterRejected) or exc.code == -1013:
                    if isinstance(self.markets, MarketBook):
                        self.markets.on_filter_rejection(exc)
                return self._close_unsent(entry, OrderStatus.REJECTED, f"rejected: {exc}")
            except AuthenticationError as exc:
                self._unknown_since.pop(entry.client_order_id, None)
                return self._close_unsent(entry, OrderStatus.REJECTED, f"authentication: {exc}")
            except ExchangeError as exc:
                # Timeout, 5xx, connection reset, unknown: the order may or may not exist, and the request may
                # still be on its way. Ask until it can no longer be accepted; resend only if it is still missing.
                last_error = f"{type(exc).__name__}: {exc}"
                found, known = self._await_outcome(entry, wait=True)
                if found is not None:
                    self._unknown_since.pop(entry.client_order_id, None)
                    return found
                if not known:
                    break  # cannot tell: leave it SENT for recover()
        _, new = self.journal.apply_update(entry.client_order_id, OrderStatus.SENT,
                                           error=f"outcome unknown: {last_error}")
        self.risk.order_outcome_unknown(entry.symbol, entry.client_order_id)
        self._audit("order_unknown", {"client_order_id": entry.client_order_id, "error": last_error})
        return new

    def _settled_at(self, client_order_id: str) -> float:
        """Monotonic time after which a request for this order can no longer be accepted by the exchange."""
        since = self._unknown_since.get(client_order_id, self._born)
        return since + self.settle_ms / 1000

    def _await_outcome(self, entry: JournalEntry, *, wait: bool) -> tuple[OrderResult | None, bool]:
        """Look the order up by client order id until it is found or the settle time has passed.

        ``(result, True)``: found. ``(None, True)``: not found by a lookup sent after the settle time, so
        the order was never placed and never will be. ``(None, False)``: not known yet (``wait=False`` before
        the settle time, or the exchange could not be asked).
        """
        settled_at = self._settled_at(entry.client_order_id)
        while True:
            final = self.clock.monotonic() >= settled_at  # read before the lookup leaves
            found, known = self._lookup(entry)
            if found is not None:
                return found, True
            if final:
                return None, known
            if not wait:
                return None, False
            self.clock.sleep(min(max(self.options.retry_sleep_s, 0.01), settled_at - self.clock.monotonic()))

    def _lookup(self, entry: JournalEntry) -> tuple[OrderResult | None, bool]:
        """``(result, known)``: the exchange's view of the order by client order id. ``(None, True)``: the
        exchange says it does not exist; ``(None, False)``: we could not find out (exchange unreachable)."""
        for attempt in range(max(1, self.options.lookup_attempts)):
            try:
                return self._call(self.exchange.fetch_order, entry.symbol, entry.client_order_id), True
            except OrderNotFound:
                return None, True
            except CircuitOpen:
                break
            except ExchangeError:
                if attempt + 1 < self.options.lookup_attempts:
                    self.clock.sleep(self.options.retry_sleep_s)
        return None, False

    def _fee_effect(self, entry: JournalEntry, dqty: Decimal, dquote: Decimal, dfee: Decimal,
                    fee_asset: str | None) -> tuple[Decimal, Decimal]:
        """(net base quantity, fee in quote) of a fill delta. A base-asset fee on a buy means fewer coins."""
        if dfee <= 0 or not fee_asset:
            return dqty, ZERO
        market = self.markets.get(entry.symbol)
        base = market.base if market is not None else entry.symbol.split("/")[0]
        quote = market.quote if market is not None else entry.symbol.split("/")[-1]
        if fee_asset == base:
            if entry.side is Side.BUY:
                return dqty - dfee, ZERO
            return dqty, dfee * (dquote / dqty if dqty > 0 else ZERO)
        if fee_asset == quote:
            return dqty, dfee
        return dqty, ZERO  # paid in a third asset (BNB): not a cost of this position

    def _with_fees(self, result: OrderResult) -> OrderResult:
        """A looked-up order carries no commission (Binance's GET /order has no fills): take it from trades."""
        if result.filled_qty <= 0 or result.fills or result.fee > 0:
            return result
        trades = [t for t in self._call(self.exchange.fetch_my_trades, result.symbol, weight=20)
                  if t.order_id == result.exchange_order_id]
        if not trades:
            return result
        assets = {t.fee_asset for t in trades}
        fee = sum((t.fee for t in trades), ZERO)
        return replace(result, fee=fee, fee_asset=assets.pop() if len(assets) == 1 else None)

    def _apply(self, entry: JournalEntry, result: OrderResult) -> JournalEntry:
        """Book one answer (see :meth:`_apply_all`); an exchange error looking up its fees is raised."""
        booked = self._apply_all([(entry, result)])[0]
        if isinstance(booked, ExchangeError):
            raise booked
        return booked

    def _apply_all(self, answers: list[tuple[JournalEntry, OrderResult]]) -> list[JournalEntry | ExchangeError]:
        """Book the exchange's answers in one commit: each journal row, position delta, the risk manager's
        booking and their audit records (order result, fill), the records through the audit outbox when the
        trail has one (no audit fsync), else in one audit fsync.

        An answer whose fees cannot be looked up (an order found by a lookup carries none) is not booked: its
        error is returned in its place and the order is marked of unknown outcome, holding its symbol until a
        later lookup books it (:meth:`resolve_unknown`); a filled order left unbooked would let the next intent
        on the symbol trade as if it had not filled.
        """
        ready: list[tuple[JournalEntry, OrderResult] | ExchangeError] = []
        for entry, result in answers:
            try:
                ready.append((entry, self._with_fees(result)))
            except ExchangeError as exc:
                self.risk.order_outcome_unknown(entry.symbol, entry.client_order_id)
                self._audit("order_unknown", {"client_order_id": entry.client_order_id,
                                              "error": f"answer not booked, its fees could not be fetched: {exc}"})
                ready.append(exc)
        booked: list[JournalEntry | ExchangeError] = []
        with self._audit_group(), self._audit_outbox() as outbox:
            try:
                with self.journal.db.transaction():
                    for item in ready:
                        booked.append(item if isinstance(item, ExchangeError) else self._apply_result(*item))
                    if outbox is not None:
                        outbox.store()
            except StoreError:
                for entry, _result in answers:  # the rows stay SENT: hold their symbols until looked up again
                    self.risk.order_outcome_unknown(entry.symbol, entry.client_order_id)
                raise
            if outbox is not None:
                outbox.committed()
        return booked

    def _apply_result(self, entry: JournalEntry, result: OrderResult) -> JournalEntry:
        """Book one answer inside the caller's transaction (:meth:`_apply_all`)."""
        self.risk.order_outcome_known(entry.client_order_id)
        db = self.journal.db
        with db.transaction():
            old, new = self.journal.apply_update(
                entry.client_order_id, result.status, filled_qty=result.filled_qty, cum_quote=result.quote_filled,
                fee=result.fee, exchange_order_id=result.exchange_order_id, error=None)
            dqty = new.filled_qty - old.filled_qty
            dquote = new.cum_quote - old.cum_quote
            dfee = new.fee - old.fee
            net_qty, fee_quote = self._fee_effect(new, dqty, dquote, dfee, result.fee_asset)
            if dqty > 0:
                self.positions.apply_fill(new.symbol, new.side, net_qty, dquote, fee=fee_quote,
                                          client_order_id=new.client_order_id, ts_ms=result.ts_ms)
            if old.status != new.status or dqty > 0:
                self._audit("order_result", {"client_order_id": new.client_order_id, "status": str(new.status),
                                             "exchange_order_id": new.exchange_order_id,
                                             "filled_qty": str(new.filled_qty), "cum_quote": str(new.cum_quote),
                                             "fee": str(new.fee), "fee_asset": result.fee_asset})
            # The risk manager books the fill inside the commit too, so that its records (fill, dust closed) ride
            # in the outbox: the result costs the journal's one fsync and none of the audit file's.
            if dqty > 0:
                self.risk.record_fill(new.symbol, new.side, net_qty, dquote, fee_quote)
            if new.status.is_final and new.filled_qty == 0 and not new.is_exit:
                self.risk.release(new.symbol)
            if new.status.is_final and new.side is Side.SELL:
                left = self.positions.position(new.symbol)
                if left is not None and left.qty > 0 and \
                        self._is_dust(new.symbol, left.qty, new.avg_price or new.ref_price):
                    self.risk.close_dust(new.symbol)
        return new

    # -- after a crash -------------------------------------------------------------------------------
    def recover(self, *, wait: bool = True) -> RecoveryReport:
        """Resolve every order whose outcome the journal does not know (see the module docstring).

        ``wait=False`` does not wait for the settle time: rows still missing before it stay unresolved.
        """
        report = self._resolve(self.journal.unresolved(), wait=wait)
        for entry in self.journal.open_orders():
            if entry.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                found, _known = self._lookup(entry)
                if found is not None:
                    self._apply(entry, found)
                    report.refreshed.append(entry.client_order_id)
        self._audit_recovery(report)
        return report

    def resolve_unknown(self, symbol: str) -> RecoveryReport:
        """Try once more to resolve the orders of unknown outcome on ``symbol`` (without waiting for their
        settle time): what is found is applied, what is proven never placed is re-decided, the rest stays
        unknown and keeps holding the symbol (see :meth:`RiskManager.order_outcome_unknown`)."""
        entries = [e for e in self.journal.unresolved() if e.symbol == symbol]
        if not entries:  # resolved elsewhere (another executor on the same journal, or by hand)
            for cid in self.risk.unknown_orders(symbol):
                self.risk.order_outcome_known(cid)
            return RecoveryReport()
        report = self._resolve(entries, wait=False)
        if report.resolved or report.not_found or report.never_sent:
            self._audit_recovery(report)
        return report

    def _audit_recovery(self, report: RecoveryReport) -> None:
        self._audit("recovery", {"resolved": report.resolved, "never_sent": report.never_sent,
                                 "not_found": report.not_found, "resent": report.resent, "expired": report.expired,
                                 "denied": report.denied, "refreshed": report.refreshed,
                                 "unresolved": report.unresolved})

    def _resolve(self, entries: list[JournalEntry], *, wait: bool) -> RecoveryReport:
        report = RecoveryReport()
        for entry in entries:
            if entry.status is OrderStatus.PENDING:
                report.never_sent.append(entry.client_order_id)
                self._redecide(entry, report, "never sent (process stopped before the request)")
                continue
            found, known = self._await_outcome(entry, wait=wait)
            if found is not None:
                self._unknown_since.pop(entry.client_order_id, None)
                self._apply(entry, found)
                report.resolved.append(entry.client_order_id)
            elif not known:
                report.unresolved.append(entry.client_order_id)
                self.risk.order_outcome_unknown(entry.symbol, entry.client_order_id)
            else:
                report.not_found.append(entry.client_order_id)
                self._unknown_since.pop(entry.client_order_id, None)
                self._redecide(entry, report, "not found at the exchange after the settle time: never placed")
        return report

    def _redecide(self, entry: JournalEntry, report: RecoveryReport, why: str) -> None:
        """An intent that never reached the exchange: send it again or close it with the reason, never drop it."""
        cid = entry.client_order_id
        self.risk.order_outcome_known(cid)  # proven never placed: it no longer holds the symbol
        age_ms = self.clock.now_ms() - entry.bar_ts
        ttl = self.options.entry_ttl_ms
        if not entry.is_exit and (ttl is None or age_ms > ttl):
            report.expired.append(cid)
            limit = "no entry_ttl_ms" if ttl is None else f"entry_ttl_ms {ttl}"
            self._close_unsent(entry, OrderStatus.EXPIRED,
                               f"{why}; entry expired: its bar is {age_ms} ms old ({limit})")
            return
        intent = TradeIntent(symbol=entry.symbol, side=entry.side, price=entry.ref_price, qty=entry.qty,
                             strategy=entry.strategy, bar_ts=entry.bar_ts, is_exit=entry.is_exit,
                             reason=f"{entry.reason} (sent again after a restart: {why})".strip())
        with self._audit_group():
            decision = self.risk.check(intent)
            if isinstance(decision, Denied):
                report.denied.append(cid)
                self._close_unsent(entry, OrderStatus.CANCELED,
                                   f"{why}; not sent again: denied ({decision.rule}): {decision.reason}")
                return
            self._audit("order_resend", {"client_order_id": cid, "symbol": entry.symbol, "side": str(entry.side),
                                         "qty": str(entry.qty), "is_exit": entry.is_exit, "bar_ts": entry.bar_ts,
                                         "decision_id": decision.decision_id, "reason": why})
        if entry.status is OrderStatus.PENDING:
            entry = self.journal.mark_sent(cid)
        report.resent.append(cid)
        self._send(entry)

    def cancel(self, client_order_id: str) -> JournalEntry:
        """Cancel an open order by client order id and record the final state."""
        entry = self.journal.get(client_order_id)
        if entry is None:
            raise OrderNotFound(f"no journaled order {client_order_id!r}")
        result = self._call(self.exchange.cancel_order, entry.symbol, client_order_id)
        return self._apply(entry, result)
