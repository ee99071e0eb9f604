"""The order path against the real local exchange through the real ccxt adapter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.execution.conftest import build_stack
from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.ids import client_order_id
from thunes.exchange.types import OrderRequest
from thunes.execution.audit import AuditTrail, verify_audit
from thunes.execution.circuit_breaker import CircuitBreaker
from thunes.execution.filters import PreparedOrder
from thunes.execution.orders import intent_client_order_id
from thunes.execution.risk import TradeIntent

D = Decimal


def _entry(sim, symbol: str = "BTC/USDT", bar_ts: int = 1, quote: str = "100") -> TradeIntent:
    return TradeIntent(symbol=symbol, side=Side.BUY, quote_qty=D(quote), price=sim.last_price(symbol),
                       strategy="t", bar_ts=bar_ts, reason="test entry")


def _exit(sim, symbol: str = "BTC/USDT", bar_ts: int = 2) -> TradeIntent:
    return TradeIntent(symbol=symbol, side=Side.SELL, price=sim.last_price(symbol), strategy="t", bar_ts=bar_ts,
                       is_exit=True, reason="test exit")


def _exchange_orders(stack, symbol: str) -> list[dict]:
    return stack.exchange.client.fetch_orders(symbol, limit=1000)


def test_entry_then_exit_updates_journal_positions_and_risk(sim, stack):
    out = stack.executor.execute(_entry(sim))
    assert out.status is OrderStatus.FILLED and out.error is None
    pos = stack.positions.position("BTC/USDT")
    fee = out.entry.fee  # the local exchange charges a buy's fee in the base asset
    assert pos.qty == out.filled_qty - fee and pos.cost == out.cum_quote
    assert out.cum_quote <= D(100)
    assert stack.risk.state.open_positions == ("BTC/USDT",)
    ex = stack.executor.execute(_exit(sim))
    assert ex.status is OrderStatus.FILLED
    assert stack.positions.position("BTC/USDT").qty < D("0.00001")  # only sub-step dust can remain
    assert stack.risk.state.open_positions == ()  # the dust does not hold the slot: a new entry is allowed
    assert stack.executor.execute(_entry(sim, bar_ts=3)).status is OrderStatus.FILLED
    assert verify_audit(stack.audit_path).ok
    kinds = {r.kind for r in AuditTrail.read(stack.audit_path)}
    assert {"risk_decision", "order_intent", "order_result", "fill"} <= kinds


def test_the_same_intent_twice_places_one_order(sim, stack):
    intent = _entry(sim)
    first = stack.executor.execute(intent)
    second = stack.executor.execute(intent)
    assert second.duplicate and second.client_order_id == first.client_order_id
    assert len(_exchange_orders(stack, "BTC/USDT")) == 1


def test_a_lost_answer_is_resolved_by_client_order_id_without_a_second_order(sim, stack):
    sim.faults.set(lose_order_responses=1, lose_mode="504", paths=["/api/v3/order"])
    out = stack.executor.execute(_entry(sim))
    sim.faults.clear()
    assert out.status is OrderStatus.FILLED
    orders = _exchange_orders(stack, "BTC/USDT")
    assert len(orders) == 1 and orders[0]["clientOrderId"] == out.client_order_id
    assert stack.positions.position("BTC/USDT").qty == Decimal("0.00246753")  # 0.00247 bought, less 0.1 % fee


def test_denied_intents_are_not_journaled(sim, stack):
    stack.risk.kill_switch(True, reason="test", operator="pytest")
    out = stack.executor.execute(_entry(sim))
    assert out.decision.rule == "kill_switch" and out.entry is None
    assert stack.journal.entries() == []


def test_filter_refusal_releases_the_reserved_slot(sim, stack):
    out = stack.executor.execute(_entry(sim, quote="1"))  # below the minimum notional
    assert out.entry is None and "NOTIONAL" in out.error
    assert stack.risk.state.reserved == ()


def test_exchange_rejection_is_final_and_releases_the_slot(sim, stack):
    sim.set_balance("USDT", D("5"))
    out = stack.executor.execute(_entry(sim))
    assert out.status is OrderStatus.REJECTED and "rejected" in out.error
    assert stack.risk.state.reserved == () and stack.risk.state.open_positions == ()


def test_an_open_breaker_closes_the_order_unsent(sim, tmp_path):
    breaker = CircuitBreaker("exchange", failure_threshold=1, recovery_timeout=60)
    breaker.trip()
    s = build_stack(sim, tmp_path, breaker=breaker)
    intent = _entry(sim)
    cid = intent_client_order_id(intent)
    entry, _ = s.journal.record_pending(cid, PreparedOrder(
        symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET,
        qty=D("0.001"), price=None, ref_price=intent.price, notional=D("40")))
    final = s.executor._send(s.journal.mark_sent(cid))
    assert final.status is OrderStatus.CANCELED and "not sent" in final.error
    assert _exchange_orders(s, "BTC/USDT") == []


def test_recover_closes_unsent_and_resolves_sent_orders(sim, stack):
    def prepared(qty: str) -> PreparedOrder:
        return PreparedOrder(symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET, qty=D(qty), price=None,
                             ref_price=sim.last_price("BTC/USDT"), notional=D(0))

    # crashed before sending
    stack.journal.record_pending("th-pending", prepared("0.001"))
    # crashed after sending, the exchange has it
    stack.journal.record_pending("th-sent-placed", prepared("0.001"))
    stack.journal.mark_sent("th-sent-placed")
    stack.exchange.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET,
                                            client_order_id="th-sent-placed", qty=D("0.001")))
    # crashed after marking SENT, the request never arrived
    stack.journal.record_pending("th-sent-lost", prepared("0.001"))
    stack.journal.mark_sent("th-sent-lost")

    report = stack.executor.recover()
    assert report.never_sent == ["th-pending"]
    assert report.resolved == ["th-sent-placed"]
    assert report.not_found == ["th-sent-lost"]
    # both never reached the exchange: entries of a bar long gone (bar_ts 0, no entry_ttl_ms) expire
    assert report.expired == ["th-pending", "th-sent-lost"] and report.resent == []
    assert stack.journal.get("th-sent-placed").status is OrderStatus.FILLED
    assert stack.journal.get("th-pending").status is OrderStatus.EXPIRED
    assert stack.journal.get("th-sent-lost").status is OrderStatus.EXPIRED
    assert stack.journal.unresolved() == []
    assert stack.positions.position("BTC/USDT").qty == Decimal("0.000999")  # th-sent-placed's 0.001, less the fee


def test_client_order_ids_are_deterministic_and_binance_legal(sim):
    a, b = _entry(sim, bar_ts=5), _entry(sim, bar_ts=5)
    assert intent_client_order_id(a) == intent_client_order_id(b) != intent_client_order_id(_entry(sim, bar_ts=6))
    cid = intent_client_order_id(a)
    assert len(cid) <= 36 and cid == client_order_id("t", "BTC/USDT", "BUY", 5, "entry")


def test_a_filter_rejection_from_the_exchange_reloads_the_market_rules(sim, tmp_path):
    """Our copy of the rules is stale (min notional 1 instead of the exchange's): the exchange says -1013,
    the order is REJECTED and the market definitions are reloaded at once."""
    import dataclasses

    from thunes.execution.filters import MarketBook

    s = build_stack(sim, tmp_path)
    real = s.exchange.load_markets()
    calls = []

    def loader():
        calls.append(1)
        if len(calls) == 1:
            btc = real["BTC/USDT"]
            stale = dataclasses.replace(btc, filters=dataclasses.replace(btc.filters, min_notional=D("0.01")))
            return {**real, "BTC/USDT": stale}
        return real

    s.executor.markets = MarketBook(loader)
    out = s.executor.execute(_entry(sim, quote="1"))
    assert out.status is OrderStatus.REJECTED and "NOTIONAL" in out.error
    assert len(calls) == 2
    assert s.executor.markets["BTC/USDT"].filters.min_notional == real["BTC/USDT"].filters.min_notional


def test_the_rate_limiter_follows_the_exchange_weight_header(sim, tmp_path):
    from thunes.core.clock import SimulatedClock
    from thunes.execution.rate_limiter import RateLimiter

    s = build_stack(sim, tmp_path)
    # A clock that stands still: no refill between the last answer and the assertion (with a live clock,
    # any scheduling delay there refills tokens and the count would depend on the machine's load).
    s.executor.limiter = limiter = RateLimiter(weight_per_minute=6000, safety=1.0, clock=SimulatedClock(0))
    s.executor.execute(_entry(sim))
    used = int(s.exchange.client.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    # A bound, not the 21 seen within one minute: the exchange counts weight per wall-clock minute, so a
    # minute turning between loading the markets and the order resets the count.
    assert used > 0
    assert limiter.weight.available() <= 6000 - used


def test_executor_on_postgresql(sim, tmp_path, postgres_url):
    s = build_stack(sim, tmp_path, db_url=postgres_url)
    out = s.executor.execute(_entry(sim))
    assert out.status is OrderStatus.FILLED
    assert s.positions.position("BTC/USDT").qty == Decimal("0.00246753")  # as on SQLite: 0.00247 less the fee
    assert s.executor.execute(_entry(sim)).duplicate


def test_a_429_is_honoured_then_the_order_is_sent_once(sim, tmp_path):
    import time

    from thunes.execution.rate_limiter import RateLimiter

    s = build_stack(sim, tmp_path)
    s.executor.limiter = limiter = RateLimiter()
    sim.faults.set(storm_status=429, storm_count=1, storm_retry_after=1, paths=["/api/v3/order"])
    t0 = time.monotonic()
    out = s.executor.execute(_entry(sim))
    sim.faults.clear()
    assert out.status is OrderStatus.FILLED
    assert time.monotonic() - t0 >= 0.9  # waited out Retry-After before resending
    assert not limiter.banned
    assert len(_exchange_orders(s, "BTC/USDT")) == 1


def test_a_418_ban_blocks_for_its_retry_after_then_the_order_is_sent_once(sim, tmp_path):
    from thunes.core.clock import SimulatedClock
    from thunes.execution.rate_limiter import RateLimiter

    # Arrange: the limiter's clock is simulated, so a 120 s ban is waited out at once and measured exactly
    s = build_stack(sim, tmp_path)
    clock = SimulatedClock(0)
    s.executor.limiter = limiter = RateLimiter(clock=clock)
    sim.faults.set(storm_status=418, storm_count=1, storm_retry_after=120, paths=["/api/v3/order"])
    # Act
    out = s.executor.execute(_entry(sim))
    sim.faults.clear()
    # Assert: banned, waited exactly Retry-After before the one resend, one order at the exchange
    assert limiter.banned
    assert clock.monotonic() == 120.0
    assert out.status is OrderStatus.FILLED
    assert len(_exchange_orders(s, "BTC/USDT")) == 1


def test_the_journal_row_is_durable_before_the_exchange_sees_the_order(sim, stack, tmp_path):
    """Write-ahead: at the moment the exchange accepts an order, another connection already reads its row."""
    from thunes.execution.db import Database
    from thunes.execution.journal import OrderJournal

    # Arrange: a separate reader, as a restarted process would be, called from inside the exchange
    reader = OrderJournal(Database.connect(f"sqlite:///{tmp_path}/exec.sqlite"))
    seen: dict[str, str | None] = {}

    def on_event(event: dict) -> None:
        if event.get("type") == "execution" and event["payload"]["x"] == "NEW":
            cid = event["payload"]["c"]
            row = reader.get(cid)
            seen[cid] = None if row is None else str(row.status)

    sim.engine.listeners.append(on_event)
    # Act
    out = stack.executor.execute(_entry(sim))
    # Assert: the row was committed as SENT before the request reached the exchange
    assert out.status is OrderStatus.FILLED
    assert seen == {out.client_order_id: "SENT"}


def test_the_durable_path_does_one_journal_commit_and_one_audit_fsync_before_the_send(sim, tmp_path, monkeypatch):
    """Latency: two fsyncs before the order leaves, and both the row and the decision are durable."""
    import os

    from thunes.execution.audit import AuditTrail

    # Arrange: a fully durable stack (audit fsync=always, SQLite synchronous=FULL: one WAL fsync per COMMIT);
    # count the audit file's fsyncs and the journal's COMMITs, and look at both when the exchange gets the order
    s = build_stack(sim, tmp_path)
    s.audit.close()
    audit = AuditTrail(s.audit_path, fsync="always")
    s.executor.audit = s.risk.audit = audit
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd) if fd == audit._fd else None, real_fsync(fd))[1])
    statements: list[str] = []
    s.db._conn.set_trace_callback(statements.append)
    seen: dict[str, object] = {}

    def on_event(event: dict) -> None:
        if event.get("type") == "execution" and event["payload"]["x"] == "NEW" and not seen:
            records = AuditTrail.read(s.audit_path)
            seen.update(commits=sum(1 for st in statements if st.strip().upper() == "COMMIT"),
                        audit_fsyncs=len(fsyncs), unsynced=audit._unsynced,
                        kinds=[r.kind for r in records])

    sim.engine.listeners.append(on_event)
    # Act
    out = s.executor.execute(_entry(sim))
    # Assert: exactly one journal commit and one audit fsync before the send, covering the risk decision and the
    # order intent (nothing written but not yet durable); the result and fill records come after, in one fsync
    assert out.status is OrderStatus.FILLED
    assert seen == {"commits": 1, "audit_fsyncs": 1, "unsynced": 0, "kinds": ["risk_decision", "order_intent"]}
    assert len(fsyncs) == 2
    assert [r.kind for r in AuditTrail.read(s.audit_path)] == ["risk_decision", "order_intent", "order_result",
                                                                "fill"]
    audit.close()
    assert verify_audit(s.audit_path).ok


@pytest.mark.parametrize("overlap", [True, False])
def test_the_audit_fsync_overlaps_the_journal_commit_only_when_asked(sim, tmp_path, monkeypatch, overlap):
    import os
    import threading

    from thunes.execution.audit import AuditTrail
    from thunes.execution.orders import ExecutorOptions

    # Arrange: which thread fsyncs the audit file, and is the journal row committed at that moment?
    s = build_stack(sim, tmp_path, options=ExecutorOptions(overlap_fsyncs=overlap))
    s.audit.close()
    audit = AuditTrail(s.audit_path, fsync="always")
    s.executor.audit = s.risk.audit = audit
    threads: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (threads.append(threading.current_thread().name)
                                                 if fd == audit._fd else None, real_fsync(fd))[1])
    # Act
    out = s.executor.execute(_entry(sim))
    # Assert: the pre-send fsync ran on the helper thread (overlapped) or on the caller's (one after the other)
    assert out.status is OrderStatus.FILLED
    assert len(threads) == 2
    assert threads[0].startswith("audit-fsync") is overlap
    assert threads[1] == threading.current_thread().name  # the result records: after the send, on the caller
    audit.close()
    assert verify_audit(s.audit_path).ok


def test_a_journal_write_that_fails_sends_nothing_and_says_so_in_the_audit(sim, stack):
    from thunes.core.errors import StoreError

    # Arrange: the database refuses the journal insert (a real SQLite failure, raised by a trigger)
    stack.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON exec_orders "
                     "BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END")
    intent = _entry(sim)
    # Act
    with pytest.raises(StoreError, match="disk full"):
        stack.executor.execute(intent)
    # Assert: nothing reached the exchange, the reserved slot is free, the audit closes the intent
    assert _exchange_orders(stack, "BTC/USDT") == []
    kinds = [r.kind for r in AuditTrail.read(stack.audit_path)]
    assert kinds == ["risk_decision", "order_intent", "risk_release", "order_not_sent"]
    stack.db.execute("DROP TRIGGER refuse")
    again = stack.executor.execute(intent)  # the slot was released (else: denied, duplicate symbol): placed once
    assert again.status is OrderStatus.FILLED
    assert len(_exchange_orders(stack, "BTC/USDT")) == 1


def _outbox_stack(sim, tmp_path):
    """A durable stack whose audit trail is anchored in the journal's database (as the trader builds it)."""
    from thunes.execution.audit import AuditAnchors

    s = build_stack(sim, tmp_path)
    s.audit.close()
    audit = AuditTrail(s.audit_path, fsync="always", anchors=AuditAnchors(s.db), anchor_seconds=None)
    s.executor.audit = s.risk.audit = audit
    return s, audit


def test_with_the_outbox_one_commit_carries_the_journal_row_and_the_audit_records_before_the_send(
        sim, tmp_path, monkeypatch):
    """One fsync before the order leaves: the risk decision and the order intent are durable in the
    journal's commit (audit outbox), and in the file before the send."""
    import os

    from thunes.execution.audit import AuditAnchors

    # Arrange: count the audit file's fsyncs and the journal's COMMITs when the exchange gets the order
    s, audit = _outbox_stack(sim, tmp_path)
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd) if fd == audit._fd else None, real_fsync(fd))[1])
    statements: list[str] = []
    outbox = AuditAnchors(s.db)
    s.db._conn.set_trace_callback(statements.append)
    seen: dict[str, object] = {}

    def on_event(event: dict) -> None:
        if event.get("type") == "execution" and event["payload"]["x"] == "NEW" and not seen:
            seen.update(commits=sum(1 for st in statements if st.strip().upper() == "COMMIT"),
                        audit_fsyncs=len(fsyncs), kinds=[r.kind for r in AuditTrail.read(s.audit_path)],
                        outbox=len(outbox.outbox_rows(s.audit_path)))

    sim.engine.listeners.append(on_event)
    # Act
    out = s.executor.execute(_entry(sim))
    # Assert: one commit, no audit fsync; the two records are in the outbox and in the file. The answer is one
    # more commit carrying the result and fill records: still no audit fsync
    assert out.status is OrderStatus.FILLED
    assert seen == {"commits": 1, "audit_fsyncs": 0, "kinds": ["risk_decision", "order_intent"], "outbox": 2}
    assert sum(1 for st in statements if st.strip().upper() == "COMMIT") == 2 and fsyncs == []
    assert [r.kind for r in AuditTrail.read(s.audit_path)] == ["risk_decision", "order_intent", "order_result",
                                                                "fill"]
    assert len(outbox.outbox_rows(s.audit_path)) == 4
    audit.close()  # the closing anchor fsyncs the file and empties the outbox rows it covers
    assert AuditAnchors(s.db).outbox_rows(s.audit_path) == []
    assert verify_audit(s.audit_path, anchors=AuditAnchors(s.db)).ok


def test_with_the_outbox_a_journal_write_that_fails_still_leaves_the_records_durable_in_the_file(
        sim, tmp_path, monkeypatch):
    import os

    from thunes.core.errors import StoreError
    from thunes.execution.audit import AuditAnchors

    # Arrange: the journal insert fails, so the outbox rows roll back with it
    s, audit = _outbox_stack(sim, tmp_path)
    s.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON exec_orders BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END")
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd) if fd == audit._fd else None, real_fsync(fd))[1])
    # Act
    with pytest.raises(StoreError, match="disk full"):
        s.executor.execute(_entry(sim))
    # Assert: nothing sent; the records are in the file, fsynced there (the file is their only copy)
    assert _exchange_orders(s, "BTC/USDT") == []
    assert [r.kind for r in AuditTrail.read(s.audit_path)] == ["risk_decision", "order_intent", "risk_release",
                                                                "order_not_sent"]
    assert AuditAnchors(s.db).outbox_rows(s.audit_path) == [] and len(fsyncs) == 1 and audit._unsynced == 0
    audit.close()
    assert verify_audit(s.audit_path, anchors=AuditAnchors(s.db)).ok
