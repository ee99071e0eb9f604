"""The order placer killed by the crash test (``python -m tests.execution.crash_placer CONFIG_JSON``).

It runs as a *zygote*: it imports everything once (ccxt alone takes about a second), then for each
``run`` line on stdin forks a child that is one "life" of a trading process: open the journal, positions
and audit trail, rebuild the risk state, ``recover()`` whatever the previous life left unresolved, then
work through a fixed plan of intents. The test SIGKILLs the child at a random moment. Forking keeps a
life's start-up in milliseconds, so 50+ kills fit in a few tens of seconds.

Protocol: stdin ``run [TTL_MS]`` (a life) or ``recover [TTL_MS]`` (restart, resolve, stop: the final life)
-> stdout ``pid <PID>``, from the life itself ``placing <PID>`` once it starts placing orders (unless killed
before), then ``exit <PID> <wait status>``; ``quit`` ends. ``TTL_MS`` is the life's ``entry_ttl_ms`` (how old
an entry found never placed at recovery may be and still be sent; without it such entries expire). The plan is
longer than the lives get through, so every life is cut short by the kill.

The life signs with the short ``recv_window_ms`` of the config and lets the executor derive its settle time
from it; the test may put a delaying gateway between the lives and the exchange (``base_url``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from decimal import Decimal

from thunes.config import RiskSettings
from thunes.core.clock import LiveClock
from thunes.core.enums import Side
from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions
from thunes.execution.audit import AuditAnchors, AuditTrail
from thunes.execution.db import Database
from thunes.execution.filters import MarketBook
from thunes.execution.journal import OrderJournal
from thunes.execution.orders import ExecutorOptions, OrderExecutor
from thunes.execution.positions import PositionTracker
from thunes.execution.risk import RiskManager, TradeIntent

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def plan(n: int, prices: dict[str, Decimal], bar0: int) -> list[TradeIntent]:
    """Intent k: symbol k % 3, bar ``bar0 + k`` ms; rounds alternate entry (buy 20 USDT) and exit (sell the
    position)."""
    out = []
    for k in range(n):
        sym = SYMBOLS[k % len(SYMBOLS)]
        entry = (k // len(SYMBOLS)) % 2 == 0
        out.append(TradeIntent(symbol=sym, side=Side.BUY if entry else Side.SELL, price=prices[sym],
                               quote_qty=Decimal("20") if entry else None, is_exit=not entry,
                               strategy="crash", bar_ts=bar0 + k, reason=f"crash-test intent {k}"))
    return out


def life(cfg: dict, *, recover_only: bool = False, entry_ttl_ms: int | None = None) -> None:
    clock = LiveClock()
    exchange = CcxtExchange(CcxtOptions(mode="local", base_url=cfg["base_url"], api_key=cfg["api_key"],
                                        secret=cfg["secret"], timeout_s=3.0, enable_rate_limit=False,
                                        recv_window_ms=int(cfg["recv_window_ms"])))
    db = Database.connect(cfg["db_url"])
    # Anchored in the journal's database, as build_stack does: the risk decision and the order intent go into
    # the audit outbox in the journal's commit, and a life killed before the file was written has its records
    # filled in by the next one.
    audit = AuditTrail(cfg["audit_path"], fsync="always", clock=clock, anchors=AuditAnchors(db))
    journal = OrderJournal(db, clock=clock)
    positions = PositionTracker(db, clock=clock)
    risk = RiskManager(RiskSettings(max_daily_loss=Decimal("100000"), max_loss_per_trade=Decimal("1000"),
                                    max_positions=3, max_position_quote=Decimal("100"), cool_down_minutes=0),
                       clock=clock, audit=audit)
    executor = OrderExecutor(exchange, risk=risk, journal=journal, positions=positions,
                             markets=MarketBook(exchange.load_markets, clock=clock), clock=clock, audit=audit,
                             options=ExecutorOptions(retry_sleep_s=0.05, entry_ttl_ms=entry_ttl_ms))
    executor.restore_risk()
    executor.recover()
    if not recover_only:
        prices = {s: exchange.fetch_ticker(s).last for s in SYMBOLS}
        print(f"placing {os.getpid()}", flush=True)  # start-up and recovery are done: the test may aim here
        for intent in plan(int(cfg["intents"]), prices, int(cfg["bar0"])):
            executor.execute(intent)
    # An answer that could not be obtained (exchange slow or unreachable) leaves a SENT row; a real trader's
    # reconciler calls recover() again later, and so does this life before it ends.
    for _ in range(20):
        if not journal.unresolved():
            break
        executor.recover()
    audit.close()
    db.close()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    for line in sys.stdin:
        cmd, *args = line.split() or [""]
        if cmd == "quit":
            return
        if cmd not in ("run", "recover"):
            continue
        ttl = int(args[0]) if args else None
        pid = os.fork()
        if pid == 0:  # the child: one life, ended by the test's SIGKILL or by finishing the plan
            code = 0
            try:
                life(cfg, recover_only=cmd == "recover", entry_ttl_ms=ttl)
            except BaseException:  # noqa: BLE001 - reported to the test through stderr and the exit code
                traceback.print_exc()
                code = 3
            sys.stderr.flush()
            os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {status}", flush=True)


if __name__ == "__main__":
    main()
