"""Backtester speed against vectorbt and a plain two-thread numba loop (issue 5's claims).

    .venv/bin/python benchmarks/bench_backtest.py [--bars 1000000] [--vbt-combos 10] [--full-vbt]

Measured in one run on the same machine, as ratios:

1. single backtest of SMA(10/50) on ~1M 1-minute bars (BTC/USDT 2023-2024 when ../shared/data is
   present), signals included: THUNES ``run_backtest`` vs ``vectorbt.Portfolio.from_signals``;
2. sweep of the grid fast 5..50 step 5 x slow 20..200 step 20 (90 valid combos, fast < slow):
   THUNES ``run_sweep`` (2 numba threads) vs a plain two-thread numba loop (SMA by running sums,
   crossover, next-bar-open all-in execution with fees, equity and max drawdown per column) vs
   vectorbt (by default timed on the first ``--vbt-combos`` combos and scaled linearly, because the
   full vectorbt sweep needs 9-18 GB; ``--full-vbt`` runs it all).

Each measurement runs in a fresh subprocess, so its peak RSS (ru_maxrss) is that measurement's own;
compilation is excluded (one warm-up call first); times are the best of ``--repeat`` runs, both wall
clock and process CPU time (all threads): on a shared, loaded machine the CPU-time ratios are the
steadier ones, the wall-clock ones are what a user waits for.

Fees and slippage are 0 in every contender (the arithmetic costs the same): with 10 bps a 1-minute SMA
crossover loses everything within the sample, and two empty accounts cannot show that THUNES and
vectorbt produced the same trades and final equity, which the table prints as a check. vectorbt
computes its own moving averages (a rolling sum drifting ~3e-6 from the exact SMA on 1M bars), so at
the few bars where the fast and slow SMA are exactly equal its crossing can resolve the other way:
on the real 2023-2024 1-minute data that is 2 entries and 2 exits of 14 382 trades, hence final
equities a few USDT apart. Fed THUNES' own signals, vectorbt agrees to 1e-12
(tests/backtest/test_vectorbt_agreement.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20))}


def _candles(bars: int):
    from thunes.data.samples import load_sample_candles

    loaded = load_sample_candles("BTC/USDT", "1m", limit=bars, synthetic_rows=bars)
    return loaded.frame, loaded.real


def _combos():
    return [(f, s) for f in GRID["fast"] for s in GRID["slow"] if f < s]


def _best(fn, repeat: int) -> dict:
    """Best wall-clock and best CPU seconds over ``repeat`` calls after one warm-up (compilation)."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return {"seconds": wall, "cpu": cpu}


def part_thunes_single(bars: int, repeat: int) -> dict:
    from thunes.backtest import BacktestOptions, FixedSlippage, run_backtest
    from thunes.strategies import get_strategy

    candles, real = _candles(bars)
    opts = BacktestOptions(risk=None, apply_filters=False, refuse_gap_entries=False, slippage=FixedSlippage(bps=0),
                           taker_fee_bps=0, maker_fee_bps=0)
    strategy = get_strategy("sma_cross")(fast=10, slow=50)
    out = {}

    def go() -> None:
        out["r"] = run_backtest(candles, strategy, options=opts, symbol="BTC/USDT", timeframe="1m")

    t = _best(go, repeat)
    return {**t, "trades": len(out["r"].trades), "final": out["r"].stats["final_equity"], "real": real,
            "bars": len(candles)}


def part_vbt_single(bars: int, repeat: int) -> dict:
    import vectorbt as vbt

    candles, _ = _candles(bars)
    close, open_ = candles["close"], candles["open"]
    out = {}

    def go() -> None:
        fast = vbt.MA.run(close, 10)
        slow = vbt.MA.run(close, 50)
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
        out["pf"] = vbt.Portfolio.from_signals(close, entries, exits, price=open_, fees=0.0, init_cash=10_000.0,
                                               freq="1min")
        out["final"] = float(out["pf"].final_value())

    t = _best(go, repeat)
    return {**t, "trades": int(out["pf"].trades.count()), "final": out["final"]}


def part_thunes_sweep(bars: int, repeat: int) -> dict:
    import numba

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    from thunes.backtest import BacktestOptions, FixedSlippage
    from thunes.backtest.sweep import run_sweep
    from thunes.strategies import get_strategy

    candles, _ = _candles(bars)
    opts = BacktestOptions(risk=None, apply_filters=False, refuse_gap_entries=False, slippage=FixedSlippage(bps=0),
                           taker_fee_bps=0, maker_fee_bps=0)
    cls = get_strategy("sma_cross")
    out = {}

    def go() -> None:
        out["t"] = run_sweep(candles, cls, GRID, opts, symbol="BTC/USDT", timeframe="1m")

    t = _best(go, repeat)
    return {**t, "combos": len(out["t"]), "threads": numba.get_num_threads()}


def part_plain_sweep(bars: int, repeat: int) -> dict:
    import numba
    import numpy as np
    from numba import njit, prange

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))

    @njit(parallel=True, cache=False)
    def plain(open_, close, fast, slow, fee, out):
        n = close.shape[0]
        for c in prange(fast.shape[0]):
            fw, sw = fast[c], slow[c]
            fs = 0.0
            ss = 0.0
            pf = np.nan
            ps = np.nan
            cash = 10_000.0
            qty = 0.0
            want = 0  # +1 enter, -1 exit, decided at the previous close
            peak = cash
            mdd = 0.0
            for i in range(n):
                if want == 1 and qty == 0.0:
                    qty = cash / (open_[i] * (1.0 + fee))
                    cash -= qty * open_[i] * (1.0 + fee)
                elif want == -1 and qty > 0.0:
                    cash += qty * open_[i] * (1.0 - fee)
                    qty = 0.0
                want = 0
                x = close[i]
                fs += x
                ss += x
                if i >= fw:
                    fs -= close[i - fw]
                if i >= sw:
                    ss -= close[i - sw]
                if i >= sw - 1:
                    f = fs / fw
                    s = ss / sw
                    if f > s and pf <= ps:
                        want = 1
                    elif f < s and pf >= ps:
                        want = -1
                    pf = f
                    ps = s
                eq = cash + qty * x
                if eq > peak:
                    peak = eq
                elif 1.0 - eq / peak > mdd:
                    mdd = 1.0 - eq / peak
            out[c, 0] = cash + qty * close[n - 1]
            out[c, 1] = mdd

    candles, _ = _candles(bars)
    combos = _combos()
    fast = np.array([f for f, _ in combos], dtype=np.int64)
    slow = np.array([s for _, s in combos], dtype=np.int64)
    o, c = candles["open"].to_numpy(), candles["close"].to_numpy()
    out = np.zeros((len(combos), 2))
    t = _best(lambda: plain(o, c, fast, slow, 0.0, out), repeat)
    return {**t, "combos": len(combos), "threads": numba.get_num_threads()}


def part_vbt_sweep(bars: int, repeat: int, limit: int) -> dict:
    import numpy as np
    import vectorbt as vbt

    candles, _ = _candles(bars)
    combos = _combos()[:limit] if limit else _combos()
    close, open_ = candles["close"], candles["open"]

    def go() -> None:
        fast = vbt.MA.run(close, [f for f, _ in combos], short_name="fast")
        slow = vbt.MA.run(close, [s for _, s in combos], short_name="slow")
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
        price = open_ if entries.ndim == 1 else np.broadcast_to(open_.to_numpy()[:, None], entries.shape)
        pf = vbt.Portfolio.from_signals(close, entries, exits, price=price, fees=0.0, init_cash=10_000.0,
                                        freq="1min")
        pf.final_value()

    t = _best(go, max(1, repeat - 1))
    return {**t, "combos": len(combos)}


PARTS = {"thunes_single": part_thunes_single, "vbt_single": part_vbt_single, "thunes_sweep": part_thunes_sweep,
         "plain_sweep": part_plain_sweep}


def _run_part(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--part", name, "--bars", str(args.bars), "--repeat", str(args.repeat),
           "--vbt-combos", str(0 if args.full_vbt else args.vbt_combos)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--vbt-combos", type=int, default=10, help="combos timed for vectorbt's sweep (0 = all)")
    ap.add_argument("--full-vbt", action="store_true", help="time vectorbt on the whole grid (9-18 GB)")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        fn = part_vbt_sweep if args.part == "vbt_sweep" else PARTS[args.part]
        result = fn(args.bars, args.repeat, args.vbt_combos) if args.part == "vbt_sweep" else fn(args.bars, args.repeat)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    res = {name: _run_part(name, args) for name in ("thunes_single", "vbt_single", "thunes_sweep", "plain_sweep",
                                                    "vbt_sweep")}
    ts, vs, tw, pw, vw = (res[k] for k in ("thunes_single", "vbt_single", "thunes_sweep", "plain_sweep", "vbt_sweep"))
    full = len(_combos())
    scale = full / vw["combos"]
    print(f"data: {ts['bars']} bars ({'real BTC/USDT 1m' if ts['real'] else 'synthetic'})")
    print(f"{'measurement':<46} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    rows = [
        ("single SMA(10/50): THUNES run_backtest", ts), ("single SMA(10/50): vectorbt from_signals", vs),
        (f"sweep {full} combos: THUNES run_sweep ({tw['threads']} thr)", tw),
        (f"sweep {full} combos: plain numba loop ({pw['threads']} thr)", pw),
        (f"sweep {vw['combos']} combos: vectorbt", vw),
    ]
    for label, r in rows:
        print(f"{label:<46} {r['seconds']:>8.3f} {r['cpu']:>8.3f} {r['peak_rss_mb']:>12.0f}")
    print(f"single: trades THUNES {ts['trades']} vs vectorbt {vs['trades']}; "
          f"final equity {ts['final']:.2f} vs {vs['final']:.2f}")
    scaled = "" if vw["combos"] == full else f" (scaled x{scale:.0f})"
    for what, key in (("wall", "seconds"), ("CPU", "cpu")):
        print(f"[{what}] single  vectorbt / THUNES        = {vs[key] / ts[key]:7.1f}x  (target >= 5x)")
        print(f"[{what}] sweep   vectorbt{scaled} / THUNES = {vw[key] * scale / tw[key]:7.1f}x  (target >= 30x)")
        print(f"[{what}] sweep   THUNES / plain numba loop  = {tw[key] / pw[key]:7.2f}x  (target <= 1.5x)")
    print(f"sweep peak RSS THUNES = {tw['peak_rss_mb']:.0f} MB (target < 1024 MB)")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
