"""Execution safety core: everything an order passes through before and after it reaches an exchange.

risk (decisions, kill-switch) -> filters (exchange rules) -> journal (write-ahead) -> exchange, with
positions, the hash-chained audit trail, circuit breakers and the rate limiter around it. The trader
(``thunes.live.trader``) drives these; see docs/execution.md for the API.
"""

from __future__ import annotations

from thunes.execution.audit import AuditRecord, AuditTrail, VerifyResult, verify_audit
from thunes.execution.circuit_breaker import BreakerRegistry, CircuitBreaker, CircuitOpen, CircuitState
from thunes.execution.db import Database
from thunes.execution.filters import (
    MarketBook,
    PreparedOrder,
    prepare_limit_order,
    prepare_market_order,
    validate_order,
)
from thunes.execution.journal import JournalEntry, OrderJournal
from thunes.execution.orders import (
    ExecutorOptions,
    OrderExecutor,
    OrderOutcome,
    RecoveryReport,
    intent_client_order_id,
)
from thunes.execution.positions import Position, PositionTracker
from thunes.execution.rate_limiter import RateLimiter, TokenBucket
from thunes.execution.risk import Approved, Denied, RiskManager, RiskMode, RiskSnapshot, TradeIntent

__all__ = [
    "Approved",
    "AuditRecord",
    "AuditTrail",
    "BreakerRegistry",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "Database",
    "Denied",
    "ExecutorOptions",
    "JournalEntry",
    "MarketBook",
    "OrderExecutor",
    "OrderJournal",
    "OrderOutcome",
    "Position",
    "PositionTracker",
    "PreparedOrder",
    "RateLimiter",
    "RecoveryReport",
    "RiskManager",
    "RiskMode",
    "RiskSnapshot",
    "TokenBucket",
    "TradeIntent",
    "VerifyResult",
    "intent_client_order_id",
    "prepare_limit_order",
    "prepare_market_order",
    "validate_order",
    "verify_audit",
]
