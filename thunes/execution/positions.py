"""Positions, persisted next to the order journal, updated by fill deltas in the journal's transaction.

Spot, long-only, average-cost accounting in exact decimals:

* a BUY fill adds ``qty`` and its quote cost (plus the fee, taken in quote) to the position;
* a SELL fill realises ``proceeds - fee - avg_cost × qty``; when the quantity reaches zero the round trip
  is a closed *trade* whose PnL (sum of its realised parts) drives the risk manager's cool-down;
* every realised amount is also a row in ``exec_pnl`` so the day's realised PnL survives a restart.

The executor calls :meth:`PositionTracker.apply_fill` inside the same ``db.transaction()`` as the journal
update, with the *difference* between the new and old cumulative fill figures, so replaying an exchange
answer after a crash applies nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.enums import Side
from thunes.core.errors import StoreError
from thunes.execution.db import Database

__all__ = ["FillEffect", "Position", "PositionTracker"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    symbol: str
    qty: Decimal
    cost: Decimal  # quote paid for the current quantity, fees included
    realised_pnl: Decimal  # realised during the current (or last) round trip
    fees: Decimal
    opened_ms: int | None
    updated_ms: int

    @property
    def is_open(self) -> bool:
        return self.qty > 0

    @property
    def avg_price(self) -> Decimal | None:
        return self.cost / self.qty if self.qty > 0 else None

    def unrealised(self, mark: Decimal) -> Decimal:
        return self.qty * mark - self.cost


@dataclass(frozen=True, slots=True, kw_only=True)
class FillEffect:
    """What one fill did: realised PnL of the fill, and the trade PnL when it closed the position."""

    realised: Decimal
    closed: bool
    trade_pnl: Decimal | None
    position: Position


class PositionTracker:
    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or LiveClock()

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Position:
        symbol, qty, cost, realised, fees, opened, updated = row
        return Position(symbol=symbol, qty=Decimal(qty), cost=Decimal(cost), realised_pnl=Decimal(realised),
                        fees=Decimal(fees), opened_ms=None if opened is None else int(opened),
                        updated_ms=int(updated))

    def position(self, symbol: str) -> Position | None:
        row = self.db.query_one("SELECT symbol, qty, cost, realised_pnl, fees, opened_ms, updated_ms "
                                "FROM exec_positions WHERE symbol = ?", (symbol,))
        return self._row(row) if row else None

    def positions(self) -> list[Position]:
        rows = self.db.execute("SELECT symbol, qty, cost, realised_pnl, fees, opened_ms, updated_ms "
                               "FROM exec_positions ORDER BY symbol")
        return [self._row(r) for r in rows]

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions() if p.is_open]

    def apply_fill(self, symbol: str, side: Side, qty: Decimal, quote: Decimal, *, fee: Decimal = ZERO,
                   client_order_id: str = "", ts_ms: int | None = None) -> FillEffect:
        """Apply ``qty`` base filled for ``quote`` (qty × price) with ``fee`` in quote. Zero qty: no-op."""
        side = Side(side)
        if qty < 0 or quote < 0 or fee < 0:
            raise StoreError(f"positions: negative fill for {symbol} ({qty}, {quote}, fee {fee})")
        ts = self.clock.now_ms() if ts_ms is None else int(ts_ms)
        with self.db.transaction():
            pos = self.position(symbol) or Position(symbol=symbol, qty=ZERO, cost=ZERO, realised_pnl=ZERO,
                                                    fees=ZERO, opened_ms=None, updated_ms=ts)
            if qty == 0 and fee == 0:
                return FillEffect(realised=ZERO, closed=False, trade_pnl=None, position=pos)
            realised = ZERO
            closed = False
            trade_pnl: Decimal | None = None
            if side is Side.BUY:
                new_qty = pos.qty + qty
                new_cost = pos.cost + quote + fee
                opened = pos.opened_ms if pos.qty > 0 else ts
                cycle_realised = pos.realised_pnl if pos.qty > 0 else ZERO
            else:
                held = min(qty, pos.qty)
                basis = pos.cost * held / pos.qty if pos.qty > 0 else ZERO
                # Selling more than we hold (coins from outside THUNES): no cost basis is known for the
                # excess, so its proceeds are not counted as profit.
                proceeds = quote * held / qty if qty > 0 else ZERO
                realised = proceeds - fee - basis
                new_qty = pos.qty - held
                new_cost = pos.cost - basis if new_qty > 0 else ZERO
                opened = pos.opened_ms
                cycle_realised = pos.realised_pnl + realised
                if new_qty == 0 and pos.qty > 0:
                    closed = True
                    trade_pnl = cycle_realised
            new = Position(symbol=symbol, qty=new_qty, cost=new_cost, realised_pnl=cycle_realised,
                           fees=pos.fees + fee, opened_ms=opened if new_qty > 0 or closed else None,
                           updated_ms=ts)
            self.db.execute("DELETE FROM exec_positions WHERE symbol = ?", (symbol,))
            self.db.execute(
                "INSERT INTO exec_positions (symbol, qty, cost, realised_pnl, fees, opened_ms, updated_ms) "
                "VALUES (?,?,?,?,?,?,?)",
                (symbol, str(new.qty), str(new.cost), str(new.realised_pnl), str(new.fees), new.opened_ms, ts),
            )
            if side is Side.SELL:
                self.db.execute(
                    "INSERT INTO exec_pnl (ts_ms, symbol, client_order_id, pnl, closed, trade_pnl) "
                    "VALUES (?,?,?,?,?,?)",
                    (ts, symbol, client_order_id, str(realised), int(closed),
                     None if trade_pnl is None else str(trade_pnl)),
                )
        return FillEffect(realised=realised, closed=closed, trade_pnl=trade_pnl, position=new)

    def realised_since(self, ts_ms: int) -> Decimal:
        """Sum of realised PnL recorded at or after ``ts_ms``."""
        rows = self.db.execute("SELECT pnl FROM exec_pnl WHERE ts_ms >= ?", (int(ts_ms),))
        return sum((Decimal(r[0]) for r in rows), ZERO)

    def last_activity_ms(self) -> int | None:
        """Time of the latest position change or realised PnL row: "today" of an account on a replayed clock."""
        a = self.db.query_one("SELECT MAX(updated_ms) FROM exec_positions")
        b = self.db.query_one("SELECT MAX(ts_ms) FROM exec_pnl")
        found = [int(r[0]) for r in (a, b) if r is not None and r[0] is not None]
        return max(found) if found else None

    def last_closed_trade(self) -> tuple[int, Decimal] | None:
        """``(ts_ms, trade_pnl)`` of the most recent closed round trip, for the cool-down after a restart."""
        row = self.db.query_one("SELECT ts_ms, trade_pnl FROM exec_pnl WHERE closed = 1 ORDER BY id DESC LIMIT 1")
        return (int(row[0]), Decimal(row[1])) if row else None
