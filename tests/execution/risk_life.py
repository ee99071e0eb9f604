"""Trader lives for the restart tests: ``python -m tests.execution.risk_life`` is a *zygote*: it imports
everything once (ccxt alone takes about a second), then for each JSON config read on stdin forks one life,
answers ``pid N`` and reaps it when it ends. A life writes its JSON lines to ``cfg["out"]``.

It builds the stack exactly as ``thunes paper``/``thunes live`` do (:func:`build_stack`, against a local
exchange served by the test), then plays ``cfg["steps"]`` on it and prints one JSON line per step:

* ``["state"]``            the risk snapshot
* ``["lose", SYMBOL, X]``  a round trip that loses X quote (BUY 1 @ 100, SELL 1 @ 100 - X), applied as the
                           executor applies fills: positions in a database transaction, then the risk manager
* ``["enter", SYMBOL...]`` ask the risk manager for each entry; an approved one is filled (BUY 1 @ 100)

It records the account's database and its replayed clock in the state folder's run pointer, as ``thunes
paper`` does, then prints ``{"holding": pid}`` and waits to be killed (``cfg["hold"]``) or exits. When the account lease
is refused it prints ``{"refused": message}`` and exits 3.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from decimal import Decimal
from pathlib import Path

from thunes.config import RiskSettings
from thunes.core.clock import SimulatedClock
from thunes.core.enums import Side
from thunes.core.errors import ConfigError
from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions
from thunes.execution.risk import TradeIntent, write_run_pointer
from thunes.live.assembly import build_stack
from thunes.live.trader import TraderOptions
from thunes.strategies.sma_cross import SmaCross

D = Decimal


def _fill(stack, symbol: str, side: Side, price: Decimal) -> None:
    with stack.db.transaction():
        stack.positions.apply_fill(symbol, side, D(1), price, client_order_id=f"{symbol}-{side}-{time.time_ns()}")
    stack.risk.record_fill(symbol, side, D(1), price)


def main(cfg: dict) -> int:
    exchange = CcxtExchange(CcxtOptions(mode="local", base_url=cfg["base_url"], api_key=cfg["api_key"],
                                        secret=cfg["secret"], timeout_s=5.0, enable_rate_limit=False))
    options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=D("100"),
                            state_dir=Path(cfg["state_dir"]), window_bars=40)
    try:
        stack = build_stack(exchange, strategy=SmaCross(fast=3, slow=8), options=options,
                            risk_settings=RiskSettings(**cfg["risk"]), audit_path=Path(cfg["audit_path"]),
                            ledger_path=Path(cfg["state_dir"]) / f"ledger-{os.getpid()}.csv",
                            clock=SimulatedClock(int(cfg["clock_ms"])), audit_fsync="always",
                            db_url=cfg.get("db_url"), risk_state_path=Path(cfg["risk_state_path"]))
    except ConfigError as exc:
        print(json.dumps({"refused": str(exc)}), flush=True)
        return 3
    # As `thunes paper` does: the account trades on a replayed (simulated) clock, and `thunes risk` must know.
    write_run_pointer(cfg["state_dir"], db_url=stack.db.url, audit_path=cfg["audit_path"], clock="replay")
    for step in cfg["steps"]:
        if step[0] == "lose":
            _fill(stack, step[1], Side.BUY, D(100))
            _fill(stack, step[1], Side.SELL, D(100) - D(step[2]))
        elif step[0] == "enter":
            opened = []
            for symbol in step[1:]:
                decision = stack.risk.check(TradeIntent(symbol=symbol, side=Side.BUY, price=D(100),
                                                        quote_qty=D(100), stop_price=D(99)))
                if decision:
                    _fill(stack, symbol, Side.BUY, D(100))
                    opened.append(symbol)
            print(json.dumps({"opened": opened}), flush=True)
        elif step[0] == "state":
            print(json.dumps({"state": stack.risk.state.to_json()}), flush=True)
        else:
            raise SystemExit(f"unknown step {step!r}")
    print(json.dumps({"holding": os.getpid()}), flush=True)
    deadline = time.monotonic() + float(cfg.get("hold", 60))
    while time.monotonic() < deadline:  # the test SIGKILLs this process while it holds
        time.sleep(0.05)
    stack.close()
    return 0


def zygote() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # lives are reaped by the kernel (the test SIGKILLs them)
    for line in sys.stdin:
        cfg = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 1
            try:
                with open(cfg["out"], "w", buffering=1, encoding="utf-8") as out:
                    sys.stdout = out
                    code = main(cfg)
            except BaseException:  # noqa: BLE001 - a life's failure goes to the test's log, not the zygote
                traceback.print_exc()
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)


if __name__ == "__main__":
    zygote()
