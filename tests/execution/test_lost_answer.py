"""Lost answers and late requests: an order whose outcome is unknown is never resent while it can still land.

A loopback gateway (:mod:`tests.execution.delay_proxy`) answers the first ``POST /api/v3/order`` with a 502
at once and delivers the request to the local exchange later. The exchange accepts a request while its
timestamp is at most ``recvWindow`` old and refuses a reused client order id only among *open* orders, so a
resend before the original's window has passed would fill twice. For each delay around the window, the
exchange must end with exactly one filled order per client order id, the journal must agree with it, and the
position with the balance.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.execution.conftest import risk_settings
from tests.execution.delay_proxy import DelayProxy
from thunes.core.clock import LiveClock
from thunes.core.enums import OrderStatus, Side
from thunes.core.errors import ConfigError
from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions
from thunes.execution.audit import AuditTrail
from thunes.execution.db import Database
from thunes.execution.filters import MarketBook
from thunes.execution.journal import OrderJournal
from thunes.execution.orders import (
    CLOCK_AHEAD_LIMIT_MS,
    ExecutorOptions,
    OrderExecutor,
    intent_client_order_id,
    min_settle_ms,
)
from thunes.execution.positions import PositionTracker
from thunes.execution.risk import RiskManager, TradeIntent

D = Decimal
WINDOW_MS = 1_000  # signed recvWindow of these tests: short, so that the delays are short


@pytest.fixture()
def proxy(sim):
    with DelayProxy(sim.base_url) as p:
        yield p


def _executor(sim, proxy, tmp_path, *, recv_window_ms: int | None = WINDOW_MS,
              options: ExecutorOptions | None = None):
    clock = LiveClock()
    extra = {} if recv_window_ms is None else {"recv_window_ms": recv_window_ms}
    exchange = CcxtExchange(CcxtOptions(mode="local", base_url=proxy.base_url, api_key=sim.api_key,
                                        secret=sim.secret, timeout_s=5.0, enable_rate_limit=False, **extra))
    db = Database.connect(f"sqlite:///{tmp_path}/exec.sqlite")
    audit = AuditTrail(tmp_path / "audit.jsonl", fsync="never", clock=clock)
    journal = OrderJournal(db, clock=clock)
    positions = PositionTracker(db, clock=clock)
    executor = OrderExecutor(exchange, risk=RiskManager(risk_settings(), clock=clock, audit=audit), journal=journal,
                             positions=positions, markets=MarketBook(exchange.load_markets, clock=clock),
                             clock=clock, audit=audit, options=options or ExecutorOptions(retry_sleep_s=0.1))
    return executor


def _entry(sim, bar_ts: int) -> TradeIntent:
    return TradeIntent(symbol="BTC/USDT", side=Side.BUY, price=sim.last_price("BTC/USDT"), quote_qty=D("40"),
                       strategy="lost", bar_ts=bar_ts, reason="lost-answer test")


def _assert_books_agree(sim, executor, cid: str) -> None:
    """One order for the client order id at the exchange, filled; journal and position agree with it."""
    direct = CcxtExchange.for_local(sim)
    try:
        orders = [o for o in direct.client.fetch_orders("BTC/USDT", limit=1000) if o["clientOrderId"] == cid]
        btc = direct.fetch_balance()["BTC"].total
    finally:
        direct.close()
    assert len(orders) == 1, [(o["id"], o["info"]["status"]) for o in orders]
    assert orders[0]["info"]["status"] == "FILLED"
    entry = executor.journal.get(cid)
    assert entry.status is OrderStatus.FILLED
    assert entry.filled_qty == D(orders[0]["info"]["executedQty"])
    assert entry.exchange_order_id == str(orders[0]["id"])
    assert executor.positions.position("BTC/USDT").qty == btc


@pytest.mark.parametrize("delay_s, lands", [
    (0.3, True),                          # well inside the window: the original fills, found by a lookup
    (WINDOW_MS / 1000 - 0.1, True),       # at the window's edge: still accepted
    (WINDOW_MS / 1000 + 0.3, False),      # just past it: refused as stale (-1021), the resend fills
    (min_settle_ms(WINDOW_MS) / 1000 + 0.5, False),  # after the resend: refused as stale, nothing doubled
])
def test_a_lost_order_answer_never_fills_twice_whatever_the_delivery_delay(sim, proxy, tmp_path, delay_s, lands):
    executor = _executor(sim, proxy, tmp_path)
    intent = _entry(sim, bar_ts=1)
    proxy.arm(delay_s)

    outcome = executor.execute(intent)
    proxy.wait_delivered()

    cid = intent_client_order_id(intent)
    assert outcome.status is OrderStatus.FILLED
    assert [d.code for d in proxy.delivered] == [None if lands else -1021]
    _assert_books_agree(sim, executor, cid)


@pytest.mark.slow
def test_a_request_delivered_8s_late_under_the_default_window_is_refused_and_only_the_resend_fills(
        sim, proxy, tmp_path):
    """A 502 at once and the request delivered 8 s later, with the adapter's default window: the adapter
    signs with a 4 s recvWindow and the executor waits 5.5 s before resending, so the resend fills and the
    late original is refused as stale (-1021). (With ccxt's own 10 s window and a resend after 6 s, both
    would fill.)"""
    executor = _executor(sim, proxy, tmp_path, recv_window_ms=None, options=ExecutorOptions(retry_sleep_s=0.5))
    assert executor.exchange.recv_window_ms == 4_000 and executor.settle_ms == 5_500
    intent = _entry(sim, bar_ts=2)
    proxy.arm(8.0)

    outcome = executor.execute(intent)
    proxy.wait_delivered()

    assert outcome.status is OrderStatus.FILLED
    assert [d.code for d in proxy.delivered] == [-1021]
    _assert_books_agree(sim, executor, intent_client_order_id(intent))


def test_the_settle_time_derives_from_the_signed_window_and_a_shorter_one_is_refused(sim, proxy, tmp_path):
    executor = _executor(sim, proxy, tmp_path)
    assert executor.exchange.recv_window_ms == WINDOW_MS  # what ccxt signs with, read from the client
    assert executor.settle_ms == min_settle_ms(WINDOW_MS) == WINDOW_MS + CLOCK_AHEAD_LIMIT_MS + 500
    with pytest.raises(ConfigError, match="settle_ms=1000 is below"):
        _executor(sim, proxy, tmp_path, options=ExecutorOptions(settle_ms=1_000))
    with pytest.raises(ConfigError, match="settle_ms=6000 is below"):
        _executor(sim, proxy, tmp_path, recv_window_ms=10_000, options=ExecutorOptions(settle_ms=6_000))
    assert _executor(sim, proxy, tmp_path, options=ExecutorOptions(settle_ms=9_000)).settle_ms == 9_000


def test_no_new_order_on_a_symbol_while_an_earlier_order_there_has_an_unknown_outcome(sim, proxy, tmp_path):
    """An exit whose answer was lost and whose lookups fail stays SENT with its outcome unknown: it may still
    land. A second exit on the symbol now could sell the same coins twice (on spot: the user's other coins), so
    every new intent on the symbol is denied (rule ``order_outcome_unknown``), in this process and in the next
    one (the hold is rebuilt from the journal). Once the exchange answers again and the settle time has passed,
    the next intent resolves the old order first (here: never placed, so the exit is sent again) and only then
    is decided on: one sell at the exchange, never two."""
    first = _executor(sim, proxy, tmp_path)
    price = sim.last_price("BTC/USDT")
    assert first.execute(_entry(sim, bar_ts=10)).status is OrderStatus.FILLED

    def exit_at(bar_ts: int) -> TradeIntent:
        return TradeIntent(symbol="BTC/USDT", side=Side.SELL, price=price, is_exit=True, strategy="lost",
                           bar_ts=bar_ts, reason="lost-answer test exit")

    sim.faults.set(http_error=503, paths=["/api/v3/order"])  # the sell is refused unseen, its lookups fail
    lost = first.execute(exit_at(11))
    assert lost.entry.status is OrderStatus.SENT and "outcome unknown" in lost.entry.error
    assert first.risk.unknown_orders("BTC/USDT") == {lost.client_order_id}

    held = first.execute(exit_at(12))
    assert held.decision is not None and held.decision.rule == "order_outcome_unknown"
    assert held.entry is None  # never journaled, never sent

    restarted = _executor(sim, proxy, tmp_path)  # a new process on the same journal
    restarted.restore_risk()
    assert restarted.risk.unknown_orders("BTC/USDT") == {lost.client_order_id}
    assert restarted.execute(exit_at(13)).decision.rule == "order_outcome_unknown"

    sim.faults.clear()
    time.sleep(restarted.settle_ms / 1000 + 0.1)
    after = restarted.execute(exit_at(14))
    assert restarted.journal.get(lost.client_order_id).status is OrderStatus.FILLED  # re-decided: sent again
    assert after.decision.rule == "no_position"  # decided on the resolved book: nothing left to sell
    direct = CcxtExchange.for_local(sim)
    try:
        sells = [o for o in direct.client.fetch_orders("BTC/USDT", limit=1000) if o["side"] == "sell"]
    finally:
        direct.close()
    assert [o["clientOrderId"] for o in sells] == [lost.client_order_id]
