"""Placing one bar's orders across pairs together (OrderExecutor.execute_many), against the local exchange."""

from __future__ import annotations

from decimal import Decimal

from tests.execution.conftest import SYMBOLS, build_stack
from thunes.core.enums import OrderStatus, Side
from thunes.core.errors import ExchangeError
from thunes.execution.audit import AuditTrail, verify_audit
from thunes.execution.orders import intent_client_order_id
from thunes.execution.risk import TradeIntent

D = Decimal


def _entry(sim, symbol: str, bar_ts: int = 1) -> TradeIntent:
    return TradeIntent(symbol=symbol, side=Side.BUY, quote_qty=D("100"), price=sim.last_price(symbol),
                       strategy="t", bar_ts=bar_ts, reason="test entry")


def _exit(sim, symbol: str, bar_ts: int = 2) -> TradeIntent:
    return TradeIntent(symbol=symbol, side=Side.SELL, price=sim.last_price(symbol), strategy="t",
                       bar_ts=bar_ts, is_exit=True, reason="test exit")


def test_every_row_of_the_group_is_journaled_in_one_commit_before_the_first_order_reaches_the_exchange(
        sim, stack, tmp_path):
    from thunes.execution.db import Database
    from thunes.execution.journal import OrderJournal

    # Arrange: a second connection (a restarted process) reads the journal when the exchange gets each order
    reader = OrderJournal(Database.connect(f"sqlite:///{tmp_path}/exec.sqlite"))
    statements: list[str] = []
    stack.db._conn.set_trace_callback(statements.append)
    seen: list[tuple[int, dict[str, str | None]]] = []
    intents = [_entry(sim, s) for s in SYMBOLS]

    def on_event(event: dict) -> None:
        if event.get("type") == "execution" and event["payload"]["x"] == "NEW":
            commits = sum(1 for st in statements if st.strip().upper() == "COMMIT")
            rows = {s: (None if (r := reader.get(e)) is None else str(r.status))
                    for s, e in zip(SYMBOLS, map(intent_client_order_id, intents), strict=True)}
            seen.append((commits, rows))

    sim.engine.listeners.append(on_event)
    # Act
    outcomes = stack.executor.execute_many(intents)
    # Assert: the first order left after one commit holding the three rows; the answers were booked after the
    # last send (still one commit when the third order arrived), in one more commit
    assert [o.status for o in outcomes] == [OrderStatus.FILLED] * 3
    assert [commits for commits, _rows in seen] == [1, 1, 1]
    assert seen[0][1] == dict.fromkeys(SYMBOLS, "SENT")
    assert sum(1 for st in statements if st.strip().upper() == "COMMIT") == 2
    assert set(stack.risk.state.open_positions) == set(SYMBOLS)
    assert verify_audit(stack.audit_path).ok


def test_exits_are_booked_before_the_entries_are_checked(sim, tmp_path):
    # Arrange: one position allowed and held on BTC; the bar exits BTC and enters ETH (listed first)
    s = build_stack(sim, tmp_path, max_positions=1)
    assert s.executor.execute(_entry(sim, "BTC/USDT")).status is OrderStatus.FILLED
    # Act
    entry, exit_ = s.executor.execute_many([_entry(sim, "ETH/USDT", bar_ts=2), _exit(sim, "BTC/USDT")])
    # Assert: the exit freed the slot before the entry's check, as one at a time in that order would
    assert exit_.status is OrderStatus.FILLED
    assert entry.status is OrderStatus.FILLED, entry.decision
    assert s.risk.state.open_positions == ("ETH/USDT",)
    kinds = [(r.kind, r.payload.get("symbol")) for r in AuditTrail.read(s.audit_path)
             if r.kind == "order_intent"]
    assert kinds == [("order_intent", "BTC/USDT"), ("order_intent", "BTC/USDT"), ("order_intent", "ETH/USDT")]


def test_a_group_checks_each_intent_against_the_slots_the_previous_ones_reserved(sim, tmp_path):
    # Arrange: two positions allowed, three entries in one bar
    s = build_stack(sim, tmp_path, max_positions=2)
    # Act
    outcomes = s.executor.execute_many([_entry(sim, sym) for sym in SYMBOLS])
    # Assert: two placed, the third denied before anything was sent; never three positions
    assert [o.status for o in outcomes[:2]] == [OrderStatus.FILLED, OrderStatus.FILLED]
    assert outcomes[2].entry is None and outcomes[2].decision.rule == "max_positions"
    assert len(s.journal.entries()) == 2 and len(s.risk.state.open_positions) == 2


def test_the_same_intent_twice_in_one_group_places_one_order(sim, stack):
    intent = _entry(sim, "BTC/USDT")
    first, second = stack.executor.execute_many([intent, intent])
    assert first.status is OrderStatus.FILLED and second.duplicate
    assert len(stack.exchange.client.fetch_orders("BTC/USDT", limit=100)) == 1


def test_an_answer_whose_fees_cannot_be_fetched_holds_its_symbol_and_the_others_are_booked(
        sim, stack, monkeypatch):
    # Arrange: the BTC order's answer is lost (found by a lookup, which carries no fees) and the trade
    # list that would give its fees fails
    sim.faults.set(lose_order_responses=1, lose_mode="504", paths=["/api/v3/order"])
    real = stack.exchange.fetch_my_trades

    def failing(symbol, *a, **k):
        if symbol == "BTC/USDT":
            raise ExchangeError("trades unavailable")
        return real(symbol, *a, **k)

    monkeypatch.setattr(stack.exchange, "fetch_my_trades", failing)
    # Act
    btc, eth = stack.executor.execute_many([_entry(sim, "BTC/USDT"), _entry(sim, "ETH/USDT")])
    sim.faults.clear()
    # Assert: ETH booked; BTC's error in its place, its row SENT and its symbol held (no second entry there)
    assert isinstance(btc, ExchangeError)
    assert eth.status is OrderStatus.FILLED
    assert stack.journal.get(intent_client_order_id(_entry(sim, "BTC/USDT"))).status is OrderStatus.SENT
    assert stack.risk.unknown_orders("BTC/USDT")
    # Act: the trades come back; the next intent on BTC first books the filled order, then is denied
    monkeypatch.setattr(stack.exchange, "fetch_my_trades", real)
    again = stack.executor.execute(_entry(sim, "BTC/USDT", bar_ts=2))
    assert stack.journal.get(intent_client_order_id(_entry(sim, "BTC/USDT"))).status is OrderStatus.FILLED
    assert again.entry is None and again.decision.rule == "duplicate_symbol"
    assert len(stack.exchange.client.fetch_orders("BTC/USDT", limit=100)) == 1
