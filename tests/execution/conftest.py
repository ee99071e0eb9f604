"""Fixtures for the execution tests: a real local exchange (in-process HTTP server) and a wired executor."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from thunes.config import RiskSettings
from thunes.core.clock import LiveClock
from thunes.execution.audit import AuditTrail
from thunes.execution.db import Database
from thunes.execution.filters import MarketBook
from thunes.execution.journal import OrderJournal
from thunes.execution.orders import ExecutorOptions, OrderExecutor
from thunes.execution.positions import PositionTracker
from thunes.execution.risk import RiskManager

D = Decimal
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
RECV_WINDOW_MS = 500


def make_sim(**options):
    from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange

    account = AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                          balances={"USDT": "1000000", "BTC": "0", "ETH": "0", "SOL": "0"})
    return LocalExchange(symbols=SYMBOLS, synthetic_bars=2000, accounts=(account,), **options)


@pytest.fixture()
def sim():
    exchange = make_sim().start()
    yield exchange
    exchange.stop()


def risk_settings(**kw) -> RiskSettings:
    base = dict(max_daily_loss=D("100000"), max_loss_per_trade=D("1000"), max_positions=3,
                max_position_quote=D("100"), cool_down_minutes=0, default_stop_pct=D("0.02"))
    base.update(kw)
    return RiskSettings(**base)


@dataclass
class Stack:
    exchange: object
    executor: OrderExecutor
    risk: RiskManager
    journal: OrderJournal
    positions: PositionTracker
    audit: AuditTrail
    db: Database
    audit_path: Path


def build_stack(sim, tmp_path: Path, *, db_url: str | None = None, risk: RiskManager | None = None,
                options: ExecutorOptions | None = None, breaker=None, **risk_kw) -> Stack:
    from thunes.exchange.ccxt_adapter import CcxtExchange

    clock = LiveClock()
    # A short signed window keeps the settle time after a lost answer short (500 + 1000 + 500 ms).
    exchange = CcxtExchange.for_local(sim, timeout_s=3.0, recv_window_ms=RECV_WINDOW_MS)
    db = Database.connect(db_url or f"sqlite:///{tmp_path}/exec.sqlite")
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditTrail(audit_path, fsync="never", clock=clock)
    journal = OrderJournal(db, clock=clock)
    positions = PositionTracker(db, clock=clock)
    risk = risk or RiskManager(risk_settings(**risk_kw), clock=clock, audit=audit)
    executor = OrderExecutor(exchange, risk=risk, journal=journal, positions=positions,
                             markets=MarketBook(exchange.load_markets, clock=clock), clock=clock, audit=audit,
                             breaker=breaker,
                             options=options or ExecutorOptions(retry_sleep_s=0.05))
    return Stack(exchange, executor, risk, journal, positions, audit, db, audit_path)


@pytest.fixture()
def stack(sim, tmp_path):
    s = build_stack(sim, tmp_path)
    yield s
    s.audit.close()
    s.db.close()
    s.exchange.close()
