"""Execution safety core: latency of a risk check, an audit append (per fsync policy), an audit group
of two records sharing one fsync (the order path's risk decision + order intent), a filter preparation,
a write-ahead journal round as the executor does it (SENT in one commit -> FILLED + position delta) and the
older PENDING -> SENT -> FILLED form on SQLite, and the whole order path through the executor to the local
exchange.

Run: ``.venv/bin/python benchmarks/bench_execution.py [--n 5000]``. Prints p50/p99 in microseconds and
operations per second for each measured claim. The audit and journal figures depend on the disk's fsync.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from thunes.config import RiskSettings
from thunes.core.clock import SimulatedClock
from thunes.core.enums import OrderStatus, Side
from thunes.core.markets import parse_exchange_info
from thunes.execution.audit import AuditTrail
from thunes.execution.db import Database
from thunes.execution.filters import prepare_market_order
from thunes.execution.journal import OrderJournal
from thunes.execution.positions import PositionTracker
from thunes.execution.risk import RiskManager, TradeIntent

D = Decimal
INFO = Path(__file__).resolve().parents[1] / "thunes" / "exchange" / "sim" / "exchange_info.json"


def _timed(fn, n: int) -> np.ndarray:  # noqa: ANN001
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        out[i] = (time.perf_counter_ns() - t0) / 1000.0
    return out


def _executor_rounds(tmp: Path, n: int) -> np.ndarray:
    """The whole order path, alternating entry and exit: risk check, filters, journal (write-ahead), ccxt to the
    in-process local exchange over loopback, positions, audit (fsync=always), SQLite synchronous=FULL."""
    from thunes.core.clock import LiveClock
    from thunes.exchange.ccxt_adapter import CcxtExchange
    from thunes.exchange.sim import LocalExchange, SimOptions
    from thunes.execution.filters import MarketBook
    from thunes.execution.orders import OrderExecutor

    clock = LiveClock()
    settings = RiskSettings(max_positions=3, max_daily_loss=D("1e9"), max_loss_per_trade=D("1e6"),
                            max_position_quote=D("50"), cool_down_minutes=0)
    with LocalExchange(SimOptions(symbols=("BTC/USDT",), orders_per_10s=10**6, weight_limit=10**7)) as sim:
        exchange = CcxtExchange.for_local(sim, timeout_s=5)
        db = Database.connect(f"sqlite:///{tmp}/executor.sqlite")
        audit = AuditTrail(tmp / "executor_audit.jsonl", fsync="always", clock=clock)
        executor = OrderExecutor(exchange, risk=RiskManager(settings, clock=clock, audit=audit),
                                 journal=OrderJournal(db, clock=clock), positions=PositionTracker(db, clock=clock),
                                 markets=MarketBook(exchange.load_markets, clock=clock), clock=clock, audit=audit)
        price = sim.last_price("BTC/USDT")

        def one(i: int) -> None:
            entry = i % 2 == 0
            out = executor.execute(TradeIntent(symbol="BTC/USDT", side=Side.BUY if entry else Side.SELL,
                                               quote_qty=D(50) if entry else None, price=price, is_exit=not entry,
                                               strategy="bench", bar_ts=i))
            if out.status is not OrderStatus.FILLED:
                raise RuntimeError(f"order {i} ended {out.status}: {out.error or out.decision}")

        try:
            return _timed(one, n)
        finally:
            audit.close()
            db.close()
            exchange.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="operations per in-memory measurement")
    parser.add_argument("--n-disk", type=int, default=300, help="operations per fsync-bound measurement")
    parser.add_argument("--n-orders", type=int, default=200, help="orders through the whole executor")
    args = parser.parse_args()
    rows: list[tuple[str, np.ndarray]] = []
    settings = RiskSettings(max_positions=10**9, max_daily_loss=D("1e12"), cool_down_minutes=0)
    clock = SimulatedClock(1_700_000_000_000)

    rm = RiskManager(settings, clock=clock)
    rows.append(("risk.check approve (no audit)", _timed(lambda i: rm.check(TradeIntent(
        symbol=f"S{i}/USDT", side=Side.BUY, quote_qty=D(100), price=D("64250.5"))), args.n)))
    rm2 = RiskManager(settings.model_copy(update={"max_positions": 1}), clock=clock)
    rm2.check(TradeIntent(symbol="A/USDT", side=Side.BUY, quote_qty=D(100), price=D(1)))
    rows.append(("risk.check deny (no audit)", _timed(lambda i: rm2.check(TradeIntent(
        symbol="B/USDT", side=Side.BUY, quote_qty=D(100), price=D(1))), args.n)))

    with tempfile.TemporaryDirectory() as tmp:
        for policy, n in (("never", args.n), ("batch", args.n), ("always", args.n_disk)):
            trail = AuditTrail(Path(tmp) / f"audit_{policy}.jsonl", fsync=policy, clock=clock)
            payload = {"symbol": "BTC/USDT", "side": "BUY", "qty": "0.00155", "reason": "sma cross"}
            rows.append((f"audit.append fsync={policy}", _timed(lambda i: trail.append("risk_decision", payload), n)))
            trail.close()
        trail = AuditTrail(Path(tmp) / "audit_group.jsonl", fsync="always", clock=clock)
        payload = {"symbol": "BTC/USDT", "side": "BUY", "qty": "0.00155", "reason": "sma cross"}

        def grouped(i: int) -> None:
            with trail.group():
                trail.append("risk_decision", payload)
                trail.append("order_intent", payload)

        rows.append(("audit group of 2 records, fsync=always", _timed(grouped, args.n_disk)))
        trail.close()
        trail = AuditTrail(Path(tmp) / "audit_risk.jsonl", fsync="always", clock=clock)
        rm3 = RiskManager(settings, clock=clock, audit=trail)
        rows.append(("risk.check + audit fsync=always", _timed(lambda i: rm3.check(TradeIntent(
            symbol=f"S{i}/USDT", side=Side.BUY, quote_qty=D(100), price=D("64250.5"))), args.n_disk)))
        trail.close()

        market = parse_exchange_info(json.loads(INFO.read_text()))["BTC/USDT"]
        rows.append(("filters.prepare_market_order", _timed(lambda i: prepare_market_order(
            market, Side.BUY, quote_qty=D(100) + i, ref_price=D("64250.51")), args.n)))

        db = Database.connect(f"sqlite:///{tmp}/exec.sqlite")
        journal, positions = OrderJournal(db, clock=clock), PositionTracker(db, clock=clock)
        order = prepare_market_order(market, Side.BUY, quote_qty=D(100), ref_price=D("64250.51"))

        def journal_round(i: int) -> None:
            cid = f"bench-{i}"
            journal.record_sent(cid, order)
            with db.transaction():
                journal.apply_update(cid, OrderStatus.FILLED, filled_qty=order.qty, cum_quote=order.notional)
                positions.apply_fill("BTC/USDT", Side.BUY, order.qty, order.notional)

        def journal_round_pending(i: int) -> None:
            cid = f"bench-p{i}"
            journal.record_pending(cid, order)
            journal.mark_sent(cid)
            with db.transaction():
                journal.apply_update(cid, OrderStatus.FILLED, filled_qty=order.qty, cum_quote=order.notional)
                positions.apply_fill("BTC/USDT", Side.BUY, order.qty, order.notional)

        rows.append(("journal SENT->FILLED+pos, SQLite FULL", _timed(journal_round, args.n_disk)))
        rows.append(("  older PENDING->SENT->FILLED+pos", _timed(journal_round_pending, args.n_disk)))
        db.close()
        rows.append(("executor.execute via local exchange", _executor_rounds(Path(tmp), args.n_orders)))

    print(f"{'operation':<42} {'n':>6} {'p50 µs':>10} {'p99 µs':>10} {'ops/s':>10}")
    for name, us in rows:
        print(f"{name:<42} {len(us):>6} {np.percentile(us, 50):>10.1f} {np.percentile(us, 99):>10.1f} "
              f"{1e6 / us.mean():>10.0f}")


if __name__ == "__main__":
    main()
