"""The trader step by step against the local exchange: orders at the next open, restart without a
second order, stale signals skipped, reconciliation flags what it cannot explain, and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.core.enums import OrderType, Side, TimeInForce
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.exchange.types import OrderRequest
from thunes.execution.ledger import read_ledger
from thunes.execution.live_data import Candle
from thunes.execution.trader import ReplayClock, TraderOptions, build_stack, load_state
from thunes.strategies.sma_cross import SmaCross

WARM = 40


@pytest.fixture()
def market():
    frame = generate_candles(200, timeframe="1h", seed=11, start_price=40_000.0, price_decimals=2)
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[WARM])).start()
    yield sim, frame
    sim.stop()


def make_stack(sim, tmp_path: Path):
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                            state_dir=tmp_path / "state", window_bars=WARM)
    return build_stack(CcxtExchange.for_local(sim), strategy=SmaCross(fast=3, slow=8), options=options,
                       risk_settings=RiskSettings(cool_down_minutes=0), audit_path=tmp_path / "audit.jsonl",
                       ledger_path=tmp_path / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never",
                       settle_ms=100)


def candle(frame, i: int) -> Candle:
    r = frame.iloc[i]
    return Candle(ts_ms=int(ts_ms(frame)[i]), open=float(r.open), high=float(r.high), low=float(r.low),
                  close=float(r.close), volume=float(r.volume))


def step(sim, stack, frame, i: int):
    """Bar i closes: the market clock reaches bar i+1's open and the trader handles candle i."""
    sim.advance_to(int(ts_ms(frame)[i + 1]))
    return stack.trader.on_candle(candle(frame, i))


def test_orders_go_out_at_the_next_open_and_fills_reach_the_ledger(market, tmp_path):
    sim, frame = market
    stack = make_stack(sim, tmp_path)
    stack.trader.warm_up(frame.iloc[:WARM])
    try:
        decisions = [step(sim, stack, frame, i) for i in range(WARM, 120)]
    finally:
        stack.close()
    orders = [d for d in decisions if d.action in ("buy", "sell")]
    assert len(orders) >= 4
    assert [d.action for d in orders][:2] == ["buy", "sell"]
    fills = read_ledger(tmp_path / "ledger.csv")
    first = orders[0]
    fill = next(f for f in fills if f.client_order_id == first.client_order_id)
    next_open_ms = first.bar_ts + 3_600_000
    assert fill.time_ms == next_open_ms  # executed at the open of the bar after the signal
    open_px = Decimal(repr(float(frame.loc[frame.index[frame.index.asi8 // 10**6 == next_open_ms][0], "open"])))
    assert abs(fill.price / open_px - 1) < Decimal("0.001")  # the open, plus half the spread
    assert {f.strategy for f in fills} == {"sma_cross"} and all(f.reason for f in fills)


def test_a_restart_resumes_after_the_last_bar_and_never_orders_twice(market, tmp_path):
    sim, frame = market
    stack = make_stack(sim, tmp_path)
    stack.trader.warm_up(frame.iloc[:WARM])
    decisions = []
    i = WARM
    while not any(d.action == "buy" for d in decisions):
        decisions.append(step(sim, stack, frame, i))
        i += 1
    buy_bar = decisions[-1].bar_ts
    stack.close()  # the process dies here: no clean stop

    again = make_stack(sim, tmp_path)
    try:
        state = load_state(again.trader.state_path)
        assert state is not None and state.last_bar_ts == buy_bar and not state.clean_stop
        again.trader.warm_up(frame.iloc[i - WARM:i])
        replayed = again.trader.on_candle(candle(frame, i - 1))
        assert replayed.action == "skip" and replayed.reason == "already processed"
        # Even if the bar were handled again, the journaled client order id stops a second order.
        outcome = again.executor.execute(_same_intent(again, frame, i - 1))
        assert outcome.duplicate
        assert again.positions.position("BTC/USDT").qty > 0
        assert step(sim, again, frame, i).bar_ts == int(ts_ms(frame)[i])
    finally:
        again.close()
    client_ids = [f.client_order_id for f in read_ledger(tmp_path / "ledger.csv") if f.side == "BUY"]
    assert len(client_ids) == len(set(client_ids))


def _same_intent(stack, frame, i):
    from thunes.execution import TradeIntent

    return TradeIntent(symbol="BTC/USDT", side=Side.BUY, quote_qty=Decimal("100"),
                       price=Decimal(repr(float(frame.close.iloc[i]))), reason="entry signal", strategy="sma_cross",
                       bar_ts=int(ts_ms(frame)[i]), is_exit=False)


def test_a_signal_older_than_half_a_bar_is_skipped_and_audited(market, tmp_path):
    sim, frame = market
    stack = make_stack(sim, tmp_path)
    stack.trader.warm_up(frame.iloc[:WARM])
    try:
        decisions = []
        for i in range(WARM, 150):
            sim.advance_to(int(ts_ms(frame)[i + 1]) + 2_400_000)  # 40 minutes late
            decisions.append(stack.trader.on_candle(candle(frame, i)))
    finally:
        stack.close()
    skipped = [d for d in decisions if d.action == "skip"]
    assert skipped and not [d for d in decisions if d.action in ("buy", "sell")]
    assert "0.67 bars old" in skipped[0].reason
    assert '"trader_skip"' in (tmp_path / "audit.jsonl").read_text()


def test_reconciliation_flags_foreign_orders_and_unexplained_balances(market, tmp_path):
    sim, frame = market
    stack = make_stack(sim, tmp_path)
    try:
        assert stack.reconciler().ok  # first run records the baseline (the account's own 0.5 BTC)
        other = CcxtExchange.for_local(sim)
        price = (sim.last_price("BTC/USDT") * Decimal("0.9")).quantize(Decimal("0.01"))
        other.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT,
                                       client_order_id="manual-1", qty=Decimal("0.001"), price=price,
                                       time_in_force=TimeInForce.GTC))
        sim.set_balance("BTC", Decimal("0.75"))
        report = stack.reconciler()
    finally:
        stack.close()
    kinds = {d.kind: d for d in report.flagged}
    assert set(kinds) == {"untracked_order", "position"}
    assert kinds["untracked_order"].client_order_id == "manual-1"
    assert "difference 0.25" in kinds["position"].detail
    assert not report.ok


def test_sigterm_stops_paper_trading_cleanly(tmp_path):
    env = dict(os.environ, THUNES_TRADER__STATE_DIR=str(tmp_path / "state"), COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "thunes.cli", "paper", "--timeframe", "5m", "--replay-speed", "3000",
         "--duration", "60", "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state_file = tmp_path / "run" / "state" / "trader_sma_cross_BTCUSDT_5m.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = load_state(state_file) if state_file.exists() else None
        if state is not None and state.bars_processed >= 5:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "SIGTERM: stopping after the current candle" in out
    state = load_state(state_file)
    assert state.clean_stop and state.bars_processed >= 5
    assert "stopped: signal SIGTERM" in out
