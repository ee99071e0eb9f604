"""Metrics cost: rendering ``/metrics`` per scrape with N pairs, and the bus handler's cost per event.

Every label set a pair can realise is realised first (candles, the four signal actions, submitted and
filled orders on both sides, fills and fees, two risk rules, latency observations, positions, exchange
calls on every port method with their round-trip histograms, four jobs), so the exposition is as large
as a long-running bot's. The render is ``generate_latest`` on the bot's registry (what prometheus_client's
server does per scrape, plus the process collector reading /proc); the HTTP row times a full GET on the
loopback server. The risk-state read of a bound bot (one JSON stat/read) is not included: no bot is bound.

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--pairs 1,4,20,100]``.
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from decimal import Decimal

from thunes.core.enums import Side
from thunes.core.events import (
    CandleClosed,
    DecisionAction,
    JobRan,
    OrderFilled,
    OrderSubmitted,
    PositionOpened,
    RiskDenied,
    SignalDecided,
)
from thunes.execution.ledger import LedgerRow
from thunes.ops import BotMetrics
from thunes.ops.metrics import _PORT_METHODS


def populated(n_pairs: int) -> BotMetrics:
    pairs = [(f"C{i:03d}/USDT", "5m") for i in range(n_pairs)]
    m = BotMetrics(pairs=pairs)
    for sym, tf in pairs:
        m.handle(CandleClosed(ts_ms=300_000, symbol=sym, timeframe=tf, bar_ts=0, close=1.0))
        for action in (DecisionAction.HOLD, DecisionAction.BUY, DecisionAction.SELL, DecisionAction.SKIP):
            m.handle(SignalDecided(ts_ms=1, symbol=sym, timeframe=tf, strategy="s", bar_ts=0, action=action,
                                   latency_s=0.002))
        for side in ("BUY", "SELL"):
            m.handle(OrderSubmitted(ts_ms=1, symbol=sym, side=side, client_order_id="c", bar_ts=0, strategy="s"))
            m.handle(OrderFilled(ts_ms=1, symbol=sym, side=side, client_order_id="c", qty=Decimal(1),
                                 avg_price=Decimal(1), status="FILLED"))
            m.on_ledger_row(LedgerRow(time_ms=1, symbol=sym, side=Side(side), qty=Decimal(1), price=Decimal(1),
                                      fee=Decimal("0.001"), fee_asset="USDT", order_id="1", client_order_id="c",
                                      trade_id="1", strategy="s", reason="r"))
        for rule in ("max_positions", "paused"):
            m.handle(RiskDenied(ts_ms=1, symbol=sym, side="BUY", rule=rule, reason="r"))
        m.handle(PositionOpened(ts_ms=1, symbol=sym, qty=Decimal(1), avg_price=Decimal(1)))
        m.exposure.labels(sym).set(1.0)
        m.unrealised.labels(sym).set(0.0)
    for method in _PORT_METHODS:
        m.exchange_requests.labels(method).inc()
        m.exchange_round_trip.labels(method).observe(0.01)
    for job in ("reconcile", "daily_summary", "decay_check", "backup"):
        m.handle(JobRan(ts_ms=1, job=job, outcome="ok", duration_s=0.1))
    return m


def timed(fn, n: int) -> float:  # noqa: ANN001
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default="1,4,20,100")
    args = ap.parse_args()
    print(f"{'pairs':>6} {'series':>7} {'bytes':>8} {'render ms':>10} {'HTTP GET ms':>12} {'event us':>9}")
    for n in (int(x) for x in args.pairs.split(",")):
        m = populated(n)
        body = m.render()
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        render = timed(m.render, 200 if n <= 20 else 50)
        server = m.serve(port=0)
        try:
            http = timed(lambda: urllib.request.urlopen(server.url, timeout=5).read(), 100 if n <= 20 else 30)
        finally:
            server.close()
        ev = SignalDecided(ts_ms=1, symbol=m.pairs[0][0], timeframe="5m", strategy="s", bar_ts=0,
                           action=DecisionAction.HOLD)
        per_event = timed(lambda: m.handle(ev), 20_000)
        print(f"{n:>6} {series:>7} {len(body):>8} {render * 1e3:>10.2f} {http * 1e3:>12.2f} {per_event * 1e6:>9.1f}")


if __name__ == "__main__":
    main()
