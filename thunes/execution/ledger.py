"""The trade ledger: one CSV row per fill, the human-readable record of what the trader did.

The audit trail (:mod:`thunes.execution.audit`) is the tamper-evident record of every decision; the
ledger is the accountant's view: ``time, symbol, side, qty, price, fee, fee_asset, order_id,
client_order_id, trade_id, strategy, reason``. Money columns are written from ``Decimal`` as the
exchange's exact strings, never through a float.

A row is flushed (and fsynced) before :meth:`Ledger.record` returns, so a crash never loses a fill that
was already acknowledged. Re-recording a fill already in the file (same symbol, order id and trade id,
as happens when a restart replays the fills of an order found by reconciliation) is a no-op: the ledger
reads the keys already present when it opens. The symbol is part of the key because Binance (and the
local exchange) numbers orders and trades per symbol: BTCUSDT's order 1001 and ETHUSDT's order 1001 are
different orders, and a ledger shared by several pairs must keep both. (Every ledger file ever written
has the symbol column, so old files read with the same key.)

``listeners`` are called with every row newly booked (the bot's metrics count fills and fees there); a
failing listener is logged and never stops the booking.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from thunes.core.enums import Side
from thunes.core.errors import DataError

__all__ = ["LEDGER_COLUMNS", "Ledger", "LedgerKey", "LedgerRow", "read_ledger"]

log = logging.getLogger(__name__)

LedgerKey = tuple[str, str, str]

LEDGER_COLUMNS = (
    "time", "symbol", "side", "qty", "price", "fee", "fee_asset",
    "order_id", "client_order_id", "trade_id", "strategy", "reason",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    """One fill as written to the ledger. ``time_ms`` is the fill's exchange time (epoch ms, UTC)."""

    time_ms: int
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    order_id: str
    client_order_id: str
    trade_id: str
    strategy: str
    reason: str

    @property
    def key(self) -> LedgerKey:
        """``(symbol, order_id, trade_id)``: order and trade ids are only unique within a symbol."""
        return (self.symbol, self.order_id, self.trade_id)

    def to_csv(self) -> list[str]:
        iso = datetime.fromtimestamp(self.time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
        return [
            iso, self.symbol, str(self.side), _plain(self.qty), _plain(self.price), _plain(self.fee),
            self.fee_asset, self.order_id, self.client_order_id, self.trade_id, self.strategy, self.reason,
        ]

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> LedgerRow:
        try:
            ts = datetime.fromisoformat(row["time"])
            return cls(
                time_ms=int(round(ts.timestamp() * 1000)),
                symbol=row["symbol"],
                side=Side(row["side"]),
                qty=Decimal(row["qty"]),
                price=Decimal(row["price"]),
                fee=Decimal(row["fee"]),
                fee_asset=row["fee_asset"],
                order_id=row["order_id"],
                client_order_id=row["client_order_id"],
                trade_id=row["trade_id"],
                strategy=row["strategy"],
                reason=row["reason"],
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise DataError(f"malformed ledger row {row!r}: {exc}") from exc


def _plain(value: Decimal) -> str:
    """A Decimal as a plain string without exponent (``1E-5`` -> ``0.00001``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class Ledger:
    """Append-only CSV ledger of fills. Thread-safe; idempotent per (symbol, order id, trade id)."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _drop_torn_tail(self.path)
        self._keys: set[LedgerKey] = {r.key for r in read_ledger(self.path)} if self.path.exists() else set()
        self.listeners: list[Callable[[LedgerRow], None]] = []
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        if new_file:
            self._writer.writerow(LEDGER_COLUMNS)
            self._flush()

    def _flush(self) -> None:
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def record(self, row: LedgerRow) -> bool:
        """Append ``row``; return False (and write nothing) when this fill is already in the ledger."""
        with self._lock:
            if row.key in self._keys:
                return False
            self._writer.writerow(row.to_csv())
            self._flush()
            self._keys.add(row.key)
        for listener in self.listeners:
            try:
                listener(row)
            except Exception:  # noqa: BLE001 - watching the ledger never stops booking
                log.exception("ledger listener %s failed", listener)
        return True

    def __contains__(self, key: LedgerKey) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._flush()
                self._fh.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last row (the process died mid-write) so the next row starts on its own line."""
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_ledger(path: str | Path) -> list[LedgerRow]:
    """Every row of a ledger file, in file order. A truncated last line (crash mid-write) is ignored."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        text = fh.read()
    if not text:
        return []
    lines = text.splitlines(keepends=True)
    if not text.endswith("\n"):
        lines = lines[:-1]  # a partial row written when the process died: never acknowledged
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) != LEDGER_COLUMNS:
        raise DataError(f"ledger {path} has header {reader.fieldnames}, expected {list(LEDGER_COLUMNS)}")
    return [LedgerRow.from_csv(r) for r in reader]
