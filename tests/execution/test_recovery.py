"""An intent that a crash kept from reaching the exchange is re-decided at restart, never dropped.

The executor journals an order (one commit) before it sends it; a kill between the two leaves a SENT row
the exchange never saw. At restart the row is found missing once a request could no longer land, and then:
an exit is sent again (a position must never stay open because of a crash), an entry is sent again while
its bar is younger than ``entry_ttl_ms`` and otherwise closed as EXPIRED with its risk slot released.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tests.execution.conftest import RECV_WINDOW_MS, build_stack
from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.core.clock import LiveClock
from thunes.core.enums import OrderStatus, Side
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.execution.ledger import read_ledger
from thunes.execution.orders import intent_client_order_id
from thunes.execution.risk import TradeIntent
from thunes.live.assembly import ReplayClock
from thunes.live.assembly import build_stack as build_trading_stack
from thunes.live.feed import Candle
from thunes.live.trader import TraderOptions
from thunes.strategies.sma_cross import SmaCross

D = Decimal


def _journal_unsent(stack, intent: TradeIntent) -> str:
    """What a kill right after the write-ahead commit leaves: the risk decision, the SENT row, no request."""
    decision = stack.risk.check(intent)
    prepared = stack.executor._prepare(intent, decision)
    cid = intent_client_order_id(intent)
    stack.journal.record_sent(cid, prepared, strategy=intent.strategy, reason=intent.reason, bar_ts=intent.bar_ts,
                              is_exit=intent.is_exit)
    return cid


def _restart(sim, tmp_path, old, **option_changes):
    """A new process on the same database: executor, risk manager and journal rebuilt from it."""
    old.audit.close()
    old.db.close()
    old.exchange.close()
    fresh = build_stack(sim, tmp_path)
    if option_changes:
        fresh.executor.options = replace(fresh.executor.options, **option_changes)
    fresh.executor.restore_risk()
    return fresh


def _orders_at_exchange(stack, symbol: str, cid: str) -> list[dict]:
    return [o for o in stack.exchange.client.fetch_orders(symbol, limit=1000) if o["clientOrderId"] == cid]


def test_an_exit_killed_before_its_request_left_is_sent_at_restart(sim, tmp_path):
    stack = build_stack(sim, tmp_path)
    price = sim.last_price("BTC/USDT")
    entry = stack.executor.execute(TradeIntent(symbol="BTC/USDT", side=Side.BUY, quote_qty=D("50"), price=price,
                                               strategy="t", bar_ts=1, reason="entry"))
    assert entry.status is OrderStatus.FILLED
    cid = _journal_unsent(stack, TradeIntent(symbol="BTC/USDT", side=Side.SELL, price=price, strategy="t", bar_ts=2,
                                             is_exit=True, reason="exit"))
    stack = _restart(sim, tmp_path, stack)  # no entry_ttl_ms: exits are sent again regardless
    try:
        report = stack.executor.recover()
        assert report.not_found == [cid] and report.resent == [cid] and report.expired == []
        assert stack.journal.get(cid).status is OrderStatus.FILLED
        assert [o["info"]["status"] for o in _orders_at_exchange(stack, "BTC/USDT", cid)] == ["FILLED"]
        left = stack.positions.position("BTC/USDT")
        assert left is None or stack.executor._is_dust("BTC/USDT", left.qty, price)
        assert '"order_resend"' in stack.audit_path.read_text()
    finally:
        stack.audit.close()
        stack.db.close()
        stack.exchange.close()


def test_a_young_entry_is_sent_again_and_an_old_one_expires_with_its_slot_released(sim, tmp_path):
    stack = build_stack(sim, tmp_path, max_positions=2)
    now = LiveClock().now_ms()
    young = _journal_unsent(stack, TradeIntent(symbol="BTC/USDT", side=Side.BUY, quote_qty=D("50"),
                                               price=sim.last_price("BTC/USDT"), strategy="t", bar_ts=now, reason="y"))
    old = _journal_unsent(stack, TradeIntent(symbol="ETH/USDT", side=Side.BUY, quote_qty=D("50"),
                                             price=sim.last_price("ETH/USDT"), strategy="t", bar_ts=now - 600_000,
                                             reason="o"))
    stack = _restart(sim, tmp_path, stack, entry_ttl_ms=300_000)
    try:
        report = stack.executor.recover()
        assert sorted(report.not_found) == sorted([young, old])
        assert report.resent == [young] and report.expired == [old]
        assert stack.journal.get(young).status is OrderStatus.FILLED
        expired = stack.journal.get(old)
        assert expired.status is OrderStatus.EXPIRED and "entry expired" in expired.error
        assert _orders_at_exchange(stack, "ETH/USDT", old) == []
        # the expired entry holds no slot: a new ETH entry fits next to the BTC position (max_positions=2)
        again = stack.executor.execute(TradeIntent(symbol="ETH/USDT", side=Side.BUY, quote_qty=D("50"),
                                                   price=sim.last_price("ETH/USDT"), strategy="t", bar_ts=now + 1))
        assert again.status is OrderStatus.FILLED
    finally:
        stack.audit.close()
        stack.db.close()
        stack.exchange.close()


def test_a_resend_the_risk_manager_refuses_is_closed_with_the_reason(sim, tmp_path):
    stack = build_stack(sim, tmp_path)
    cid = _journal_unsent(stack, TradeIntent(symbol="BTC/USDT", side=Side.BUY, quote_qty=D("50"),
                                             price=sim.last_price("BTC/USDT"), strategy="t",
                                             bar_ts=LiveClock().now_ms(), reason="e"))
    stack = _restart(sim, tmp_path, stack, entry_ttl_ms=300_000)
    try:
        stack.risk.kill_switch(True, reason="test", operator="pytest")
        report = stack.executor.recover()
        assert report.denied == [cid] and report.resent == []
        row = stack.journal.get(cid)
        assert row.status is OrderStatus.CANCELED and "denied (kill_switch)" in row.error
        assert _orders_at_exchange(stack, "BTC/USDT", cid) == []
    finally:
        stack.audit.close()
        stack.db.close()
        stack.exchange.close()


@pytest.mark.parametrize("halted", [False, True])
def test_the_trader_replaying_a_bar_whose_order_never_left_sees_what_recovery_decided(tmp_path, halted):
    """Killed between the journal commit and the send: at restart recovery sends the entry (its bar is young
    by the trader's signal-age rule) and books its fill, or, with the kill-switch on, closes it as denied; the
    replayed bar then sends nothing and reports the journaled outcome."""
    frame = generate_candles(200, timeframe="1h", seed=11, start_price=40_000.0, price_decimals=2)
    stamps = ts_ms(frame)
    entries = SmaCross(fast=3, slow=8).signals(frame).arrays(frame.index).entries
    i = next(k for k in range(40, len(frame) - 1) if entries[k])
    with LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(stamps[i + 1])) as sim:
        def stack_now():
            options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=D("100"),
                                    state_dir=tmp_path / "state", window_bars=40)
            port = CcxtExchange.for_local(sim, recv_window_ms=RECV_WINDOW_MS)
            s = build_trading_stack(port, strategy=SmaCross(fast=3, slow=8), options=options,
                                    risk_settings=RiskSettings(cool_down_minutes=0),
                                    audit_path=tmp_path / "audit.jsonl", ledger_path=tmp_path / "ledger.csv",
                                    clock=ReplayClock(sim.clock), audit_fsync="never", settle_ms=2_000)
            s.trader.warm_up(frame.iloc[i - 39:i])
            return s

        bar = Candle(ts_ms=int(stamps[i]), open=float(frame.open.iloc[i]), high=float(frame.high.iloc[i]),
                     low=float(frame.low.iloc[i]), close=float(frame.close.iloc[i]), volume=float(frame.volume.iloc[i]))
        first = stack_now()
        assert first.executor.options.entry_ttl_ms == int(1.5 * 3_600_000)  # the trader's signal-age rule
        intent = TradeIntent(symbol="BTC/USDT", side=Side.BUY, quote_qty=D("100"),
                             price=Decimal(repr(bar.close)), reason="entry signal", strategy="sma_cross",
                             bar_ts=bar.ts_ms)
        cid = _journal_unsent(first, intent)  # ... and the process dies before the request leaves
        first.close()

        again = stack_now()
        try:
            if halted:
                again.risk.kill_switch(True, reason="test: halted before the restart", operator="pytest")
            report = again.trader.reconcile()  # what run() does first: recovery re-decides the entry
            assert [d.client_order_id for d in report.discrepancies if d.kind == "unresolved_order"] == [cid]
            replayed = again.trader.on_candle(bar)  # the same bar comes again
            at_exchange = [o for o in again.exchange.client.fetch_orders("BTC/USDT") if o["clientOrderId"] == cid]
            if halted:  # denied at recovery: the replay reports that outcome and sends nothing
                assert again.journal.get(cid).status is OrderStatus.CANCELED
                assert replayed.action == "buy" and replayed.status == "CANCELED"
                assert "already journaled (CANCELED), not sent again" in replayed.reason
                assert at_exchange == [] and again.positions.position("BTC/USDT") is None
            else:  # sent at recovery: the replay finds the position, no second order; the fill is booked
                assert again.journal.get(cid).status is OrderStatus.FILLED
                assert replayed.action == "hold"
                # 100 USDT bought 0.00232 BTC; the 0.1 % fee, paid in BTC, leaves 0.00231768.
                assert len(at_exchange) == 1 and again.positions.position("BTC/USDT").qty == D("0.00231768")
                assert [f.client_order_id for f in read_ledger(tmp_path / "ledger.csv")] == [cid]
        finally:
            again.close()
