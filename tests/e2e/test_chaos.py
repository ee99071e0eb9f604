"""Chaos: the local exchange misbehaves during a replay and the trader still ends up right.

Faults, injected between bars: websocket drops, a serverShutdown, 5xx answers, 429 storms, slow answers,
a stalled REST backfill, malformed frames and order responses lost after the order was accepted. Afterwards: the trader processed
every bar, the candle store holds every replayed candle (no hole), every intent reached the exchange
exactly once (no duplicate order), and the tracked position equals what the exchange holds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal

import numpy as np

from thunes.core.candles import ts_ms
from thunes.data.samples import load_sample_candles
from thunes.data.store import open_store
from thunes.execution.audit import verify_audit
from thunes.execution.db import Database
from thunes.execution.journal import OrderJournal
from thunes.live.parity import ReplaySpec, paper_replay
from thunes.strategies.sma_cross import SmaCross

FAULTS = {
    3: ("drop_ws", {}),
    7: ("set", {"http_error": 502, "http_error_count": 2}),
    11: ("set", {"storm_status": 429, "storm_count": 2, "storm_retry_after": 0}),
    15: ("server_shutdown", {}),
    19: ("set", {"delay_ms": 150}),
    23: ("set", {"malformed_frames": 3}),
}


def test_the_trader_survives_a_bad_day_at_the_exchange(tmp_path):
    candles = load_sample_candles("BTC/USDT", "1h", limit=400).frame.iloc[-300:]
    stamps = ts_ms(candles)
    strategy = SmaCross(fast=3, slow=8)
    injected: list[str] = []
    lost = {"armed": 0, "consumed": 0}

    step_started: dict[int, float] = {}

    def chaos(sim, i: int) -> None:
        step_started[i] = time.monotonic()
        if lost["armed"] and sim.faults.state.lose_order_responses == 0:
            lost["consumed"] += 1  # an accepted order's answer was lost since the last bar
        lost["armed"] = 0
        if i % 4 == 1:
            lost["armed"] = 1
            # Every 4th bar the order answer (if an order goes out) is lost after the exchange accepted it.
            sim.faults.set(lose_order_responses=1, lose_mode="504" if i % 8 == 1 else "drop")
        if i in FAULTS:
            sim.faults.clear()
            lost["armed"] = 0
            name, kwargs = FAULTS[i]
            getattr(sim.faults, name)(**kwargs)
            injected.append(name if not kwargs else f"{name}{sorted(kwargs)}")
        if i == 25:
            # A stall: the stream drops and the REST backfill that follows hangs for 1.5 s.
            sim.faults.clear()
            lost["armed"] = 0
            sim.faults.set(stall=True, paths=["/api/v3/klines"])
            sim.faults.drop_ws()
            threading.Timer(1.5, sim.faults.clear).start()
            injected.append("stall")
        if i in (21, 27):
            sim.faults.clear()
            lost["armed"] = 0

    store_url = f"sqlite:///{tmp_path / 'candles.sqlite'}"
    spec = ReplaySpec(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"), start_bar=100, bars=120)
    run = paper_replay(candles, strategy, spec, workdir=tmp_path / "run", before_step=chaos,
                       sim_options={"ban_after_429s": 1000}, store_url=store_url)

    assert len(injected) == len(FAULTS) + 1
    assert lost["consumed"] >= 2, lost
    assert run.bars == 120
    assert step_started[26] - step_started[25] >= 1.4  # bar 25 waited for the stalled backfill
    assert run.feed_stats.reconnects >= 2
    # No missed candle: the store holds every closed candle of the replay.
    with open_store(store_url) as store:
        stored = ts_ms(store.load("BTC/USDT", "1h"))
    expected = stamps[100:220]
    assert np.isin(expected, stored).all(), f"missing {sorted(set(expected) - set(stored))[:5]}"
    # No duplicate order: one exchange order per journaled intent, each client order id used once.
    journal = OrderJournal(Database.connect(f"sqlite:///{tmp_path / 'run' / 'state' / 'execution.sqlite'}"))
    entries = journal.entries()
    filled = [e for e in entries if e.filled_qty > 0]
    assert len(filled) >= 6
    assert Counter(f.client_order_id for f in run.fills).most_common(1)[0][1] <= 2  # at most partial fills
    by_order = {f.order_id: f.client_order_id for f in run.fills}
    assert len(by_order) == len(set(by_order.values())) == len(filled)
    # Positions match the exchange, and the audit chain is intact.
    assert run.positions_match, run.reconcile
    assert verify_audit(tmp_path / "run" / "audit.jsonl").ok
