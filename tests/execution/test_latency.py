"""Latency: what keeps the candle close -> order path short, each one observable.

The fsync count before the send is specified in ``test_orders.py`` (one journal commit, one audit
fsync, overlapped); here: the garbage collector's full passes are kept off the trading loop.
"""

from __future__ import annotations

import gc
import time
from decimal import Decimal

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.live.assembly import ReplayClock, build_stack
from thunes.live.trader import TraderOptions, frozen_heap
from thunes.strategies.sma_cross import SmaCross


def test_frozen_heap_freezes_the_live_objects_once_and_hands_them_back():
    # Arrange
    assert gc.get_freeze_count() == 0
    # Act / Assert: the objects alive at entry leave the collector's generations, nested blocks freeze once
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 1_000
        # (the count may only shrink: a frozen object that another thread releases leaves the permanent set)
        with frozen_heap():
            assert frozen // 2 < gc.get_freeze_count() <= frozen  # not frozen a second time
        assert frozen // 2 < gc.get_freeze_count() <= frozen  # the inner block did not hand them back early
    assert gc.get_freeze_count() == 0


class _Probe:
    """A feed with nothing to say that notes whether the heap is frozen while the loop waits on it."""

    running = False

    def __init__(self) -> None:
        self.freeze_counts: list[int] = []

    def start(self, *, last_ts=None):
        self.running = True
        return self

    def get(self, timeout=None):
        self.freeze_counts.append(gc.get_freeze_count())
        time.sleep(timeout or 0)
        return None

    def stop(self, timeout=5.0):
        self.running = False


def test_the_trading_loop_runs_with_a_frozen_heap_and_unfreezes_at_stop(tmp_path):
    # Arrange
    frame = generate_candles(120, timeframe="1h", seed=3, start_price=40_000.0, price_decimals=2)
    with LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[40])) as sim:
        options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                                state_dir=tmp_path / "state", window_bars=40, poll_s=0.02)
        stack = build_stack(CcxtExchange.for_local(sim), strategy=SmaCross(fast=3, slow=8), options=options,
                            risk_settings=RiskSettings(), audit_path=tmp_path / "audit.jsonl",
                            ledger_path=tmp_path / "ledger.csv", clock=ReplayClock(sim.clock), audit_fsync="never")
        probe = _Probe()
        # Act
        try:
            report = stack.trader.run(probe, deadline_s=0.3)
        finally:
            stack.close()
    # Assert: frozen on every wait of the loop, handed back once it stopped
    assert report.stop_reason == "duration of 0.3s reached"
    assert probe.freeze_counts and min(probe.freeze_counts) > 1_000
    assert gc.get_freeze_count() == 0
