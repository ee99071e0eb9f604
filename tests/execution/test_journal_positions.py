"""Order journal and positions on both database engines: write-ahead rows, transitions, exact decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thunes.core.clock import SimulatedClock
from thunes.core.enums import OrderStatus, OrderType, Side
from thunes.core.errors import StoreError
from thunes.execution.db import Database
from thunes.execution.filters import PreparedOrder
from thunes.execution.journal import OrderJournal
from thunes.execution.positions import PositionTracker

D = Decimal


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        database = Database.connect(f"sqlite:///{tmp_path}/exec.sqlite")
    else:
        database = Database.connect(request.getfixturevalue("postgres_url"))
    yield database
    database.close()


def _order(qty: str = "0.00123", side: Side = Side.BUY) -> PreparedOrder:
    return PreparedOrder(symbol="BTC/USDT", side=side, order_type=OrderType.MARKET, qty=D(qty), price=None,
                         ref_price=D("64250.5"), notional=D(qty) * D("64250.5"))


def test_pending_row_is_written_once_per_client_order_id(db):
    j = OrderJournal(db, clock=SimulatedClock(1000))
    entry, created = j.record_pending("th-1", _order(), strategy="sma", bar_ts=5)
    assert created and entry.status is OrderStatus.PENDING and entry.qty == D("0.00123")
    again, created2 = j.record_pending("th-1", _order("9"), strategy="sma", bar_ts=5)
    assert not created2 and again.qty == D("0.00123")
    assert [e.client_order_id for e in j.unresolved()] == ["th-1"]


def test_record_sent_journals_straight_as_sent_in_one_commit(db):
    # Arrange: count the commits (one WAL fsync each under synchronous=FULL)
    j = OrderJournal(db, clock=SimulatedClock(1000))
    statements: list[str] = []
    if db.kind == "sqlite":
        db._conn.set_trace_callback(statements.append)
    # Act
    entry, created = j.record_sent("th-1", _order(), strategy="sma", reason="entry signal", bar_ts=5)
    again, created2 = j.record_sent("th-1", _order("9"), strategy="sma", bar_ts=5)
    # Assert: one row, SENT (looked up at restart, never closed blind), equal to what a reader gets back
    assert created and not created2 and again == entry
    assert entry == j.get("th-1") and entry.status is OrderStatus.SENT and entry.qty == D("0.00123")
    assert (entry.strategy, entry.reason, entry.bar_ts, entry.created_ms) == ("sma", "entry signal", 5, 1000)
    assert [e.client_order_id for e in j.unresolved()] == ["th-1"]
    if db.kind == "sqlite":
        assert [st for st in statements if st.strip().upper() == "COMMIT"] == ["COMMIT", "COMMIT"]  # one per call


def test_count_open_counts_what_open_orders_lists(db):
    j = OrderJournal(db, clock=SimulatedClock(1000))
    j.record_sent("th-1", _order("1"))
    j.record_sent("th-2", _order("1"))
    j.apply_update("th-2", OrderStatus.FILLED, filled_qty=D("1"), cum_quote=D("100"))
    j.record_pending("th-3", PreparedOrder(symbol="ETH/USDT", side=Side.BUY, order_type=OrderType.MARKET,
                                            qty=D("1"), price=None, ref_price=D("3000"), notional=D("3000")))
    assert j.count_open() == len(j.open_orders()) == 2
    assert j.count_open("BTC/USDT") == len(j.open_orders("BTC/USDT")) == 1
    assert j.count_open("SOL/USDT") == 0


def test_transitions_follow_the_table_and_fills_only_grow(db):
    j = OrderJournal(db, clock=SimulatedClock(1000))
    j.record_pending("th-1", _order("1"))
    j.mark_sent("th-1")
    j.apply_update("th-1", OrderStatus.PARTIALLY_FILLED, filled_qty=D("0.4"), cum_quote=D("40"))
    with pytest.raises(StoreError, match="only grow"):
        j.apply_update("th-1", OrderStatus.PARTIALLY_FILLED, filled_qty=D("0.3"), cum_quote=D("30"))
    old, new = j.apply_update("th-1", OrderStatus.FILLED, filled_qty=D("1"), cum_quote=D("100.5"), exchange_order_id="7")
    assert old.filled_qty == D("0.4") and new.filled_qty == D("1") and new.avg_price == D("100.5")
    with pytest.raises(StoreError, match="illegal"):
        j.apply_update("th-1", OrderStatus.CANCELED)
    replay_old, replay_new = j.apply_update("th-1", OrderStatus.FILLED, filled_qty=D("1"), cum_quote=D("100.5"))
    assert replay_new.filled_qty - replay_old.filled_qty == 0  # a replayed answer adds nothing
    assert j.unresolved() == [] and j.open_orders() == []


def test_positions_average_cost_and_realised_pnl_are_exact(db):
    clock = SimulatedClock(86_400_000)
    p = PositionTracker(db, clock=clock)
    p.apply_fill("BTC/USDT", Side.BUY, D("0.1"), D("6425.05"), fee=D("0.01"))
    p.apply_fill("BTC/USDT", Side.BUY, D("0.1"), D("6525.05"))
    pos = p.position("BTC/USDT")
    assert pos.qty == D("0.2") and pos.cost == D("12950.11")
    eff = p.apply_fill("BTC/USDT", Side.SELL, D("0.05"), D("3300"), fee=D("0.5"))
    assert eff.realised == D("3300") - D("0.5") - D("12950.11") / 4 and not eff.closed
    eff2 = p.apply_fill("BTC/USDT", Side.SELL, D("0.15"), D("9000"))
    assert eff2.closed and eff2.trade_pnl == eff.realised + eff2.realised
    assert p.open_positions() == []
    assert p.realised_since(0) == eff.realised + eff2.realised
    assert p.last_closed_trade() == (86_400_000, eff2.trade_pnl)


def test_journal_update_and_position_delta_commit_or_roll_back_together(db):
    j = OrderJournal(db, clock=SimulatedClock(1000))
    p = PositionTracker(db, clock=SimulatedClock(1000))
    j.record_pending("th-1", _order("1"))
    j.mark_sent("th-1")
    with pytest.raises(RuntimeError):
        with db.transaction():
            j.apply_update("th-1", OrderStatus.FILLED, filled_qty=D("1"), cum_quote=D("100"))
            p.apply_fill("BTC/USDT", Side.BUY, D("1"), D("100"))
            raise RuntimeError("crash between the two writes")
    assert j.get("th-1").status is OrderStatus.SENT
    assert p.position("BTC/USDT") is None


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_journal_and_positions_live_beside_the_candles_in_one_database(engine, request, tmp_path):
    """The same URL serves the candle store and the execution tables, on SQLite and on PostgreSQL."""
    from thunes.data.store import open_store
    from thunes.data.synthetic import generate_candles

    sqlite_url = f"sqlite:///{tmp_path}/thunes.sqlite"
    url = sqlite_url if engine == "sqlite" else request.getfixturevalue("postgres_url")
    # Arrange: candles written by the data layer
    store = open_store(url, cache_dir=None)
    store.write("BTC/USDT", "1h", generate_candles(24, timeframe="1h", seed=1))
    # Act: the execution layer opens the same database
    database = Database.connect(url)
    journal, positions = OrderJournal(database, clock=SimulatedClock(0)), PositionTracker(database)
    journal.record_pending("cid-1", _order(), strategy="s", reason="r", bar_ts=0, is_exit=False)
    positions.apply_fill("BTC/USDT", Side.BUY, D("0.00123"), D("79.03"), client_order_id="cid-1", ts_ms=0)
    # Assert: both read back, neither disturbed the other
    assert store.count("BTC/USDT", "1h") == 24
    assert journal.get("cid-1").status is OrderStatus.PENDING
    assert positions.position("BTC/USDT").cost == D("79.03")
    database.close()
    store.close()
