"""Risk services: the operator's handles on a trading account's safety core (one pair, paper or live).

* :func:`risk_status` - the risk mode, kill-switch, reduce-only, today's PnL, positions and open orders;
* :func:`list_orders` - the order journal (unfinished orders, or all);
* :func:`set_kill_switch` / :func:`set_reduce_only` - switch them, audited with an operator and a reason.

An account is a state folder: ``<trader.state_dir>/<mode>`` by default (``mode`` defaults to the settings'
``exchange.mode``). The kill-switch and reduce-only mode live in its ``risk_state.json``, the file every
trader of that mode reads at start and watches while it runs, so a change reaches a trader running in
another process at its next decision, and every later run. Every change is written (and fsynced) to the
audit trail at settings ``audit.path`` *before* it is saved; nothing changes when that trail is not a real
file (``/dev/null``).

The execution database is ``db`` when given, else the one named by the folder's ``latest_run.json`` (local
paper runs keep their journal in their run folder and write that pointer), else
``<state folder>/execution.sqlite``. The risk manager is restored exactly as a trader restores it
(:meth:`~thunes.execution.risk.RiskManager.restore_from`), so switching the kill-switch off sets the right
baseline. A replayed account's "today" is the market day of its last activity, not the wall-clock day.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError

__all__ = [
    "OrderList",
    "RiskStatus",
    "SwitchResult",
    "account_folder",
    "execution_db_url",
    "list_orders",
    "risk_status",
    "set_kill_switch",
    "set_reduce_only",
]


def account_folder(settings: Any, *, mode: str | None = None, state_dir: Path | str | None = None) -> Path:
    """The account's state folder: ``state_dir``, else ``<trader.state_dir>/<mode or exchange.mode>``."""
    if state_dir:
        return Path(state_dir)
    return Path(settings.trader.state_dir) / (mode or settings.exchange.mode)


def execution_db_url(state_dir: Path, db: str | None = None) -> str | None:
    """``db``, else the latest run's database (pointer file), else ``<state_dir>/execution.sqlite``; None
    when none exists yet (nothing is created)."""
    from thunes.execution.risk import read_run_pointer

    if db:
        return db
    pointed = str(read_run_pointer(state_dir).get("db_url") or "")
    if pointed.startswith("sqlite:///") and not Path(pointed[len("sqlite:///"):]).exists():
        pointed = ""  # the run folder was removed: do not create an empty database in its place
    if pointed:
        return pointed
    path = state_dir / "execution.sqlite"
    return f"sqlite:///{path.resolve()}" if path.exists() else None


def _account_clock(state_dir: Path, tracker: Any) -> tuple[Any, str]:
    """The account's clock and how "today" was chosen: the wall clock, or for a replayed account the market
    time of its last activity (a replay trades days long past)."""
    from thunes.core.clock import LiveClock, SimulatedClock
    from thunes.execution.risk import read_run_pointer

    if read_run_pointer(state_dir).get("clock") == "replay" and tracker is not None:
        last = tracker.last_activity_ms()
        if last is not None:
            return SimulatedClock(last), "replay: the market day of the last activity"
    return LiveClock(), "UTC"


@contextmanager
def _restored(settings: Any, state_dir: Path, db: str | None, *, audited: bool,
              audit_path: Path | None = None, risk_settings: Any = None) -> Iterator[tuple[Any, Any, str]]:
    """A risk manager restored as a trader restores it: the switches from the state file, positions, the
    day's PnL and the cool-down from the execution database. Yields ``(manager, tracker or None, day rule)``.
    ``audit_path``/``risk_settings`` override the settings' (a bot keeps its own trail and limits)."""
    from thunes.execution.audit import AuditTrail
    from thunes.execution.db import Database
    from thunes.execution.positions import PositionTracker
    from thunes.execution.risk import RiskManager

    audit = None
    if audited:
        # The trail refuses a path that keeps no record (a directory, /dev/null) before anything changes: a
        # safety decision is never taken without its audit record. The settings' key: one chain, one key.
        audit = AuditTrail.from_settings(settings.audit, path=audit_path)
    url = execution_db_url(state_dir, db)
    database = Database.connect(url) if url is not None else None
    try:
        tracker = PositionTracker(database) if database is not None else None
        clock, day_rule = _account_clock(state_dir, tracker)
        manager = RiskManager(risk_settings if risk_settings is not None else settings.risk, clock=clock, audit=audit,
                              state_path=state_dir / "risk_state.json")
        if tracker is not None:
            manager.restore_from(tracker)
        yield manager, tracker, day_rule
    finally:
        if database is not None:
            database.close()
        if audit is not None:
            audit.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskStatus:
    state_dir: Path
    snapshot: Any  # RiskSnapshot: mode, switches, daily PnL, cool-down
    limits: Any  # RiskSettings
    now_ms: int  # the account clock's now (market time for a replayed account)
    day: str  # ISO date "today" is
    day_rule: str  # how it was chosen
    journal: str | None  # the execution database (password masked); None: none exists yet
    positions: tuple[Any, ...]  # open Position rows
    open_orders: tuple[Any, ...]  # unfinished JournalEntry rows

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = self.snapshot.to_json()
        out["day"] = self.day
        out["day_rule"] = self.day_rule
        out["limits"] = json.loads(self.limits.model_dump_json())
        out["positions"] = [{"symbol": p.symbol, "qty": str(p.qty), "cost": str(p.cost)} for p in self.positions]
        out["open_orders"] = [{"client_order_id": e.client_order_id, "symbol": e.symbol, "side": str(e.side),
                               "status": str(e.status), "qty": str(e.qty)} for e in self.open_orders]
        return out


def risk_status(settings: Any, *, mode: str | None = None, state_dir: Path | str | None = None,
                db: str | None = None) -> RiskStatus:
    """The account's risk state, restored read-only (nothing is written, not even the audit trail)."""
    from thunes.execution.journal import OrderJournal

    folder = account_folder(settings, mode=mode, state_dir=state_dir)
    positions: tuple[Any, ...] = ()
    open_orders: tuple[Any, ...] = ()
    with _restored(settings, folder, db, audited=False) as (manager, tracker, day_rule):
        if tracker is not None:
            positions = tuple(tracker.open_positions())
            open_orders = tuple(OrderJournal(tracker.db).open_orders())
        snap = manager.state
        now = manager.clock.now_ms()
        journal = tracker.db.safe_url if tracker is not None else None
    day = datetime.fromtimestamp(now / 1000, tz=UTC).date().isoformat()
    return RiskStatus(state_dir=folder, snapshot=snap, limits=settings.risk, now_ms=now, day=day, day_rule=day_rule,
                      journal=journal, positions=positions, open_orders=open_orders)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderList:
    state_dir: Path
    has_db: bool  # False: no execution database in the folder yet
    total: int  # orders matching (unfinished, or all)
    entries: tuple[Any, ...]  # the newest ``limit`` of them (JournalEntry), oldest first


def list_orders(settings: Any, *, mode: str | None = None, state_dir: Path | str | None = None,
                db: str | None = None, show_all: bool = False, limit: int = 50) -> OrderList:
    """The order journal: unfinished orders (PENDING, SENT, NEW, PARTIALLY_FILLED), or every one with
    ``show_all``; at most ``limit`` (newest last; ``limit <= 0``: all)."""
    from thunes.execution.db import Database
    from thunes.execution.journal import OrderJournal

    folder = account_folder(settings, mode=mode, state_dir=state_dir)
    url = execution_db_url(folder, db)
    if url is None:
        return OrderList(state_dir=folder, has_db=False, total=0, entries=())
    with Database.connect(url) as database:
        journal = OrderJournal(database)
        entries = journal.entries() if show_all else journal.open_orders()
    shown = entries[-limit:] if limit > 0 else entries
    return OrderList(state_dir=folder, has_db=True, total=len(entries), entries=tuple(shown))


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchResult:
    snapshot: Any  # RiskSnapshot after the change
    state_path: Path  # the risk_state.json written
    audit_path: Path  # where the change was audited


def _switch(kind: str, settings: Any, on: bool, *, reason: str, operator: str, mode: str | None,
            state_dir: Path | str | None, db: str | None) -> SwitchResult:
    folder = account_folder(settings, mode=mode, state_dir=state_dir)
    # Restored like a trader (the day's loss included) so that switching off sets the right baseline.
    with _restored(settings, folder, db, audited=True) as (manager, _, _):
        if kind == "kill":
            snap = manager.kill_switch(on, reason=reason, operator=operator)
        else:
            snap = manager.reduce_only(on, reason=reason, operator=operator)
    return SwitchResult(snapshot=snap, state_path=folder / "risk_state.json", audit_path=Path(settings.audit.path))


def switch_bot(kind: str, state_dir: Path | str, on: bool, *, reason: str, operator: str, risk_settings: Any,
               settings: Any = None, audit_path: Path | None = None) -> Any:
    """The kill-switch (``kind="kill"``) or reduce-only (``"reduce"``) of a bot's state folder, restored like
    the bot restores it (the day's loss included, so switching off sets the right baseline) and audited in
    the bot's own trail (``<state_dir>/audit.jsonl`` unless ``audit_path``) with the settings' key. Returns the
    risk snapshot; a running bot sees the change before its next decision."""
    from thunes.config import Settings

    folder = Path(state_dir)
    if not folder.exists():
        raise ConfigError(f"{folder} is not a bot state folder (it does not exist)")
    settings = settings if settings is not None else Settings()
    with _restored(settings, folder, None, audited=True, audit_path=audit_path or folder / "audit.jsonl",
                   risk_settings=risk_settings) as (manager, _, _):
        if kind == "kill":
            return manager.kill_switch(on, reason=reason, operator=operator)
        return manager.reduce_only(on, reason=reason, operator=operator)


def set_kill_switch(settings: Any, on: bool, *, reason: str, operator: str, mode: str | None = None,
                    state_dir: Path | str | None = None, db: str | None = None) -> SwitchResult:
    """Kill-switch on (nothing is sent) or off, audited with ``reason`` and ``operator`` (both required).

    A tripped kill-switch (daily loss limit reached) stays on until switched off here.
    """
    return _switch("kill", settings, on, reason=reason, operator=operator, mode=mode, state_dir=state_dir, db=db)


def set_reduce_only(settings: Any, on: bool, *, reason: str, operator: str, mode: str | None = None,
                    state_dir: Path | str | None = None, db: str | None = None) -> SwitchResult:
    """Reduce-only (only exits are allowed) on or off, audited with ``reason`` and ``operator``."""
    return _switch("reduce", settings, on, reason=reason, operator=operator, mode=mode, state_dir=state_dir, db=db)
