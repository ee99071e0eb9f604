"""The safety core of one trading account, opened in one place for every process that trades it.

``thunes paper``/``thunes live`` (one pair, :func:`thunes.live.assembly.build_stack`) and the multi-pair
bot (:func:`thunes.live.stack.build_bot`) trade through the same core, opened here in this order::

    execution database ─> account lease (a second trading process on it is refused)
        ─> journal, positions ─> keyed audit trail anchored in the database
        ─> config_change audit record (the effective settings' hash of this start)
        ─> risk manager (switches from the state file) ─> executor ─> restore every risk state of the day

If any step fails, what was opened is closed again (the lease released), so a refused start leaves nothing
behind. :meth:`Account.close` closes the audit trail before the database (the closing anchor needs it) and
releases the lease last.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunes.core.clock import Clock
from thunes.execution.audit import AuditAnchors, AuditTrail, record_config
from thunes.execution.db import AccountLease, Database
from thunes.execution.journal import OrderJournal
from thunes.execution.orders import ExecutorOptions, OrderExecutor
from thunes.execution.positions import PositionTracker
from thunes.execution.risk import RiskManager

__all__ = ["Account", "close_all", "open_account"]

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class Account:
    """The opened safety core: one database, lease, journal, positions, audit trail, risk manager, executor."""

    db: Database
    lease: AccountLease | None
    journal: OrderJournal
    positions: PositionTracker
    audit: AuditTrail
    risk: RiskManager
    executor: OrderExecutor

    def close(self) -> None:
        close_all(self.audit.close, self.db.close, getattr(self.lease, "release", None))


def close_all(*closers: Any) -> None:
    """Call every closer in order (None is skipped); a failing one is logged and the rest still run, because
    closing everything (the audit trail before its database, the lease last) matters more than the first error."""
    for closer in closers:
        if not callable(closer):
            continue
        try:
            closer()
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("closing %s failed", closer, exc_info=True)


def open_account(
    port: Any,
    markets: Mapping[str, Any],
    *,
    risk_settings: Any,
    db_url: str,
    audit_path: Path,
    risk_state_path: Path,
    clock: Clock,
    audit_fsync: str = "always",
    settle_ms: int | None = None,
    settings: Any = None,
    config_source: str = "trader start",
    durable: bool = True,
) -> Account:
    """Open the account's safety core (see the module docstring). ``settings`` is the whole settings tree
    (its ``audit`` section gives the key and anchor rhythm; it is what the ``config_change`` record holds),
    else the risk section is recorded."""
    db = Database.connect(db_url, durable=durable)
    lease: AccountLease | None = None
    audit: AuditTrail | None = None
    try:
        if db.kind != "sqlite" or ":memory:" not in db_url:
            lease = AccountLease(db_url)
        journal = OrderJournal(db, clock=clock)
        positions = PositionTracker(db, clock=clock)
        # Keyed (HMAC) and anchored in this database: a rewrite of the file needs the key and this database.
        audit_settings = getattr(settings, "audit", None)
        keyed = {} if audit_settings is None else {
            "key": audit_settings.key, "key_file": audit_settings.key_file,
            "anchor_every": audit_settings.anchor_every, "anchor_seconds": audit_settings.anchor_seconds}
        audit = AuditTrail(audit_path, fsync=audit_fsync, clock=clock, anchors=AuditAnchors(db),  # type: ignore[arg-type]
                           **keyed)
        record_config(audit, settings if settings is not None else risk_settings, source=config_source)
        risk = RiskManager(risk_settings, clock=clock, audit=audit, state_path=risk_state_path)
        executor = OrderExecutor(port, risk=risk, journal=journal, positions=positions, markets=markets,
                                 clock=clock, audit=audit, options=ExecutorOptions(settle_ms=settle_ms))
        executor.restore_risk()
    except BaseException:
        for closer in (getattr(audit, "close", None), db.close, getattr(lease, "release", None)):
            if closer is not None:
                closer()
        raise
    return Account(db=db, lease=lease, journal=journal, positions=positions, audit=audit, risk=risk,
                   executor=executor)
