"""Trades and profit reports from the ledger: paged trades, profit summary, daily/weekly, per pair.

The ledger (CSV of fills, one row per exchange trade) is the record of what was really traded; round
trips are rebuilt from it per symbol (:func:`thunes.live.parity.ledger_round_trips`, long-only:
buys open, sells close, fees converted to quote). Every function takes the ledger path (or its rows)
and returns frozen values; the CLI, the API and the Telegram bot print them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError
from thunes.execution.ledger import LedgerRow, read_ledger

__all__ = [
    "PairPerformance",
    "PeriodProfit",
    "ProfitSummary",
    "Trade",
    "TradesPage",
    "daily",
    "performance",
    "profit",
    "round_trips",
    "trades",
    "weekly",
]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One round trip of one pair (``exit_ms`` None while open)."""

    symbol: str
    entry_ms: int
    exit_ms: int | None
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal | None
    fees: Decimal  # in quote
    pnl: Decimal | None  # realised, after fees; None while open
    return_pct: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TradesPage:
    trades: tuple[Trade, ...]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfitSummary:
    closed_trades: int
    open_trades: int
    wins: int
    losses: int
    realised_pnl: Decimal
    fees: Decimal
    best: Decimal | None
    worst: Decimal | None
    first_ms: int | None
    last_ms: int | None

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.closed_trades if self.closed_trades else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodProfit:
    start: str  # YYYY-MM-DD (UTC) of the day or of the week's Monday
    trades: int
    realised_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PairPerformance:
    symbol: str
    trades: int
    wins: int
    realised_pnl: Decimal
    avg_return_pct: Decimal | None


def _rows(ledger: Path | Iterable[LedgerRow]) -> list[LedgerRow]:
    if isinstance(ledger, (str, Path)):
        return read_ledger(ledger) if Path(ledger).exists() else []
    return list(ledger)


def round_trips(ledger: Path | Iterable[LedgerRow]) -> list[Trade]:
    """Round trips of every pair, oldest entry first."""
    by_symbol: dict[str, list[LedgerRow]] = {}
    for r in _rows(ledger):
        by_symbol.setdefault(r.symbol, []).append(r)
    out: list[Trade] = []
    for symbol, rows in by_symbol.items():
        out.extend(_trips(symbol, sorted(rows, key=lambda r: (r.time_ms, r.order_id, r.trade_id))))
    return sorted(out, key=lambda t: (t.entry_ms, t.symbol))


def _fee_quote(r: LedgerRow) -> Decimal:
    base, _, quote = r.symbol.partition("/")
    if r.fee_asset == base:
        return r.fee * r.price
    return r.fee if r.fee_asset == quote else ZERO


def _trips(symbol: str, rows: list[LedgerRow]) -> list[Trade]:
    trades: list[Trade] = []
    cur: dict[str, Any] | None = None

    def close(t: dict[str, Any]) -> Trade:
        done = t["exit_ms"] is not None
        entry_px = t["cost"] / t["qty"] if t["qty"] else ZERO
        exit_px = t["proceeds"] / t["sold"] if t["sold"] else None
        pnl = (t["proceeds"] - entry_px * t["sold"] - t["fees"]) if done else None
        ret = (pnl / t["cost"] * 100) if done and t["cost"] else None
        return Trade(symbol=symbol, entry_ms=t["entry_ms"], exit_ms=t["exit_ms"], qty=t["qty"], entry_price=entry_px,
                     exit_price=exit_px if done else None, fees=t["fees"], pnl=pnl, return_pct=ret)

    for r in rows:
        side = str(r.side)
        if side == "BUY":
            if cur is None or cur["closing"]:
                if cur is not None:
                    trades.append(close(cur))
                cur = {"entry_ms": r.time_ms, "qty": ZERO, "cost": ZERO, "fees": ZERO, "sold": ZERO,
                       "proceeds": ZERO, "exit_ms": None, "closing": False}
            cur["qty"] += r.qty
            cur["cost"] += r.qty * r.price
            cur["fees"] += _fee_quote(r)
        elif cur is not None:
            cur["closing"] = True
            cur["sold"] += r.qty
            cur["proceeds"] += r.qty * r.price
            cur["fees"] += _fee_quote(r)
            cur["exit_ms"] = r.time_ms
    if cur is not None:
        trades.append(close(cur))
    return trades


def trades(ledger: Path | Iterable[LedgerRow], *, page: int = 1, per_page: int = 20,
           symbol: str | None = None) -> TradesPage:
    """Round trips, newest first, ``per_page`` per page (page 1 is the newest)."""
    if page < 1 or per_page < 1:
        raise ConfigError(f"page and per_page must be >= 1, got {page} and {per_page}")
    all_ = [t for t in round_trips(ledger) if symbol is None or t.symbol == symbol.upper()]
    all_.reverse()
    lo = (page - 1) * per_page
    return TradesPage(trades=tuple(all_[lo:lo + per_page]), page=page, per_page=per_page, total=len(all_))


def profit(ledger: Path | Iterable[LedgerRow]) -> ProfitSummary:
    trips = round_trips(ledger)
    closed = [t for t in trips if t.pnl is not None]
    pnls = [t.pnl for t in closed if t.pnl is not None]
    stamps = [t.entry_ms for t in trips] + [t.exit_ms for t in trips if t.exit_ms is not None]
    return ProfitSummary(
        closed_trades=len(closed), open_trades=len(trips) - len(closed), wins=sum(1 for p in pnls if p > 0),
        losses=sum(1 for p in pnls if p <= 0), realised_pnl=sum(pnls, ZERO), fees=sum((t.fees for t in trips), ZERO),
        best=max(pnls) if pnls else None, worst=min(pnls) if pnls else None,
        first_ms=min(stamps) if stamps else None, last_ms=max(stamps) if stamps else None,
    )


def _periods(ledger: Path | Iterable[LedgerRow], key: Callable[[date], str], starts: list[str]) -> list[PeriodProfit]:
    buckets: dict[str, list[Trade]] = {s: [] for s in starts}
    for t in round_trips(ledger):
        if t.exit_ms is None:
            continue
        k = key(datetime.fromtimestamp(t.exit_ms / 1000, tz=UTC).date())
        if k in buckets:
            buckets[k].append(t)
    return [PeriodProfit(start=s, trades=len(ts), realised_pnl=sum((t.pnl or ZERO for t in ts), ZERO),
                         fees=sum((t.fees for t in ts), ZERO)) for s, ts in buckets.items()]


def daily(ledger: Path | Iterable[LedgerRow], *, days: int = 7, now_ms: int) -> list[PeriodProfit]:
    """Realised profit of closed trades per UTC day (by exit), the last ``days`` days, newest first."""
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    starts = [(today - timedelta(days=i)).isoformat() for i in range(days)]
    return _periods(ledger, lambda d: d.isoformat(), starts)


def weekly(ledger: Path | Iterable[LedgerRow], *, weeks: int = 4, now_ms: int) -> list[PeriodProfit]:
    """Realised profit per ISO week (starting Monday, UTC), the last ``weeks`` weeks, newest first."""
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    monday = today - timedelta(days=today.weekday())
    starts = [(monday - timedelta(weeks=i)).isoformat() for i in range(weeks)]
    return _periods(ledger, lambda d: (d - timedelta(days=d.weekday())).isoformat(), starts)


def performance(ledger: Path | Iterable[LedgerRow]) -> list[PairPerformance]:
    """Closed trades per pair, best realised profit first."""
    by: dict[str, list[Trade]] = {}
    for t in round_trips(ledger):
        if t.pnl is not None:
            by.setdefault(t.symbol, []).append(t)
    out = []
    for symbol, ts in by.items():
        rets = [t.return_pct for t in ts if t.return_pct is not None]
        out.append(PairPerformance(symbol=symbol, trades=len(ts), wins=sum(1 for t in ts if (t.pnl or ZERO) > 0),
                                   realised_pnl=sum((t.pnl or ZERO for t in ts), ZERO),
                                   avg_return_pct=(sum(rets, ZERO) / len(rets)) if rets else None))
    return sorted(out, key=lambda p: p.realised_pnl, reverse=True)
