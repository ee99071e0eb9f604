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

import pandas as pd
import pytest

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.core.enums import OrderType, Side, TimeInForce
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.exchange.types import OrderRequest
from thunes.execution.ledger import read_ledger
from thunes.live.assembly import ReplayClock, build_stack
from thunes.live.feed import Candle
from thunes.live.state import load_state
from thunes.live.trader import TraderOptions
from thunes.strategies.base import Signals, Strategy
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
                       ledger_path=tmp_path / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never")


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
    # SmaCross(3, 8) on the synthetic candles (seed 11) crosses five times each way in bars 40..119.
    assert [d.action for d in orders] == ["buy", "sell"] * 5
    fills = read_ledger(tmp_path / "ledger.csv")
    first = orders[0]
    fill = next(f for f in fills if f.client_order_id == first.client_order_id)
    next_open_ms = first.bar_ts + 3_600_000
    assert fill.time_ms == next_open_ms  # executed at the open of the bar after the signal
    open_px = Decimal(repr(float(frame.loc[frame.index[ts_ms(frame) == next_open_ms][0], "open"])))
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
        again.trader.warm_up(frame.iloc[i - 1 - WARM:i - 1])  # the history at restart ends one bar short
        replayed = again.trader.on_candle(candle(frame, i - 1))
        assert replayed.action == "skip" and replayed.reason == "already processed"
        assert again.trader.last_ts == buy_bar  # no order, but the window has it for the next signal
        # Even if the bar were handled again, the journaled client order id stops a second order.
        outcome = again.executor.execute(_same_intent(again, frame, i - 1))
        assert outcome.duplicate
        # 100 USDT bought 0.00232 BTC; the 0.1 % fee, paid in BTC, leaves 0.00231768 held.
        assert again.positions.position("BTC/USDT").qty == Decimal("0.00231768")
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
    # Every signal of bars 40..149 arrives 40 minutes late: all 8 are skipped, none is traded.
    assert len(skipped) == 8 and not [d for d in decisions if d.action in ("buy", "sell")]
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


def test_paper_prints_its_trades_and_sigterm_stops_it_cleanly(tmp_path):
    env = dict(os.environ, THUNES_TRADER__STATE_DIR=str(tmp_path / "state"), COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "thunes.cli", "paper", "--sample", "--timeframe", "5m", "--replay-speed", "3000",
         "--param", "fast=3", "--param", "slow=8", "--duration", "60", "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state_file = tmp_path / "run" / "state" / "trader_sma_cross_BTCUSDT_5m.json"
    ledger = tmp_path / "run" / "ledger.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until a round trip is in the ledger
        if ledger.exists() and {f.side for f in read_ledger(ledger)} == {"BUY", "SELL"}:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "SIGTERM: stopping after the current candle" in out
    state = load_state(state_file)
    # A bound, not a count: SIGTERM lands on wall-clock time, after a round trip but maybe after more.
    assert state.clean_stop and state.orders_sent >= 2
    fills = read_ledger(ledger)
    assert {f.side for f in fills} == {"BUY", "SELL"}
    assert "BUY  filled" in out and "SELL filled" in out  # each order printed as it fills
    assert "round trips in" in out and f"fills {len(fills)}," in out  # the table and the counts at the end
    assert "stopped: signal SIGTERM" in out


def first_entry_bar(frame) -> int:
    """Index of the first bar after the warm-up whose close gives SmaCross(3, 8) an entry signal."""
    entries = SmaCross(fast=3, slow=8).signals(frame).arrays(frame.index).entries
    return next(i for i in range(WARM, len(frame) - 1) if entries[i])


def test_an_entry_denied_by_risk_or_refused_by_the_filters_never_reaches_the_exchange(market, tmp_path):
    sim, frame = market
    i = first_entry_bar(frame)
    stack = make_stack(sim, tmp_path)
    stack.trader.warm_up(frame.iloc[i - WARM:i])
    try:
        stack.risk.kill_switch(True, reason="test: stop entries", operator="pytest")
        denied = step(sim, stack, frame, i)
    finally:
        stack.close()
    small = tmp_path / "small"
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("1"),
                            state_dir=small / "state", window_bars=WARM)
    tiny = build_stack(CcxtExchange.for_local(sim), strategy=SmaCross(fast=3, slow=8), options=options,
                       risk_settings=RiskSettings(cool_down_minutes=0), audit_path=small / "audit.jsonl",
                       ledger_path=small / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never")
    tiny.trader.warm_up(frame.iloc[i - WARM:i])
    try:
        refused = tiny.trader.on_candle(candle(frame, i))
        journaled = tiny.journal.entries()
    finally:
        tiny.close()

    assert denied.action == "buy" and denied.filled_qty == 0
    assert "denied (kill_switch)" in denied.reason
    assert refused.action == "buy" and refused.filled_qty == 0 and "NOTIONAL" in refused.reason
    assert journaled == []  # refused before the write-ahead journal: nothing was ever sent
    assert stack.exchange.orders_sent == 0 and tiny.exchange.orders_sent == 0
    assert read_ledger(tmp_path / "ledger.csv") == [] and read_ledger(small / "ledger.csv") == []
    audit = (tmp_path / "audit.jsonl").read_text() + (small / "audit.jsonl").read_text()
    assert '"kill_switch"' in audit and '"order_refused"' in audit


def test_the_trader_marks_its_position_at_each_close_so_the_kill_switch_counts_unrealised_losses(market, tmp_path):
    """The risk manager's daily loss is realised + unrealised PnL; the trader marks the open position at
    every candle close, as the backtest does, so a 10 % drop on a 100 USDT position trips a 5 USDT limit."""
    import dataclasses

    sim, frame = market
    i = first_entry_bar(frame)
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                            state_dir=tmp_path / "state", window_bars=WARM)
    stack = build_stack(CcxtExchange.for_local(sim), strategy=SmaCross(fast=3, slow=8), options=options,
                        risk_settings=RiskSettings(cool_down_minutes=0, max_daily_loss=Decimal("5")),
                        audit_path=tmp_path / "audit.jsonl", ledger_path=tmp_path / "ledger.csv",
                        clock=ReplayClock(sim.clock), audit_fsync="never")
    stack.trader.warm_up(frame.iloc[i - WARM:i])
    try:
        bought = step(sim, stack, frame, i)
        before = stack.risk.state
        sim.advance_to(int(ts_ms(frame)[i + 2]))
        drop = candle(frame, i + 1)
        stack.trader.on_candle(dataclasses.replace(drop, close=float(bought.avg_price) * 0.9,
                                                   low=float(bought.avg_price) * 0.9))
        after = stack.risk.state
    finally:
        stack.close()
    assert bought.action == "buy" and bought.filled_qty == Decimal("0.00232") and not before.kill_switch
    assert after.unrealised < Decimal("-5") and after.kill_switch


def test_a_dust_write_off_leaves_no_stale_mark_that_prices_the_next_entry(market, tmp_path):
    """After an exit the executor writes the unsellable remainder off the risk book; the trader's own
    write-off must not book a second SELL on no position: that would leave a book whose stale mark prices
    the next entry, a phantom loss at its fill that can trip the daily-loss kill switch. So right after
    every entry the unrealised PnL is zero (to rounding)."""
    sim, frame = market
    stack = make_stack(sim, tmp_path)
    stack.trader.warm_up(frame.iloc[:WARM])
    after_buys = []
    try:
        for i in range(WARM, 160):
            d = step(sim, stack, frame, i)
            if d.action == "buy" and d.filled_qty > 0:
                after_buys.append(stack.risk.state.unrealised)
    finally:
        stack.close()
    assert len(after_buys) == 9  # every entry of bars 40..159 on the candles of seed 11
    assert all(abs(u) < Decimal("0.001") for u in after_buys), after_buys


class Crash(BaseException):
    """The process dies here (raised past every ``except Exception``)."""


def test_a_crash_inside_a_dust_write_off_loses_the_dust_from_neither_book(market, tmp_path):
    """Writing the dust off the position and counting it as outside holdings is one commit: a crash between
    the two must leave both as they were, the restarted trader writes it off once, and the account's balance
    still equals baseline + position (reconciliation flags nothing)."""
    from thunes.execution.reconcile import Baseline

    sim, frame = market
    stack = make_stack(sim, tmp_path)
    stack.trader.warm_up(frame.iloc[:WARM])
    assert stack.trader.reconcile().ok  # the first reconciliation records the baseline
    sink, crashed = stack.trader.dust_sink, []

    def crash_after_counting(symbol, qty):
        sink(symbol, qty)
        crashed.append(qty)
        raise Crash

    stack.trader.dust_sink = crash_after_counting
    i = WARM
    with pytest.raises(Crash):
        while i < 160:
            step(sim, stack, frame, i)
            i += 1
    baseline = Baseline(stack.db, "BTCUSDT").get("BTC")
    dust = stack.positions.position("BTC/USDT").qty
    stack.close()
    assert crashed == [dust] and dust > 0  # the write-off rolled back: the position still holds the dust

    again = make_stack(sim, tmp_path)
    try:
        again.trader.warm_up(frame.iloc[:i + 1])
        step(sim, again, frame, i + 1)  # the next candle sees the dust and writes it off, once
        assert again.positions.position("BTC/USDT").qty == 0
        assert Baseline(again.db, "BTCUSDT").get("BTC") == baseline + dust
        report = again.trader.reconcile()
        assert report.ok and not [d for d in report.discrepancies if d.kind == "position"], report
    finally:
        again.close()


def test_a_baseline_file_of_an_earlier_version_is_imported_into_the_database_once(market, tmp_path):
    from thunes.execution.reconcile import Baseline

    sim, _frame = market
    state = tmp_path / "state"
    state.mkdir()
    (state / "baseline_BTCUSDT.json").write_text('{"BTC": "0.5"}')
    stack = make_stack(sim, tmp_path)
    try:
        assert Baseline(stack.db, "BTCUSDT").values == {"BTC": Decimal("0.5")}
        assert Baseline(stack.db).values == {}  # the bot's scope is another baseline
    finally:
        stack.close()
    assert not (state / "baseline_BTCUSDT.json").exists()
    assert (state / "baseline_BTCUSDT.json.imported").read_text() == '{"BTC": "0.5"}'


def test_an_order_whose_answer_was_lost_before_a_crash_is_adopted_by_client_order_id_at_restart(market, tmp_path):
    from thunes.execution import TradeIntent, intent_client_order_id, prepare_market_order

    sim, frame = market
    stamps = ts_ms(frame)
    stack = make_stack(sim, tmp_path)
    sim.advance_to(int(stamps[WARM + 1]))
    intent = TradeIntent(symbol="BTC/USDT", side=Side.BUY, quote_qty=Decimal("100"),
                         price=sim.last_price("BTC/USDT"), reason="entry signal", strategy="sma_cross",
                         bar_ts=int(stamps[WARM]), is_exit=False)
    cid = intent_client_order_id(intent)
    prepared = prepare_market_order(stack.markets["BTC/USDT"], Side.BUY, quote_qty=Decimal("100"),
                                    ref_price=intent.price)
    stack.journal.record_pending(cid, prepared, strategy="sma_cross", reason="entry signal", bar_ts=intent.bar_ts)
    stack.journal.mark_sent(cid)
    # The request reaches the exchange and fills; the answer never comes back and the process dies.
    CcxtExchange.for_local(sim).place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET,
                                                         client_order_id=cid, qty=prepared.qty))
    stack.close()

    again = make_stack(sim, tmp_path)
    try:
        report = again.trader.reconcile()  # what Trader.run does first
        position = again.positions.position("BTC/USDT").qty
        entry = again.journal.get(cid)
    finally:
        again.close()

    assert [(d.kind, d.client_order_id, d.action) for d in report.discrepancies] == [
        ("unresolved_order", cid, "adopted")]
    assert report.ok
    assert str(entry.status) == "FILLED" and entry.filled_qty == prepared.qty
    assert entry.fee == prepared.qty / 1000 and position == prepared.qty - entry.fee  # 0.1 % fee paid in BTC
    fills = read_ledger(tmp_path / "ledger.csv")
    assert [(f.client_order_id, f.side, f.qty) for f in fills] == [(cid, "BUY", prepared.qty)]
    assert fills[0].reason == "entry signal (adopted at reconciliation: unresolved_order)"


class ListFeed:
    """A feed with nothing to say: the trader's loop waits on it while reconciliations come due."""

    running = False

    def start(self, *, last_ts=None):
        self.running = True
        return self

    def get(self, timeout=None):
        time.sleep(timeout or 0)
        return None

    def stop(self, timeout=5.0):
        self.running = False


def test_the_loop_reconciles_at_start_every_interval_and_at_stop(market, tmp_path):
    sim, frame = market
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                            state_dir=tmp_path / "state", window_bars=WARM, reconcile_every_s=0.05, poll_s=0.02)
    stack = build_stack(CcxtExchange.for_local(sim), strategy=SmaCross(fast=3, slow=8), options=options,
                        risk_settings=RiskSettings(), audit_path=tmp_path / "audit.jsonl",
                        ledger_path=tmp_path / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never")
    try:
        stack.reconciler()  # records the account's own 0.5 BTC as outside holdings
        sim.set_balance("BTC", Decimal("0.6"))  # 0.1 BTC appears from nowhere while the trader runs
        report = stack.trader.run(ListFeed(), deadline_s=1.0)
    finally:
        stack.close()
    # Start + at least two periodic + stop. A bound: how many 0.05 s intervals fit in the 1 s run depends
    # on thread scheduling (up to about 20).
    assert report.reconciles >= 4
    assert report.discrepancies >= report.reconciles  # flagged every time, never silently adopted
    assert report.stop_reason == "duration of 1s reached"
    assert load_state(stack.trader.state_path).clean_stop
    assert "difference 0.1" in (tmp_path / "audit.jsonl").read_text()


def test_ctrl_c_stops_the_loop_between_candles_and_flushes_the_state(market, tmp_path):
    import threading

    from thunes.cli.trader import _stop_on_signals

    sim, frame = market
    stack = make_stack(sim, tmp_path)
    previous = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT))
    try:
        with _stop_on_signals(stack.trader):
            timer.start()
            report = stack.trader.run(ListFeed(), deadline_s=30)
    finally:
        timer.cancel()
        stack.close()
    assert report.stop_reason == "signal SIGINT"  # not the 30 s deadline, and no KeyboardInterrupt
    assert load_state(stack.trader.state_path).clean_stop
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is removed again
    assert '"trader_stopped"' in (tmp_path / "audit.jsonl").read_text()


def test_the_window_is_the_canonical_frame_of_the_last_candles_and_a_strategy_cannot_alter_it(tmp_path):
    from thunes.core.candles import validate_candles
    from thunes.live.trader import Trader

    frame = generate_candles(60, timeframe="1h", seed=2)
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                            state_dir=tmp_path, window_bars=20)
    trader = Trader(exchange=None, strategy=SmaCross(fast=3, slow=8), options=options, executor=None,
                    positions=None, ledger=None)
    trader.warm_up(frame.iloc[:50])
    trader._append(candle(frame, 50))

    window = trader.window()
    pd.testing.assert_frame_equal(window, frame.iloc[31:51], check_freq=False)
    validate_candles(window)
    window.loc[window.index[-1], "close"] = -1.0  # a careless strategy
    assert trader.window()["close"].iloc[-1] == frame["close"].iloc[50]


def test_an_entry_whose_window_spans_a_gap_is_skipped_as_in_the_backtest(tmp_path):
    # Arrange: the hand-made series of tests/backtest/test_gap_rule.py (3 h hole before bar 10): SMA
    # 2/5 crosses up on bar 11, its 6-bar window spanning the hole, and on bar 18, clear of it.
    import numpy as np

    from thunes.backtest import BacktestOptions, run_backtest
    from thunes.core.candles import candles_frame

    closes = np.array([110, 108, 106, 104, 102, 100, 100, 100, 100, 100,
                       100, 110, 110, 85, 85, 85, 85, 85, 95, 95, 95, 95, 95], dtype=float)
    hours = np.array(list(range(10)) + [h + 3 for h in range(10, 23)])
    frame = candles_frame(1_704_067_200_000 + hours * 3_600_000, closes, closes * 1.001, closes * 0.999,
                          closes, np.full(len(closes), 10.0))
    stamps = ts_ms(frame)
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(stamps[6])).start()
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                            state_dir=tmp_path / "state", window_bars=WARM)
    cross = SmaCross(fast=2, slow=5)
    stack = build_stack(CcxtExchange.for_local(sim), strategy=cross, options=options,
                        risk_settings=RiskSettings(cool_down_minutes=0), audit_path=tmp_path / "audit.jsonl",
                        ledger_path=tmp_path / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never")
    stack.trader.warm_up(frame.iloc[:6])
    # Act
    try:
        decisions = {int(stamps[i]): step(sim, stack, frame, i) for i in range(6, len(frame) - 1)}
    finally:
        stack.close()
        sim.stop()
    # Assert: the bar-11 entry is skipped for the gap (audited), the bar-18 entry is bought; the
    # backtest refuses and takes the same signals.
    refused = decisions[int(stamps[11])]
    assert refused.action == "skip"
    assert refused.reason == "entry signal refused: its 6-bar window spans a gap in the candles (3 missing)"
    assert '"trader_skip"' in (tmp_path / "audit.jsonl").read_text()
    assert [ts for ts, d in decisions.items() if d.action == "buy"] == [int(stamps[18])]
    backtest = run_backtest(frame, cross, options=BacktestOptions(risk=None))
    assert backtest.trades.entry_ts.tolist() == [frame.index[19]] and backtest.stats["refused_gap"] == 1


class SteppingFeed:
    """Hands out the given candles in order, moving the market clock to each one's close first."""

    running = False

    def __init__(self, sim, items):
        self.sim, self.items = sim, list(items)

    def start(self, *, last_ts=None):
        self.running = True
        return self

    def get(self, timeout=None):
        if not self.items:
            time.sleep(timeout or 0)
            return None
        c = self.items.pop(0)
        self.sim.advance_to(c.ts_ms + 3_600_000)
        return c

    def stop(self, timeout=5.0):
        self.running = False


class BuyAndHold(Strategy):
    """Enters on every bar, never exits: a position that stays open, whatever the price does."""

    name = "buy_and_hold"

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, candles: pd.DataFrame) -> Signals:
        return Signals(entries=pd.Series(True, index=candles.index), exits=pd.Series(False, index=candles.index))


def test_the_loop_marks_the_open_position_so_an_open_loss_trips_the_daily_kill_switch(market, tmp_path):
    """The daily loss counts what open positions have lost: a candle closing 10 % under the entry of a
    100-quote position loses 10, past a 5-quote daily limit, and the switch trips with nothing sold yet."""
    from dataclasses import replace

    sim, frame = market
    i = WARM
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                            state_dir=tmp_path / "state", window_bars=WARM)
    stack = build_stack(CcxtExchange.for_local(sim), strategy=BuyAndHold(), options=options,
                        risk_settings=RiskSettings(cool_down_minutes=0, max_daily_loss=Decimal("5")),
                        audit_path=tmp_path / "audit.jsonl", ledger_path=tmp_path / "ledger.csv",
                        clock=ReplayClock(sim.clock), audit_fsync="never")
    stack.trader.warm_up(frame.iloc[i - WARM:i])
    crash = replace(candle(frame, i + 1), close=candle(frame, i).close * 0.9)
    try:
        report = stack.trader.run(SteppingFeed(sim, [candle(frame, i), crash]), max_bars=2, deadline_s=30)
        snap = stack.risk.state
        held = stack.positions.position("BTC/USDT").qty
    finally:
        stack.close()
    assert report.orders == 1 and held == Decimal("0.00231768")  # bought (less the fee in BTC), nothing sold
    assert snap.kill_switch and snap.daily_pnl < Decimal("-5"), snap
    assert str(snap.mode) == "HALTED"
