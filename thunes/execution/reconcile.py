"""Reconciliation: make our books (order journal, positions) agree with the exchange, or say why not.

Run by the trader at start-up, every ``reconcile_minutes`` and at shutdown. In order:

1. **Unresolved orders** (journaled PENDING/SENT: the process died or the answer was lost) are
   looked up by their client order id through ``OrderExecutor.recover()``; found ones are adopted
   (journal, positions and risk updated from the exchange's view), absent ones closed as never placed.
   No accepted order is ever left untracked.
2. **Open orders** in the journal are compared with the exchange's open orders; a journaled order
   that the exchange reports in another state (filled or cancelled meanwhile) is adopted with the
   exchange's figures. An open order at the exchange that the journal does not know (placed by hand or
   by another program) is *flagged*, never touched.
3. **Positions**: for each traded symbol the exchange's total base balance is compared with
   ``baseline + tracked position``, where ``baseline`` is the base the account held that the trader
   does not own (recorded at the first reconciliation, kept in the execution database: see :class:`Baseline`).
   Differences larger than ``tolerance`` are flagged (with both figures), never silently adopted:
   a person decides whether coins moved outside THUNES.

Every discrepancy goes to the audit trail (``reconcile``) and the log; the report is returned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.enums import OrderStatus
from thunes.core.errors import ExchangeError, OrderNotFound, StoreError
from thunes.exchange.types import OrderResult

__all__ = ["Baseline", "Discrepancy", "ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Discrepancy:
    """One difference between our books and the exchange, and what was done about it."""

    kind: str  # "unresolved_order" | "order_state" | "untracked_order" | "missing_order" | "position"
    symbol: str
    detail: str
    action: str  # "adopted" | "flagged"
    client_order_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "symbol": self.symbol, "detail": self.detail, "action": self.action,
                "client_order_id": self.client_order_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    ts_ms: int
    discrepancies: tuple[Discrepancy, ...] = ()
    recovered: int = 0
    open_orders: int = 0
    balances: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def flagged(self) -> tuple[Discrepancy, ...]:
        return tuple(d for d in self.discrepancies if d.action == "flagged")

    @property
    def ok(self) -> bool:
        """True when nothing needs a person's attention (adopted differences are fine)."""
        return self.error is None and not self.flagged


class Baseline:
    """Base-asset amounts the account held that the trader does not own, in the execution database.

    Kept in the same database as the positions so that writing unsellable dust off a position and counting
    it as outside holdings is one commit (:meth:`add` inside the caller's transaction): a crash between the
    two used to lose the dust from both books, and the next reconciliation flagged the account. ``scope``
    separates baselines sharing a database (the bot has one; a single-pair stack keeps one per symbol).
    A ``legacy_json`` file from earlier versions is imported once (if the scope has no rows yet) and
    renamed to ``<name>.imported``: nothing stored before is lost.
    """

    def __init__(self, db: Any, scope: str = "account", *, legacy_json: str | Path | None = None) -> None:
        self.db = db
        self.scope = scope
        if legacy_json is not None:
            self._import(Path(legacy_json))

    def _import(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            values = {str(k): Decimal(str(v)) for k, v in raw.items()}
        except (ValueError, ArithmeticError, AttributeError) as exc:
            raise StoreError(f"cannot import the reconciliation baseline {path}: {exc}") from exc
        with self.db.transaction():
            if not self.values:  # a crash after the import's commit, before the rename: imported already
                for asset, amount in values.items():
                    self._write(asset, amount)
        path.replace(path.with_name(path.name + ".imported"))

    @property
    def values(self) -> dict[str, Decimal]:
        rows = self.db.execute("SELECT asset, amount FROM exec_baseline WHERE scope = ?", (self.scope,))
        return {asset: Decimal(amount) for asset, amount in rows}

    def get(self, asset: str) -> Decimal | None:
        row = self.db.query_one("SELECT amount FROM exec_baseline WHERE scope = ? AND asset = ?", (self.scope, asset))
        return Decimal(row[0]) if row else None

    def add(self, asset: str, amount: Decimal) -> None:
        """Count ``amount`` more as outside holdings (e.g. unsellable dust written off a position); nothing
        before the first reconciliation has recorded the asset (that one counts what the account holds)."""
        with self.db.transaction():
            current = self.get(asset)
            if current is not None:
                self._write(asset, current + amount)

    def set(self, asset: str, value: Decimal) -> None:
        with self.db.transaction():
            self._write(asset, value)

    def _write(self, asset: str, value: Decimal) -> None:
        self.db.execute("INSERT INTO exec_baseline (scope, asset, amount) VALUES (?, ?, ?) "
                        "ON CONFLICT (scope, asset) DO UPDATE SET amount = excluded.amount",
                        (self.scope, asset, str(value)))


class Reconciler:
    """Compares the journal and positions of ``symbols`` with the exchange; call it to reconcile."""

    def __init__(
        self,
        exchange: Any,
        *,
        journal: Any,
        positions: Any,
        symbols: Iterable[str],
        baseline: Baseline,
        executor: Any = None,
        audit: Any = None,
        clock: Clock | None = None,
        tolerance: dict[str, Decimal] | None = None,
        base_fees: Any = None,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.positions = positions
        self.symbols = tuple(symbols)
        self.baseline = baseline
        self.executor = executor
        self.audit = audit
        self.clock = clock or LiveClock()
        self.tolerance = dict(tolerance or {})
        # base_fees(symbol) -> base-asset fees paid on fills (Binance takes a buy's fee in the base asset,
        # so the exchange holds that much less than the filled quantity the tracker counts).
        self.base_fees = base_fees
        self.last: ReconcileReport | None = None

    def __call__(self) -> ReconcileReport:
        return self.reconcile()

    def reconcile(self) -> ReconcileReport:
        found: list[Discrepancy] = []
        recovered = 0
        now = self.clock.now_ms()
        try:
            recovered = self._recover(found)
            open_count = self._orders(found)
            balances = self._positions(found)
            report = ReconcileReport(ts_ms=now, discrepancies=tuple(found), recovered=recovered,
                                     open_orders=open_count, balances={k: str(v) for k, v in balances.items()})
        except ExchangeError as exc:
            # The exchange is unreachable right now: report it, try again at the next reconciliation.
            report = ReconcileReport(ts_ms=now, discrepancies=tuple(found), recovered=recovered,
                                     error=f"{type(exc).__name__}: {exc}")
        for d in report.discrepancies:
            (log.warning if d.action == "flagged" else log.info)("reconcile %s %s: %s (%s)", d.kind, d.symbol,
                                                                   d.detail, d.action)
        if self.audit is not None and (report.discrepancies or report.error):
            self.audit.append("reconcile", {
                "discrepancies": [d.to_json() for d in report.discrepancies], "recovered": report.recovered,
                "error": report.error,
            })
        self.last = report
        return report

    # -- 1. orders whose outcome we do not know ------------------------------------------------------
    def _recover(self, found: list[Discrepancy]) -> int:
        unresolved = [e for e in self.journal.unresolved() if e.symbol in self.symbols]
        if not unresolved:
            return 0
        if self.executor is not None:
            self.executor.recover()
        for before in unresolved:
            after = self.journal.get(before.client_order_id)
            found.append(Discrepancy(
                kind="unresolved_order", symbol=before.symbol, client_order_id=before.client_order_id,
                detail=f"journal said {before.status}; exchange: {after.status if after else 'unknown'}"
                       f" (filled {after.filled_qty if after else 0})",
                action="adopted",
            ))
        return len(unresolved)

    # -- 2. open orders ------------------------------------------------------------------------------
    def _orders(self, found: list[Discrepancy]) -> int:
        count = 0
        for symbol in self.symbols:
            at_exchange: dict[str, OrderResult] = {o.client_order_id: o for o in self.exchange.fetch_open_orders(symbol)}
            count += len(at_exchange)
            ours = {e.client_order_id: e for e in self.journal.open_orders(symbol)}
            for cid, entry in ours.items():
                if entry.status in (OrderStatus.PENDING, OrderStatus.SENT):
                    continue  # recovery could not reach the exchange; next time
                result = at_exchange.get(cid)
                if result is None:
                    try:
                        result = self.exchange.fetch_order(symbol, cid)
                    except OrderNotFound:
                        found.append(Discrepancy(kind="missing_order", symbol=symbol, client_order_id=cid,
                                                 detail=f"journal says {entry.status}, the exchange does not know it",
                                                 action="flagged"))
                        continue
                if result.status != entry.status or result.filled_qty != entry.filled_qty:
                    self._adopt(entry, result)
                    found.append(Discrepancy(
                        kind="order_state", symbol=symbol, client_order_id=cid,
                        detail=f"journal {entry.status}/{entry.filled_qty} -> exchange {result.status}/{result.filled_qty}",
                        action="adopted",
                    ))
            for cid, result in at_exchange.items():
                if cid not in ours and self.journal.get(cid) is None:
                    found.append(Discrepancy(
                        kind="untracked_order", symbol=symbol, client_order_id=cid,
                        detail=f"open {result.side} {result.qty} @ {result.price} not placed by THUNES; left alone",
                        action="flagged",
                    ))
        return count

    def _adopt(self, entry: Any, result: OrderResult) -> None:
        apply = getattr(self.executor, "apply_result", None)
        if callable(apply):
            apply(result)  # journal + positions + risk in one transaction, by filled-quantity delta
            return
        try:
            self.journal.apply_update(entry.client_order_id, result.status, filled_qty=result.filled_qty,
                                      cum_quote=result.quote_filled, fee=result.fee,
                                      exchange_order_id=result.exchange_order_id)
        except StoreError as exc:
            log.warning("could not adopt %s: %s", entry.client_order_id, exc)

    # -- 3. positions --------------------------------------------------------------------------------
    def _positions(self, found: list[Discrepancy]) -> dict[str, Decimal]:
        balances = self.exchange.fetch_balance()
        totals: dict[str, Decimal] = {}
        for symbol in self.symbols:
            base = symbol.split("/")[0]
            bal = balances.get(base)
            total = bal.total if bal is not None else ZERO
            totals[base] = total
            pos = self.positions.position(symbol)
            tracked = pos.qty if pos is not None else ZERO
            fees = Decimal(self.base_fees(symbol)) if self.base_fees is not None else ZERO
            held = tracked - fees
            baseline = self.baseline.get(base)
            if baseline is None:
                # First reconciliation: whatever the account holds beyond our position is not ours.
                self.baseline.set(base, total - held)
                continue
            expected = baseline + held
            diff = total - expected
            tol = self.tolerance.get(symbol, ZERO)
            if abs(diff) > tol:
                found.append(Discrepancy(
                    kind="position", symbol=symbol,
                    detail=(f"exchange holds {total} {base}; expected {expected} (outside {baseline} + position "
                            f"{tracked} - base fees {fees}); difference {diff}"),
                    action="flagged",
                ))
        return totals
