"""The write-ahead order journal: an order exists here, durably, before it exists at the exchange.

Sequence for every order the executor sends (see :mod:`thunes.execution.orders`)::

    record_sent (one commit) -> exchange.create_order(client_order_id) -> apply_update

``record_sent`` writes the row directly as SENT ("may be at the exchange") in one committed transaction:
one fsync before the request leaves, where PENDING then SENT would cost two. A row that a crash leaves
SENT although it never left is looked up by client order id at restart, found missing and closed, so
nothing is lost by skipping PENDING. ``record_pending`` + ``mark_sent`` remain for callers that want
the PENDING stage (a PENDING row is closed at restart without asking the exchange).

The client order id is deterministic (derived from strategy, symbol, side and signal bar), and is the
primary key here, so a retry or a restart that replays the same intent finds the journal row instead of
creating a second order. After a crash, :meth:`OrderJournal.unresolved` lists the PENDING/SENT rows whose
outcome is unknown; the executor asks the exchange about each one by client order id.

Status changes go through :func:`thunes.core.enums.check_transition` (the one transition table), and the
filled quantity may only grow; an update breaking either raises :class:`~thunes.core.errors.StoreError`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.enums import OrderStatus, OrderType, Side, check_transition
from thunes.core.errors import StoreError
from thunes.execution.db import Database
from thunes.execution.filters import PreparedOrder

__all__ = ["JournalEntry", "OrderJournal"]

ZERO = Decimal(0)
_COLUMNS = ("client_order_id, symbol, side, order_type, qty, price, ref_price, status, exchange_order_id, "
            "filled_qty, cum_quote, fee, strategy, reason, bar_ts, is_exit, error, created_ms, updated_ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    ref_price: Decimal
    status: OrderStatus
    exchange_order_id: str | None
    filled_qty: Decimal
    cum_quote: Decimal
    fee: Decimal
    strategy: str
    reason: str
    bar_ts: int
    is_exit: bool
    error: str | None
    created_ms: int
    updated_ms: int

    @property
    def avg_price(self) -> Decimal | None:
        return self.cum_quote / self.filled_qty if self.filled_qty > 0 else None

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> JournalEntry:
        (cid, symbol, side, otype, qty, price, ref, status, xid, filled, quote, fee, strategy, reason, bar_ts,
         is_exit, error, created, updated) = row
        return cls(client_order_id=cid, symbol=symbol, side=Side(side), order_type=OrderType(otype),
                   qty=Decimal(qty), price=Decimal(price) if price is not None else None, ref_price=Decimal(ref),
                   status=OrderStatus(status), exchange_order_id=xid, filled_qty=Decimal(filled),
                   cum_quote=Decimal(quote), fee=Decimal(fee), strategy=strategy, reason=reason,
                   bar_ts=int(bar_ts), is_exit=bool(is_exit), error=error, created_ms=int(created),
                   updated_ms=int(updated))


class OrderJournal:
    """Orders keyed by client order id, in the execution database."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or LiveClock()

    def record_pending(
        self,
        client_order_id: str,
        order: PreparedOrder,
        *,
        strategy: str = "",
        reason: str = "",
        bar_ts: int = 0,
        is_exit: bool = False,
    ) -> tuple[JournalEntry, bool]:
        """Write the order as PENDING (committed before returning). Returns ``(entry, created)``.

        If the id is already journaled, nothing is written and the existing entry is returned with
        ``created=False``: the caller must not send it again.
        """
        return self._insert(client_order_id, order, OrderStatus.PENDING, strategy=strategy, reason=reason,
                            bar_ts=bar_ts, is_exit=is_exit)

    def record_sent(
        self,
        client_order_id: str,
        order: PreparedOrder,
        *,
        strategy: str = "",
        reason: str = "",
        bar_ts: int = 0,
        is_exit: bool = False,
    ) -> tuple[JournalEntry, bool]:
        """Write the order as SENT in one commit, just before it is sent. Returns ``(entry, created)``.

        The write-ahead step of the executor: same contract as :meth:`record_pending` (an id already
        journaled is returned with ``created=False`` and must not be sent), one commit instead of two.
        """
        return self._insert(client_order_id, order, OrderStatus.SENT, strategy=strategy, reason=reason,
                            bar_ts=bar_ts, is_exit=is_exit)

    def _insert(self, client_order_id: str, order: PreparedOrder, status: OrderStatus, *, strategy: str,
                reason: str, bar_ts: int, is_exit: bool) -> tuple[JournalEntry, bool]:
        now = self.clock.now_ms()
        entry = JournalEntry(client_order_id=client_order_id, symbol=order.symbol, side=Side(order.side),
                             order_type=OrderType(order.order_type), qty=Decimal(str(order.qty)),
                             price=None if order.price is None else Decimal(str(order.price)),
                             ref_price=Decimal(str(order.ref_price)), status=status, exchange_order_id=None,
                             filled_qty=ZERO, cum_quote=ZERO, fee=ZERO, strategy=strategy, reason=reason,
                             bar_ts=int(bar_ts), is_exit=bool(is_exit), error=None, created_ms=now, updated_ms=now)
        with self.db.transaction():
            existing = self.get(client_order_id)
            if existing is not None:
                return existing, False
            self.db.execute(
                f"INSERT INTO exec_orders ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (client_order_id, entry.symbol, str(entry.side), str(entry.order_type), str(entry.qty),
                 None if entry.price is None else str(entry.price), str(entry.ref_price), str(status),
                 None, "0", "0", "0", strategy, reason, entry.bar_ts, int(entry.is_exit), None, now, now),
            )
        return entry, True

    def get(self, client_order_id: str) -> JournalEntry | None:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM exec_orders WHERE client_order_id = ?", (client_order_id,))
        return JournalEntry._from_row(row) if row else None

    def mark_sent(self, client_order_id: str) -> JournalEntry:
        old, new = self.apply_update(client_order_id, OrderStatus.SENT)
        return new

    def apply_update(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        filled_qty: Decimal | None = None,
        cum_quote: Decimal | None = None,
        fee: Decimal | None = None,
        exchange_order_id: str | None = None,
        error: str | None = None,
    ) -> tuple[JournalEntry, JournalEntry]:
        """Move an order to ``status`` with cumulative fill figures; returns ``(before, after)``.

        Callers that also update positions do both inside one ``db.transaction()`` and apply
        ``after.filled_qty - before.filled_qty``: the delta is zero when the same update is replayed.
        """
        status = OrderStatus(status)
        with self.db.transaction():
            old = self.get(client_order_id)
            if old is None:
                raise StoreError(f"order journal: unknown client order id {client_order_id!r}")
            try:
                check_transition(old.status, status)
            except ValueError as exc:
                raise StoreError(f"order journal {client_order_id}: {exc}") from exc
            filled = old.filled_qty if filled_qty is None else filled_qty
            quote = old.cum_quote if cum_quote is None else cum_quote
            if filled < old.filled_qty or quote < old.cum_quote:
                raise StoreError(f"order journal {client_order_id}: filled quantity may only grow "
                                 f"({old.filled_qty} -> {filled}, quote {old.cum_quote} -> {quote})")
            if filled > old.qty:
                raise StoreError(f"order journal {client_order_id}: filled {filled} exceeds order qty {old.qty}")
            new = replace(old, status=status, filled_qty=filled, cum_quote=quote,
                          fee=old.fee if fee is None else max(fee, old.fee),
                          exchange_order_id=exchange_order_id or old.exchange_order_id,
                          error=error if error is not None else old.error, updated_ms=self.clock.now_ms())
            self.db.execute(
                "UPDATE exec_orders SET status=?, filled_qty=?, cum_quote=?, fee=?, exchange_order_id=?, error=?, "
                "updated_ms=? WHERE client_order_id=?",
                (str(new.status), str(new.filled_qty), str(new.cum_quote), str(new.fee), new.exchange_order_id,
                 new.error, new.updated_ms, client_order_id),
            )
        return old, new

    def _select(self, where: str = "", params: tuple[Any, ...] = ()) -> list[JournalEntry]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM exec_orders {where} ORDER BY created_ms, client_order_id",
                               params)
        return [JournalEntry._from_row(r) for r in rows]

    def unresolved(self) -> list[JournalEntry]:
        """PENDING and SENT orders: their outcome at the exchange is unknown."""
        return self._select("WHERE status IN (?, ?)", (str(OrderStatus.PENDING), str(OrderStatus.SENT)))

    def open_orders(self, symbol: str | None = None) -> list[JournalEntry]:
        """Orders not in a final state (PENDING, SENT, NEW, PARTIALLY_FILLED)."""
        finals = tuple(str(s) for s in OrderStatus if s.is_final)
        where = f"WHERE status NOT IN ({','.join('?' * len(finals))})"
        params: tuple[Any, ...] = finals
        if symbol is not None:
            where += " AND symbol = ?"
            params += (symbol,)
        return self._select(where, params)

    def count_open(self, symbol: str | None = None) -> int:
        """How many orders :meth:`open_orders` would list, counted in SQL (on the order path: no rows built)."""
        finals = tuple(str(s) for s in OrderStatus if s.is_final)
        sql = f"SELECT COUNT(*) FROM exec_orders WHERE status NOT IN ({','.join('?' * len(finals))})"
        params: tuple[Any, ...] = finals
        if symbol is not None:
            sql += " AND symbol = ?"
            params += (symbol,)
        row = self.db.query_one(sql, params)
        return int(row[0]) if row else 0

    def entries(self) -> list[JournalEntry]:
        return self._select()
