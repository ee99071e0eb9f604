"""Crash and restart: the bot is SIGKILLed at random moments (30 times) and restarted each time.

The local exchange runs in the test process (it is the "real" exchange: it survives the bot); the bot runs
in child processes against it (``local.url``), stepping its market clock. Children are forked from a
pre-loaded zygote process so that 30 restarts cost seconds, not minutes of imports. After the last
kill the bot runs to the end of the replay, and then:

* no duplicate order: every order at the exchange has its own client order id (one per pair, bar, side),
  including those placed just before a kill, whose answer the killed process never journaled;
* positions match the exchange (final reconciliation clean, balance = tracked position per pair);
* no candle skipped: every pair's event log holds every bar of the replay;
* every exchange fill is in the ledger once; the audit trail's hash chain verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest

from thunes.core.candles import ts_ms
from thunes.core.events import CandleClosed
from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange
from thunes.execution import verify_audit
from thunes.execution.ledger import read_ledger
from thunes.live.config import JobSettings, LocalReplaySettings
from thunes.services.bot import BotRunRequest, events, run_bot

from .conftest import app_settings, bot_settings

pytestmark = pytest.mark.slow

KILLS = 30
BARS = 240  # room for 30 lives under a loaded CI machine (the clock moves as fast as each life trades)
TF = 300_000

ZYGOTE = textwrap.dedent("""
    import os, signal, sys
    from thunes.config import Settings
    from thunes.live.config import BotSettings
    from thunes.services.bot import BotRunRequest, run_bot
    import thunes.exchange.ccxt_adapter, thunes.execution, thunes.strategies.sma_cross, thunes.optimize  # noqa
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        cfg, data_url = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                settings = BotSettings.model_validate_json(open(cfg).read())
                run_bot(BotRunRequest(settings=settings, control=False),
                        Settings(data={"url": data_url}, audit={"fsync": "always"}))
            except BaseException:
                import traceback; traceback.print_exc(); code = 1
            os._exit(code)
        print(pid, flush=True)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_at_random_moments_never_doubles_an_order_nor_skips_a_candle(tmp_path, four_pairs):
    rng = random.Random(20261205)
    stamps = ts_ms(four_pairs["BTC/USDT"])
    start = int(stamps[300])
    end = start + BARS * TF
    accounts = (AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, balances={"USDT": "10000"}),)
    # 30 lives re-read markets and warm up four pairs each: more request weight per minute than a bot spends;
    # the exchange's rate limit is not what this test is about (the replay backs off on a 429, see test_sources).
    with LocalExchange(candles=four_pairs, start_ms=start, accounts=accounts, weight_limit=600_000) as sim:
        state = tmp_path / "bot"
        settings = bot_settings(state, bars=BARS, risk={"cool_down_minutes": 0, "max_positions": 3},
                                jobs=JobSettings(reconcile_minutes=30))
        settings = settings.model_copy(update={"local": LocalReplaySettings(url=sim.base_url, end_ms=end)})
        cfg = tmp_path / "bot.json"
        cfg.write_text(settings.model_dump_json())
        data_url = f"sqlite:///{tmp_path / 'candles.sqlite'}"
        zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        kills = 0
        try:
            log_path = state / "events.jsonl"
            while kills < KILLS:
                assert sim.now_ms() < end, f"the replay ended after {kills} kills; make BARS larger"
                zygote.stdin.write(f"{cfg} {data_url}\n")
                zygote.stdin.flush()
                pid = int(zygote.stdout.readline())
                size = log_path.stat().st_size if log_path.exists() else 0
                # A third of the kills land in the start-up (reconcile, warm-up), a third while candles are
                # traded, a third the moment an order reaches the exchange (before its answer is journaled).
                mode = rng.random()
                if mode < 1 / 3:
                    time.sleep(rng.uniform(0.0, 1.0))
                elif mode < 2 / 3:
                    placed, bar = len(sim.engine._orders), sim.now_ms()
                    deadline = time.monotonic() + 30
                    while (time.monotonic() < deadline and len(sim.engine._orders) == placed and _alive(pid)
                           and sim.now_ms() < bar + 6 * TF):  # a life that places nothing must not eat the replay
                        time.sleep(0.0005)
                else:
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline and (not log_path.exists() or log_path.stat().st_size == size):
                        time.sleep(0.01)
                    time.sleep(rng.uniform(0.0, 0.3))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # the life ended on its own just before the kill
                    pass
                while _alive(pid):
                    time.sleep(0.005)
                kills += 1
        finally:
            zygote.stdin.close()
            zygote.wait(10)

        # The last run goes to the end of the replay, here in the test process.
        result = run_bot(BotRunRequest(settings=settings, control=False), app_settings(tmp_path))
        assert result.report.stop_reason == "replay finished"

        # No duplicate order: one exchange order per client order id, and every one is journaled.
        orders = [o for o in sim.engine._orders.values() if o.account == DEFAULT_API_KEY]
        cids = [(o.symbol, o.client_order_id) for o in orders]
        assert len(cids) == len(set(cids))
        assert len(orders) >= 4, "too few orders to mean anything"

        # Positions match the exchange.
        from thunes.execution import Database, PositionTracker
        from thunes.execution.reconcile import Baseline

        db = Database.connect(f"sqlite:///{state / 'execution.sqlite'}")
        tracked = {p.symbol: p.qty for p in PositionTracker(db).positions()}
        journal_cids = {r[0] for r in db.execute("SELECT client_order_id FROM exec_orders")}
        baseline = Baseline(db).values
        db.close()
        assert {c for _, c in cids} <= journal_cids
        for sym in tracked:
            base = sym.split("/")[0]
            held = sim.engine.accounts[DEFAULT_API_KEY].free.get(base, Decimal(0))
            gap = abs(held - (baseline.get(base) or 0) - tracked[sym])
            assert gap <= Decimal("0.001") * max(1, tracked[sym]), sym

        # No candle skipped: every bar of the replay, for every pair, was handed to its trader.
        seen: dict[str, set[int]] = {}
        for e in events(state):
            if isinstance(e, CandleClosed):
                seen.setdefault(e.symbol, set()).add(e.bar_ts)
        expected = set(range(start, end, TF))
        for sym in four_pairs:
            assert seen.get(sym, set()) >= expected, (sym, sorted(expected - seen.get(sym, set()))[:5])

        # Every exchange fill in the ledger exactly once; the audit chain intact.
        fills = read_ledger(state / "ledger.csv")
        keys = [(f.symbol, f.order_id, f.trade_id) for f in fills]
        assert len(keys) == len(set(keys))
        trades_at_exchange = sum(len(o.fills) for o in orders)
        assert len(fills) == trades_at_exchange
        assert verify_audit(state / "audit.jsonl").ok
        from thunes.execution.audit import AuditTrail

        records = AuditTrail.read(state / "audit.jsonl")
        starts = sum(1 for r in records if r.kind == "bot_started")
        recovered = sum(len(r.payload.get("resolved", [])) + len(r.payload.get("not_found", []))
                        for r in records if r.kind == "recovery")
        print(f"\n{kills} kills, {starts} starts that got as far as trading, {len(orders)} orders, {len(fills)} fills, "
              f"{recovered} orders recovered after a kill, {len(expected)} bars x {len(four_pairs)} pairs")
        assert starts >= KILLS // 3, "too few kills landed after the start-up"
