"""The risk manager: the last gate before an order, returning a decision rather than raising.

``check(intent) -> Approved | Denied`` applies, in this order (the first rule that fails decides)::

    invalid intent          -> Denied("invalid")
    kill-switch on          -> Denied("kill_switch")      mode HALTED: nothing goes out
    a circuit breaker OPEN  -> Denied("circuit_open")     the exchange/data path is failing
    exit intents            -> Approved (sized to the position) or Denied("no_position")
    reduce-only mode        -> Denied("reducing")         mode REDUCING: only exits
    symbol already held     -> Denied("duplicate_symbol")
    MAX_POSITIONS reached   -> Denied("max_positions")    reserved slots count
    cool-down after a loss  -> Denied("cool_down")        COOL_DOWN_MINUTES, cleared by a winning trade
    sizing                  -> qty <= MAX_LOSS_PER_TRADE / (price - stop), qty × price <= max_position_quote

An approved entry **reserves** its symbol's slot inside the same lock as the checks, so validate-then-act
has no race: 32 threads asking at once can never all get the last slot. The slot turns into an open
position with the first BUY fill (:meth:`RiskManager.record_fill`), and is freed when the position is
closed or when the caller gives it back with :meth:`RiskManager.release` (order not placed / not filled).

Kill-switch: trips automatically when the day's (UTC, on the manager's clock) realised + unrealised PnL
reaches ``-MAX_DAILY_LOSS``, or by hand. It stays on (across restarts, when ``state_path`` is given) until a
person switches it off with :meth:`RiskManager.kill_switch` (``thunes risk kill-switch off --reason ...
--operator ...``), which is audited. After a manual reset the day's loss is counted from the reset; that
baseline is saved with the switch, for its day.

Every decision, fill and switch change is appended to the audit trail. A switch change is written and
fsynced *before* the state file: if its record cannot be written, a manual change does not happen and the
error propagates; an automatic trip still halts in memory (the safe side) and is saved only after its record.

State across restarts: every start restores through :meth:`RiskManager.restore_from` (the trader's
``build_stack``, ``OrderExecutor.restore_risk``, ``thunes risk``): positions, the day's realised PnL and the
cool-down of the last losing trade from the execution database; the switches and the baseline from the
state file.

Across processes: the limits of one account hold in one manager, so one trading process trades an account.
``build_stack`` takes an :class:`~thunes.execution.db.AccountLease` on the execution database (an ``flock``
on SQLite, an advisory lock on PostgreSQL, both released when the process dies) and a second trader is
refused with an error naming the holder. The multi-pair bot runs many pairs in one process and one manager,
consistent with this. Read-only tools restore from the shared database and so see the account's truth.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thunes.config import RiskSettings
from thunes.core.clock import Clock, LiveClock
from thunes.core.enums import Side
from thunes.core.errors import ConfigError, StoreError
from thunes.execution.audit import AuditTrail
from thunes.execution.circuit_breaker import BreakerRegistry, CircuitBreaker
from thunes.execution.positions import Position
from thunes.files import atomic_write

if TYPE_CHECKING:
    from thunes.execution.positions import PositionTracker

__all__ = [
    "RUN_POINTER",
    "Approved",
    "Decision",
    "Denied",
    "RiskManager",
    "RiskMode",
    "RiskSnapshot",
    "TradeIntent",
    "read_risk_state",
    "read_run_pointer",
    "write_risk_state",
    "write_run_pointer",
]

ZERO = Decimal(0)
DAY_MS = 86_400_000


class RiskMode(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeIntent:
    """What a strategy wants. Entries give ``quote_qty`` (or ``qty``); exits usually give ``qty``."""

    symbol: str
    side: Side
    price: Decimal
    quote_qty: Decimal | None = None
    qty: Decimal | None = None
    stop_price: Decimal | None = None
    reason: str = ""
    strategy: str = ""
    bar_ts: int = 0
    is_exit: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "side": str(self.side), "price": str(self.price),
                "quote_qty": None if self.quote_qty is None else str(self.quote_qty),
                "qty": None if self.qty is None else str(self.qty),
                "stop_price": None if self.stop_price is None else str(self.stop_price),
                "reason": self.reason, "strategy": self.strategy, "bar_ts": self.bar_ts, "is_exit": self.is_exit}


@dataclass(frozen=True, slots=True, kw_only=True)
class Approved:
    intent: TradeIntent
    qty: Decimal
    quote_qty: Decimal
    stop_price: Decimal | None
    reserved: bool
    decision_id: int

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Denied:
    intent: TradeIntent
    rule: str
    reason: str
    decision_id: int

    def __bool__(self) -> bool:
        return False


Decision = Approved | Denied


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSnapshot:
    mode: RiskMode
    kill_switch: bool
    kill_reason: str | None
    kill_operator: str | None
    kill_since_ms: int | None
    kill_decision_id: int | None
    reduce_only: bool
    open_positions: tuple[str, ...]
    reserved: tuple[str, ...]
    realised_today: Decimal
    unrealised: Decimal
    daily_pnl: Decimal
    max_daily_loss: Decimal
    cool_down_until_ms: int
    open_breakers: tuple[str, ...]
    decisions: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, (Decimal, StrEnum)) else (
                list(value) if isinstance(value, tuple) else value)
        return out


@dataclass(slots=True)
class _Book:
    qty: Decimal = ZERO
    cost: Decimal = ZERO
    mark: Decimal | None = None
    cycle_realised: Decimal = ZERO


@dataclass(slots=True)
class _SwitchState:
    kill_switch: bool = False
    reason: str | None = None
    operator: str | None = None
    since_ms: int | None = None
    reduce_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def read_risk_state(path: str | Path) -> dict[str, Any]:
    """The persisted switch state (``{}`` when the file does not exist)."""
    try:
        state: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        return state
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, OSError) as exc:
        raise StoreError(f"risk state file {path} is unreadable: {exc}") from exc


def write_risk_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomic write (temp file, fsync, rename: :func:`thunes.files.atomic_write`) so a reader never sees half
    a file; the file gets the mode an ordinary ``open()`` would give it (it holds no secret)."""
    atomic_write(path, json.dumps(state, indent=2, sort_keys=True))


RUN_POINTER = "latest_run.json"


def write_run_pointer(state_dir: str | Path, *, db_url: str, audit_path: str | Path, clock: str,
                      run_dir: str | Path | None = None) -> Path:
    """Record, in a mode's state folder, where the latest run keeps its journal and audit trail and which
    clock it trades on (``"live"`` or ``"replay"``), so that ``thunes risk status`` finds them without flags."""
    path = Path(state_dir) / RUN_POINTER
    write_risk_state(path, {"db_url": db_url, "audit_path": str(Path(audit_path).resolve()), "clock": clock,
                            "run_dir": None if run_dir is None else str(Path(run_dir).resolve())})
    return path


def read_run_pointer(state_dir: str | Path) -> dict[str, Any]:
    """The pointer written by :func:`write_run_pointer` (``{}`` when no run has written one)."""
    return read_risk_state(Path(state_dir) / RUN_POINTER)


class RiskManager:
    """Thread-safe risk gate. See the module docstring for the rules and their order."""

    def __init__(
        self,
        settings: RiskSettings,
        *,
        clock: Clock | None = None,
        audit: AuditTrail | None = None,
        breakers: BreakerRegistry | Iterable[CircuitBreaker] | None = None,
        state_path: str | Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or LiveClock()
        self.audit = audit
        self._breakers: BreakerRegistry | list[CircuitBreaker] = (
            breakers if isinstance(breakers, BreakerRegistry) else list(breakers or []))
        self.state_path = Path(state_path) if state_path is not None else None
        self._lock = threading.RLock()
        self._slots: dict[str, str] = {}  # symbol -> "reserved" | "open"
        # symbol -> client order ids whose outcome at the exchange is unknown (answer lost, not settled yet)
        self._unknown_orders: dict[str, set[str]] = {}
        self._books: dict[str, _Book] = {}
        self._day = self.clock.now_ms() // DAY_MS
        self._realised_today = ZERO
        self._baseline = ZERO  # daily PnL at the last manual reset (<= 0); the loss is counted from it
        self._cool_until = 0
        self._switch = _SwitchState()
        self._state_mtime: int | None = None
        self._decisions = 0
        self._kill_decision: int | None = None
        if self.state_path is not None:
            self._load_state_file(force=True)

    # -- persisted switch ----------------------------------------------------------------------------
    def _load_state_file(self, force: bool = False) -> None:
        assert self.state_path is not None
        try:
            mtime = self.state_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if not force and mtime == self._state_mtime:
            return
        data = read_risk_state(self.state_path)
        self._state_mtime = mtime
        was = self._switch.kill_switch
        self._switch = _SwitchState(
            kill_switch=bool(data.get("kill_switch", False)), reason=data.get("reason"),
            operator=data.get("operator"), since_ms=data.get("since_ms"),
            reduce_only=bool(data.get("reduce_only", False)),
        )
        saved = self._saved_baseline(data)
        if was and not self._switch.kill_switch:
            # Switched off by another process (the CLI): it saw the realised loss, this process also sees the
            # unrealised one at this moment; both were reviewed, so count from the lower, or the next mark
            # trips the switch again.
            own = min(ZERO, self._daily_pnl_raw())
            self._baseline = own if saved is None else min(saved, own)
        elif saved is not None:
            self._baseline = saved
        if not was and self._switch.kill_switch:
            self._kill_decision = self._decisions

    def _saved_baseline(self, data: dict[str, Any]) -> Decimal | None:
        """The manual-reset baseline stored for today (None when none is stored or it is another day's)."""
        if data.get("baseline") is None or data.get("baseline_day") != self.clock.now_ms() // DAY_MS:
            return None
        return Decimal(str(data["baseline"]))

    def _save_state_file(self) -> None:
        if self.state_path is None:
            return
        write_risk_state(self.state_path, {
            "kill_switch": self._switch.kill_switch, "reason": self._switch.reason,
            "operator": self._switch.operator, "since_ms": self._switch.since_ms,
            "reduce_only": self._switch.reduce_only, "updated_ms": self.clock.now_ms(),
            # The day's loss counts from the last manual reset; a restart must not forget where that was.
            "baseline": str(self._baseline) if self._baseline != 0 else None,
            "baseline_day": self._day if self._baseline != 0 else None,
        })
        self._state_mtime = self.state_path.stat().st_mtime_ns

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _roll_day(self) -> None:
        day = self.clock.now_ms() // DAY_MS
        if day != self._day:
            self._day = day
            self._realised_today = ZERO
            self._baseline = ZERO

    def _unrealised(self) -> Decimal:
        total = ZERO
        for book in self._books.values():
            if book.qty > 0 and book.mark is not None:
                total += book.qty * book.mark - book.cost
        return total

    def _daily_pnl_raw(self) -> Decimal:
        return self._realised_today + self._unrealised()

    def _daily_pnl(self) -> Decimal:
        return self._daily_pnl_raw() - self._baseline

    def _open_breakers(self) -> list[str]:
        return [b.name for b in self._breakers if b.is_open]

    def _sync(self) -> None:
        self._roll_day()
        if self.state_path is not None:
            self._load_state_file()

    def _mode(self) -> RiskMode:
        if self._switch.kill_switch:
            return RiskMode.HALTED
        if self._switch.reduce_only:
            return RiskMode.REDUCING
        return RiskMode.ACTIVE

    def _maybe_trip(self) -> dict[str, Any] | None:
        if self._switch.kill_switch:
            return None
        pnl = self._daily_pnl()
        if pnl <= -self.settings.max_daily_loss:
            now = self.clock.now_ms()
            self._switch.kill_switch = True
            self._switch.reason = (f"daily loss {-pnl} reached MAX_DAILY_LOSS {self.settings.max_daily_loss}")
            self._switch.operator = "risk-manager"
            self._switch.since_ms = now
            self._kill_decision = self._decisions
            # Saved by _persist_trip, after its audit record is on disk.
            return {"on": True, "reason": self._switch.reason, "operator": "risk-manager",
                    "daily_pnl": str(pnl), "realised_today": str(self._realised_today),
                    "unrealised": str(self._unrealised()), "after_decision": self._decisions}
        return None

    def _audit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(kind, payload)

    def _audit_durably(self, kind: str, payload: dict[str, Any]) -> None:
        """Append and fsync whatever the trail's policy: a switch change is saved only after its record."""
        if self.audit is None:
            if self.state_path is not None:
                raise ConfigError(f"a {kind.replace('_', '-')} change is saved to {self.state_path} and needs "
                                  "an audit trail (none was given)")
            return
        self.audit.append(kind, payload)
        self.audit.flush()

    def _persist_trip(self, trip: dict[str, Any] | None) -> None:
        """Audit an automatic trip, then save it. The halt itself already holds in memory (the safe side):
        if the audit write fails, the state file is not written and the error propagates. A manager without
        an audit trail (``thunes risk status``, read-only) never saves one."""
        if trip is None:
            return
        if self.audit is None:
            return
        self._audit_durably("kill_switch", trip)
        with self._lock:
            if self._switch.kill_switch:
                self._save_state_file()

    # -- decisions -----------------------------------------------------------------------------------
    def _deny(self, intent: TradeIntent, rule: str, reason: str) -> Denied:
        return Denied(intent=intent, rule=rule, reason=reason, decision_id=self._decisions)

    def _decide(self, intent: TradeIntent) -> Decision:
        s = self.settings
        if intent.price is None or intent.price <= 0:
            return self._deny(intent, "invalid", f"price must be > 0, got {intent.price}")
        for name, value in (("qty", intent.qty), ("quote_qty", intent.quote_qty)):
            if value is not None and value <= 0:
                return self._deny(intent, "invalid", f"{name} must be > 0, got {value}")
        if self._switch.kill_switch:
            return self._deny(intent, "kill_switch", f"kill-switch is on: {self._switch.reason}")
        open_breakers = self._open_breakers()
        if open_breakers:
            return self._deny(intent, "circuit_open", f"circuit breaker open: {', '.join(open_breakers)}")
        unknown = self._unknown_orders.get(intent.symbol)
        if unknown:
            # A request whose answer was lost may still land: a second order now could sell the same coins
            # twice or buy past the position cap. Wait until the executor has resolved it.
            return self._deny(intent, "order_outcome_unknown",
                              f"the outcome of {', '.join(sorted(unknown))} on {intent.symbol} is not known yet; "
                              "no new order on this symbol until it is resolved")
        book = self._books.get(intent.symbol)
        if intent.is_exit:
            if intent.side is not Side.SELL:
                return self._deny(intent, "invalid", "an exit of a long position is a SELL")
            if book is None or book.qty <= 0:
                return self._deny(intent, "no_position", f"no open position in {intent.symbol} to exit")
            qty = book.qty if intent.qty is None else min(intent.qty, book.qty)
            if intent.qty is None and intent.quote_qty is not None:
                qty = min(book.qty, intent.quote_qty / intent.price)
            return Approved(intent=intent, qty=qty, quote_qty=qty * intent.price, stop_price=None,
                            reserved=False, decision_id=self._decisions)
        if intent.side is not Side.BUY:
            return self._deny(intent, "invalid", "spot entries are BUYs (a SELL must be an exit)")
        if intent.qty is None and intent.quote_qty is None:
            return self._deny(intent, "invalid", "an entry needs quote_qty or qty")
        if self._switch.reduce_only:
            return self._deny(intent, "reducing", f"reduce-only mode: {self._switch.reason}")
        if intent.symbol in self._slots:
            return self._deny(intent, "duplicate_symbol",
                              f"{intent.symbol} already has a {self._slots[intent.symbol]} position")
        if len(self._slots) >= s.max_positions:
            return self._deny(intent, "max_positions",
                              f"{len(self._slots)} positions open or reserved, MAX_POSITIONS is {s.max_positions}")
        now = self.clock.now_ms()
        if now < self._cool_until:
            return self._deny(intent, "cool_down",
                              f"cool-down after a losing trade for {(self._cool_until - now) / 60000:.1f} more minutes")
        stop = intent.stop_price if intent.stop_price is not None else intent.price * (1 - s.default_stop_pct)
        if stop <= 0 or stop >= intent.price:
            return self._deny(intent, "invalid", f"stop {stop} must be below the entry price {intent.price}")
        per_unit = intent.price - stop
        wanted = intent.qty if intent.qty is not None else intent.quote_qty / intent.price  # type: ignore[operator]
        qty = min(wanted, s.max_loss_per_trade / per_unit, s.max_position_quote / intent.price)
        if qty <= 0:
            return self._deny(intent, "max_loss_per_trade", "no size fits MAX_LOSS_PER_TRADE")
        self._slots[intent.symbol] = "reserved"
        return Approved(intent=intent, qty=qty, quote_qty=qty * intent.price, stop_price=stop, reserved=True,
                        decision_id=self._decisions)

    def check(self, intent: TradeIntent) -> Decision:
        """Decide on ``intent``; an approved entry holds a reserved slot until filled or released."""
        with self._lock:
            self._sync()
            self._decisions += 1
            decision = self._decide(intent)
            mode = self._mode()
        payload: dict[str, Any] = {"decision_id": decision.decision_id, "intent": intent.to_json(),
                                   "mode": str(mode)}
        if isinstance(decision, Approved):
            payload.update(approved=True, qty=str(decision.qty), quote_qty=str(decision.quote_qty),
                           stop_price=None if decision.stop_price is None else str(decision.stop_price))
        else:
            payload.update(approved=False, rule=decision.rule, reason=decision.reason)
        self._audit("risk_decision", payload)
        return decision

    reserve = check

    def order_outcome_unknown(self, symbol: str, client_order_id: str) -> None:
        """An order on ``symbol`` whose outcome is unknown (its answer was lost, or a previous process died
        waiting for it): every new intent on the symbol is denied until :meth:`order_outcome_known`."""
        with self._lock:
            self._unknown_orders.setdefault(symbol, set()).add(client_order_id)

    def order_outcome_known(self, client_order_id: str) -> None:
        """The order is resolved (found, refused, or proven never placed): lift its hold on the symbol."""
        if not self._unknown_orders:
            return
        with self._lock:
            for symbol, cids in list(self._unknown_orders.items()):
                cids.discard(client_order_id)
                if not cids:
                    del self._unknown_orders[symbol]

    def unknown_orders(self, symbol: str) -> frozenset[str]:
        """Client order ids on ``symbol`` whose outcome is unknown."""
        with self._lock:
            return frozenset(self._unknown_orders.get(symbol, ()))

    def release(self, symbol: str) -> bool:
        """Free a reserved slot (its order was not placed or did not fill). Open positions are kept."""
        with self._lock:
            book = self._books.get(symbol)
            if self._slots.get(symbol) == "reserved" or (symbol in self._slots and (book is None or book.qty <= 0)):
                del self._slots[symbol]
                self._books.pop(symbol, None)
                released = True
            else:
                released = False
        if released:
            self._audit("risk_release", {"symbol": symbol})
        return released

    def record_fill(self, symbol: str, side: Side, qty: Decimal, quote: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Apply a fill (``quote`` = qty × price, ``fee`` in quote). Returns the realised PnL of the fill."""
        side = Side(side)
        if qty < 0 or quote < 0 or fee < 0:
            raise ConfigError(f"record_fill({symbol}): negative quantities ({qty}, {quote}, {fee})")
        realised = ZERO
        trade_pnl: Decimal | None = None
        with self._lock:
            self._sync()
            book = self._books.setdefault(symbol, _Book())
            if side is Side.BUY:
                book.qty += qty
                book.cost += quote + fee
                if qty > 0:
                    book.mark = quote / qty if book.mark is None else book.mark
                    self._slots[symbol] = "open"
            else:
                held = min(qty, book.qty)
                basis = book.cost * held / book.qty if book.qty > 0 else ZERO
                proceeds = quote * held / qty if qty > 0 else ZERO
                realised = proceeds - fee - basis
                if qty > 0:
                    book.mark = quote / qty
                was_open = book.qty > 0
                book.qty -= held
                book.cost = book.cost - basis if book.qty > 0 else ZERO
                book.cycle_realised += realised
                self._realised_today += realised
                if was_open and book.qty == 0:
                    trade_pnl = book.cycle_realised
                    del self._books[symbol]
                    self._slots.pop(symbol, None)
                    if trade_pnl < 0:
                        self._cool_until = self.clock.now_ms() + self.settings.cool_down_minutes * 60_000
                    elif trade_pnl > 0:
                        self._cool_until = 0
            trip = self._maybe_trip()
            daily = self._daily_pnl()
        self._audit("fill", {"symbol": symbol, "side": str(side), "qty": str(qty), "quote": str(quote),
                             "fee": str(fee), "realised": str(realised),
                             "trade_pnl": None if trade_pnl is None else str(trade_pnl), "daily_pnl": str(daily)})
        self._persist_trip(trip)
        return realised

    def close_dust(self, symbol: str) -> Decimal:
        """Close a position whose remainder cannot be sold (below the exchange's minimums).

        The remainder's cost is written off as realised (it is worth nothing we can collect), the trade
        result decides the cool-down as for any closed trade, and the slot is freed. Returns the write-off.
        """
        with self._lock:
            book = self._books.pop(symbol, None)
            self._slots.pop(symbol, None)
            if book is None:
                return ZERO
            written_off = book.cost
            self._realised_today -= written_off
            trade_pnl = book.cycle_realised - written_off
            if trade_pnl < 0:
                self._cool_until = self.clock.now_ms() + self.settings.cool_down_minutes * 60_000
            elif trade_pnl > 0:
                self._cool_until = 0
            trip = self._maybe_trip()
        self._audit("dust_closed", {"symbol": symbol, "qty": str(book.qty), "written_off": str(written_off),
                                    "trade_pnl": str(trade_pnl)})
        self._persist_trip(trip)
        return written_off

    def mark(self, symbol: str, price: Decimal) -> bool:
        """Update the mark price of an open position; returns True if this tripped the kill-switch."""
        with self._lock:
            self._sync()
            book = self._books.get(symbol)
            if book is None or book.qty <= 0:
                return False
            book.mark = price
            trip = self._maybe_trip()
        self._persist_trip(trip)
        return trip is not None

    def kill_switch(self, on: bool, reason: str, operator: str) -> RiskSnapshot:
        """Switch the kill-switch by hand. Both ``reason`` and ``operator`` are required (audited)."""
        if not reason or not reason.strip() or not operator or not operator.strip():
            raise ConfigError("kill-switch change needs a reason and an operator")
        with self._lock:
            self._sync()
            was = self._switch.kill_switch
            # Count today's loss from a reset, or the switch would trip again on the next mark.
            baseline = min(ZERO, self._daily_pnl_raw()) if was and not on else self._baseline
            # The record first (durably): if it cannot be written, nothing changes and the error propagates.
            self._audit_durably("kill_switch", {
                "on": bool(on), "was": was, "reason": reason, "operator": operator,
                "daily_pnl": str(self._daily_pnl_raw() - baseline), "baseline": str(baseline)})
            self._switch.kill_switch = bool(on)
            self._switch.reason = reason
            self._switch.operator = operator
            self._switch.since_ms = self.clock.now_ms()
            if on and not was:
                self._kill_decision = self._decisions
            self._baseline = baseline
            self._save_state_file()
            return self._snapshot()

    def reduce_only(self, on: bool, reason: str, operator: str) -> RiskSnapshot:
        """REDUCING mode: exits only. Audited like the kill-switch."""
        if not reason or not reason.strip() or not operator or not operator.strip():
            raise ConfigError("reduce-only change needs a reason and an operator")
        with self._lock:
            self._sync()
            self._audit_durably("reduce_only", {"on": bool(on), "was": self._switch.reduce_only, "reason": reason,
                                                "operator": operator})
            self._switch.reduce_only = bool(on)
            if not self._switch.kill_switch:
                self._switch.reason = reason
                self._switch.operator = operator
            self._save_state_file()
            return self._snapshot()

    def restore(self, positions: Iterable[Position], *, realised_today: Decimal = ZERO,
                last_closed_trade: tuple[int, Decimal] | None = None) -> None:
        """Load state after a restart: open positions, the day's realised PnL and the last closed trade."""
        with self._lock:
            for pos in positions:
                if pos.qty > 0:
                    self._books[pos.symbol] = _Book(qty=pos.qty, cost=pos.cost, mark=pos.avg_price,
                                                    cycle_realised=pos.realised_pnl)
                    self._slots[pos.symbol] = "open"
            self._realised_today = realised_today
            if last_closed_trade is not None:
                ts, pnl = last_closed_trade
                if pnl < 0:
                    self._cool_until = ts + self.settings.cool_down_minutes * 60_000
            trip = self._maybe_trip()
        self._persist_trip(trip)

    def restore_from(self, positions: PositionTracker, *,
                     is_dust: Callable[[Position], bool] | None = None) -> None:
        """The one restore path of every start (trader, ``risk status``, ``risk kill-switch``): open positions
        (dust excluded when ``is_dust`` says so), the realised PnL since the start of the day on this
        manager's clock (market time in a replay) and the last closed trade (its cool-down). The switches
        and the manual-reset baseline come from the state file, read at construction."""
        day_start = self.clock.now_ms() // DAY_MS * DAY_MS
        held = [p for p in positions.open_positions() if is_dust is None or not is_dust(p)]
        self.restore(held, realised_today=positions.realised_since(day_start),
                     last_closed_trade=positions.last_closed_trade())

    load_positions = restore

    def _snapshot(self) -> RiskSnapshot:
        unreal = self._unrealised()
        return RiskSnapshot(
            mode=self._mode(), kill_switch=self._switch.kill_switch, kill_reason=self._switch.reason,
            kill_operator=self._switch.operator, kill_since_ms=self._switch.since_ms,
            kill_decision_id=self._kill_decision if self._switch.kill_switch else None,
            reduce_only=self._switch.reduce_only,
            open_positions=tuple(sorted(s for s, v in self._slots.items() if v == "open")),
            reserved=tuple(sorted(s for s, v in self._slots.items() if v == "reserved")),
            realised_today=self._realised_today, unrealised=unreal, daily_pnl=self._daily_pnl(),
            max_daily_loss=self.settings.max_daily_loss, cool_down_until_ms=self._cool_until,
            open_breakers=tuple(self._open_breakers()), decisions=self._decisions,
        )

    @property
    def state(self) -> RiskSnapshot:
        with self._lock:
            self._sync()
            return self._snapshot()
