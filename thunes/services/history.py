"""Trades with stable ids, one trade by id, and monthly profit: what a remote surface pages through.

Round trips come from :func:`thunes.services.reports.round_trips` (oldest entry first). A trade's id is
its 1-based position in that order: the ledger is append-only and a new round trip starts after every
earlier one, so an id never changes once given (an open trade keeps its id when it closes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from thunes.core.errors import ConfigError
from thunes.execution.ledger import LedgerRow
from thunes.services.reports import PeriodProfit, Trade, round_trips

__all__ = ["NumberedTrade", "TradeNotFound", "TradePage", "monthly", "trade_by_id", "trade_page"]

ZERO = Decimal(0)


class TradeNotFound(ConfigError):
    """No trade has this id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberedTrade:
    id: int
    trade: Trade


@dataclass(frozen=True, slots=True, kw_only=True)
class TradePage:
    trades: tuple[NumberedTrade, ...]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _numbered(ledger: Path | Iterable[LedgerRow]) -> list[NumberedTrade]:
    return [NumberedTrade(id=i, trade=t) for i, t in enumerate(round_trips(ledger), start=1)]


def trade_page(ledger: Path | Iterable[LedgerRow], *, page: int = 1, per_page: int = 20,
               symbol: str | None = None) -> TradePage:
    """Trades newest first, ``per_page`` per page (page 1 is the newest), each with its id."""
    if page < 1 or per_page < 1:
        raise ConfigError(f"page and per_page must be >= 1, got {page} and {per_page}")
    rows = [n for n in _numbered(ledger) if symbol is None or n.trade.symbol == symbol.upper()]
    rows.reverse()
    lo = (page - 1) * per_page
    return TradePage(trades=tuple(rows[lo:lo + per_page]), page=page, per_page=per_page, total=len(rows))


def trade_by_id(ledger: Path | Iterable[LedgerRow], trade_id: int) -> NumberedTrade:
    rows = _numbered(ledger)
    if not 1 <= trade_id <= len(rows):
        raise TradeNotFound(f"no trade with id {trade_id} ({len(rows)} trades recorded)")
    return rows[trade_id - 1]


def monthly(ledger: Path | Iterable[LedgerRow], *, months: int = 6, now_ms: int) -> list[PeriodProfit]:
    """Realised profit of closed trades per calendar month (UTC, by exit), the last ``months``, newest first."""
    if months < 1:
        raise ConfigError(f"months must be >= 1, got {months}")
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    starts: list[str] = []
    y, m = today.year, today.month
    for _ in range(months):
        starts.append(date(y, m, 1).isoformat())
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    buckets: dict[str, list[Trade]] = {s: [] for s in starts}
    for t in round_trips(ledger):
        if t.exit_ms is None:
            continue
        d = datetime.fromtimestamp(t.exit_ms / 1000, tz=UTC).date()
        key = date(d.year, d.month, 1).isoformat()
        if key in buckets:
            buckets[key].append(t)
    return [PeriodProfit(start=s, trades=len(ts), realised_pnl=sum((t.pnl or ZERO for t in ts), ZERO),
                         fees=sum((t.fees for t in ts), ZERO)) for s, ts in buckets.items()]
