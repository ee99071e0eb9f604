"""Trader latency: candle close -> order handed to the exchange, in-process, network excluded.

The real trader (trailing window, strategy signals, risk check with its audit record, filters, the
write-ahead journal commit, the order-intent audit record) runs against the local exchange; the clock
starts when the closed candle is handed to ``Trader.on_candle`` and stops when the order reaches the
exchange port (``RecordingPort.place_order``), before any byte is sent. A strategy that flips every bar
makes every candle an order. Five durability settings are measured: everything durable (audit
``fsync=always``, journal ``synchronous=FULL``; the default: the risk decision and order intent records go
into the audit outbox in the journal's commit, one fsync before the send), the same without the outbox (the
audit file fsynced while the journal commits: two fsyncs at the same time, ``ExecutorOptions(audit_outbox=
False)``), those two fsyncs one after the other (``overlap_fsyncs=False``), audit ``fsync=batch`` with the
journal still durable, and no fsync at all. The table counts the audit-file fsyncs seen at the send. The garbage-collector
passes that fell inside the measured spans are listed per setting, and one full (generation-2) pass is
timed with the heap as it is and frozen (``Trader.run`` freezes it around its loop:
:func:`~thunes.live.trader.frozen_heap`). Each total is split at the moment the trader hands its intent to the executor: the
trader's share (window, signals, position, decision) and the executor's (risk check and its audit record,
filters, journal commits, the order-intent audit record).

Run: ``.venv/bin/python benchmarks/bench_trader_latency.py [--bars 300]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.core.timeframes import index_ms
from thunes.data.samples import load_sample_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange
from thunes.execution.orders import ExecutorOptions
from thunes.live.assembly import ReplayClock, build_stack
from thunes.live.feed import Candle
from thunes.live.trader import TraderOptions, frozen_heap
from thunes.strategies.base import Signals, Strategy
from thunes.strategies.sma_cross import SmaCross


class Flip(Strategy):
    """Enter on even bars, exit on odd ones: an order on every candle."""

    name = "flip"

    @property
    def warmup(self) -> int:
        return 60

    def signals(self, candles: pd.DataFrame) -> Signals:
        # A realistic amount of work per bar (two rolling means over the window), then the flip.
        fast, slow = candles.close.rolling(10).mean(), candles.close.rolling(50).mean()
        even = pd.Series((index_ms(candles.index) // 3_600_000) % 2 == 0, index=candles.index)
        return Signals(entries=even & fast.notna() & slow.notna(), exits=~even)


class StampedExecutor:
    """The executor, passed through, noting when the trader hands it an intent."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.at: list[float] = []

    def execute(self, intent: object) -> object:
        self.at.append(time.perf_counter())
        return self.inner.execute(intent)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class GcPauses:
    """Garbage-collector passes, as (start, end) perf_counter pairs, while installed."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.spans.append((self._start, time.perf_counter()))

    def inside(self, windows: list[tuple[float, float]]) -> list[float]:
        """Durations (ms) of the passes that ran inside one of ``windows``."""
        starts = np.array([w[0] for w in windows])
        out = []
        for a, b in self.spans:
            i = np.searchsorted(starts, a, side="right") - 1
            if i >= 0 and a <= windows[i][1]:
                out.append((b - a) * 1000)
        return out


def measure(frame: pd.DataFrame, bars: int, audit_fsync: str, durable: bool = True, overlap: bool = True,
            freeze: bool = True, outbox: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, list[float]]:
    """Milliseconds per order: (candle -> order sent, candle -> executor, executor -> order sent), the mean
    number of audit fsyncs between the candle and the send, and the GC passes (ms) inside those spans."""
    warm = 300
    accounts = (AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                            balances={"USDT": "1000000", "BTC": "0"}),)
    with tempfile.TemporaryDirectory() as tmp, LocalExchange(
            candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[warm]), accounts=accounts,
            orders_per_10s=1_000_000, weight_limit=10_000_000) as sim:
        options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                                state_dir=Path(tmp) / "state", window_bars=warm)
        stack = build_stack(CcxtExchange.for_local(sim), strategy=Flip(), options=options,
                            risk_settings=RiskSettings(cool_down_minutes=0, max_daily_loss=Decimal("1000000")),
                            audit_path=Path(tmp) / "audit.jsonl", ledger_path=Path(tmp) / "ledger.csv",
                            clock=ReplayClock(sim.clock), audit_fsync=audit_fsync, durable=durable)
        stack.executor.options = ExecutorOptions(settle_ms=6_000, overlap_fsyncs=overlap, audit_outbox=outbox)
        stack.trader.warm_up(frame.iloc[:warm])
        stamped = StampedExecutor(stack.executor)
        port, fsyncs_at_send = stack.exchange, []
        place = port.place_order

        def counting_place(request: object) -> object:
            fsyncs_at_send.append(stack.audit.fsyncs)
            return place(request)

        port.place_order = counting_place  # type: ignore[method-assign]
        stack.trader.executor = stamped  # type: ignore[assignment]
        stamps = ts_ms(frame)
        received, handed, sent = [], [], []
        pauses = GcPauses()
        gc.callbacks.append(pauses)
        with frozen_heap() if freeze else contextlib.nullcontext():  # as Trader.run does around its loop
            try:
                for i in range(warm, warm + bars):
                    sim.advance_to(int(stamps[i + 1]))
                    r = frame.iloc[i]
                    c = Candle(ts_ms=int(stamps[i]), open=float(r.open), high=float(r.high), low=float(r.low),
                               close=float(r.close), volume=float(r.volume))
                    before = stack.audit.fsyncs
                    t0 = time.perf_counter()
                    decision = stack.trader.on_candle(c, received_at=t0)
                    if fsyncs_at_send:
                        fsyncs_at_send[-1] -= before
                    if decision.latency_s is not None:
                        received.append(t0)
                        handed.append(stamped.at[-1])
                        sent.append(t0 + decision.latency_s)
            finally:
                gc.callbacks.remove(pauses)
                stack.close()
        r0, h, s = np.array(received), np.array(handed), np.array(sent)
        return ((s - r0) * 1000, (h - r0) * 1000, (s - h) * 1000, float(np.mean(fsyncs_at_send)),
                pauses.inside(list(zip(received, sent))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=300)
    args = parser.parse_args()
    frame = load_sample_candles("BTC/USDT", "1h", limit=args.bars + 400).frame
    print(f"{'durability':46s} {'orders':>7s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    cases = (("audit always + journal FULL, outbox (default)", "always", True, True, True, True),
             ("  same, no outbox: 2 fsyncs at the same time", "always", True, True, True, False),
             ("  same, no outbox: 2 fsyncs one after other", "always", True, False, True, False),
             ("audit fsync=batch, journal FULL", "batch", True, True, True, True),
             ("no fsync (audit never, journal NORMAL)", "never", False, True, True, True))
    audit_fsyncs, gc_notes = {}, []
    for label, fsync, durable, overlap, freeze, outbox in cases:
        total, trader_part, executor_part, audit_fsyncs[label], pauses = measure(
            frame, args.bars, fsync, durable, overlap, freeze, outbox)
        rows = ((label, total), ("  trader: candle -> intent", trader_part),
                ("  executor: intent -> order sent", executor_part))
        for name, lat in rows if not label.startswith("  ") else rows[:1]:
            p50, p90, p99 = np.percentile(lat, [50, 90, 99])
            print(f"{name:46s} {len(lat):7d} {p50:8.2f} {p90:8.2f} {p99:8.2f} {lat.max():8.2f}")
        gc_notes.append(f"  {label.strip()}: {len(pauses)} GC passes inside the measured spans"
                        + (f", {sum(pauses):.1f} ms in all, longest {max(pauses):.1f} ms" if pauses else ""))
    window = frame.iloc[:300]
    sig = []
    for strategy in (Flip(), SmaCross()):
        strategy.signals(window).arrays(window.index)  # first call: compiled kernels load from the cache
        for _ in range(200):
            t0 = time.perf_counter()
            strategy.signals(window).arrays(window.index)
            sig.append((type(strategy).__name__, time.perf_counter() - t0))
    for name in ("Flip", "SmaCross"):
        lat = np.array([t for n, t in sig if n == name]) * 1000
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        print(f"{'  of which ' + name + '.signals(300 bars)':42s} {len(lat):7d} {p50:8.2f} {p90:8.2f} {p99:8.2f} "
              f"{lat.max():8.2f}")
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile() as fh:
        for _ in range(50):
            fh.write(b"x")
            fh.flush()
            os.fsync(fh.fileno())
    print(f"one fsync on this disk: {(time.perf_counter() - t0) / 50 * 1000:.2f} ms; before each send the durable "
          f"path does 1 journal commit + {audit_fsyncs[cases[0][0]]:.2f} audit-file fsyncs (outbox), "
          f"{audit_fsyncs[cases[1][0]]:.2f} without the outbox")
    t0 = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - t0
    with frozen_heap():
        t0 = time.perf_counter()
        gc.collect()
        frozen = time.perf_counter() - t0
    print(f"one full GC pass in this process: {full * 1000:.1f} ms; with the heap frozen: {frozen * 1000:.2f} ms")
    print("garbage collector on the candle -> order path:")
    print("\n".join(gc_notes))
    print("target: p99 < 5 ms (candle close -> order sent, incl. risk check and audit write)")


if __name__ == "__main__":
    main()
