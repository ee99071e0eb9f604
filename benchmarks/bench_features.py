"""Benchmark: each indicator vs TA-Lib on 1,000,000 bars, and the whole default feature set.

Claims measured (issue 4): every indicator within 1.5x of TA-Lib's time; the default feature set on
1M bars in under 1 s; for reference, pandas rolling versions of the nine core indicators.

    .venv/bin/python benchmarks/bench_features.py [--rows 1000000] [--repeat 5]

Uses BTC/USDT 1m from ../shared/data when present (1.05M real bars), else synthetic candles. Prints a
table of best-of-``repeat`` times: wall clock, and CPU time of the process (steadier when other work
shares the machine; the ratio columns use each). Numba compiles (or loads its cache) before timing.
The default feature set is timed with its default worker threads and with one.

The "unchecked" column times the same call with the wrappers' separate input check (one summation per
input that proves every value finite) switched off. TA-Lib checks nothing. Most indicators now sum
their inputs inside the kernel's own pass (true range, ATR, NATR, MAX, MIN, STDDEV, ROC, STOCH, WILLR,
MFI, ADX, +DI, -DI): for them the two columns measure the same work.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from thunes.data.samples import load_sample_candles
from thunes.data.synthetic import generate_candles
from thunes.features import compute_features, get_feature_set
from thunes.features import indicators as ind


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best wall seconds, best process CPU seconds) over ``repeat`` runs after one warm-up run."""
    fn()  # warm-up: compile or load the numba cache, touch memory
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


@contextlib.contextmanager
def unchecked_inputs() -> Iterator[None]:
    """Benchmark-only: skip the wrappers' finite-input check, to show what it costs."""
    saved = ind._valid_start
    ind._valid_start = lambda fn, x, arr, arg: 0  # type: ignore[assignment]
    try:
        yield
    finally:
        ind._valid_start = saved  # type: ignore[assignment]


def load(rows: int) -> tuple[pd.DataFrame, str]:
    sample = load_sample_candles("BTC/USDT", "1m", synthetic_rows=rows)
    if sample.real and len(sample.frame) >= rows:
        return sample.frame.iloc[-rows:], f"real BTC/USDT 1m ({sample.source})"
    return generate_candles(rows, timeframe="1m", seed=1), "synthetic 1m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    frame, source = load(args.rows)
    o, h, lo, c, v = (np.ascontiguousarray(frame[k].to_numpy(dtype="float64"))
                      for k in ("open", "high", "low", "close", "volume"))
    print(f"{len(frame):,} bars, {source}; best of {args.repeat}")
    try:
        import talib
    except ImportError:  # TA-Lib is a test/benchmark-only dependency
        talib = None
    cases: list[tuple[str, Callable[[], object], Callable[[], object] | None, Callable[[], object] | None]] = [
        ("SMA(20)", lambda: ind.sma(c, 20), talib and (lambda: talib.SMA(c, 20)),
         lambda: pd.Series(c).rolling(20).mean()),
        ("EMA(20)", lambda: ind.ema(c, 20), talib and (lambda: talib.EMA(c, 20)),
         lambda: pd.Series(c).ewm(span=20, adjust=False).mean()),
        ("WMA(20)", lambda: ind.wma(c, 20), talib and (lambda: talib.WMA(c, 20)), None),
        ("RSI(14)", lambda: ind.rsi(c, 14), talib and (lambda: talib.RSI(c, 14)), None),
        ("MACD(12,26,9)", lambda: ind.macd(c), talib and (lambda: talib.MACD(c)), None),
        ("TRANGE", lambda: ind.true_range(h, lo, c), talib and (lambda: talib.TRANGE(h, lo, c)), None),
        ("ATR(14)", lambda: ind.atr(h, lo, c, 14), talib and (lambda: talib.ATR(h, lo, c, 14)), None),
        ("NATR(14)", lambda: ind.natr(h, lo, c, 14), talib and (lambda: talib.NATR(h, lo, c, 14)), None),
        ("BBANDS(20,2)", lambda: ind.bollinger(c, 20, 2.0), talib and (lambda: talib.BBANDS(c, 20, 2.0, 2.0)),
         lambda: (pd.Series(c).rolling(20).mean(), pd.Series(c).rolling(20).std(ddof=0))),
        ("STDDEV(20)", lambda: ind.rolling_std(c, 20), talib and (lambda: talib.STDDEV(c, 20, 1.0)),
         lambda: pd.Series(c).rolling(20).std(ddof=0)),
        ("MAX(20)", lambda: ind.rolling_max(h, 20), talib and (lambda: talib.MAX(h, 20)),
         lambda: pd.Series(h).rolling(20).max()),
        ("MIN(20)", lambda: ind.rolling_min(lo, 20), talib and (lambda: talib.MIN(lo, 20)),
         lambda: pd.Series(lo).rolling(20).min()),
        ("STOCH(14,3,3)", lambda: ind.stochastic(h, lo, c), talib and (lambda: talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)),
         None),
        ("WILLR(14)", lambda: ind.williams_r(h, lo, c), talib and (lambda: talib.WILLR(h, lo, c, 14)), None),
        ("CCI(20)", lambda: ind.cci(h, lo, c, 20), talib and (lambda: talib.CCI(h, lo, c, 20)), None),
        ("MFI(14)", lambda: ind.mfi(h, lo, c, v, 14), talib and (lambda: talib.MFI(h, lo, c, v, 14)), None),
        ("ADX(14)", lambda: ind.adx(h, lo, c, 14), talib and (lambda: talib.ADX(h, lo, c, 14)), None),
        ("PLUS_DI(14)", lambda: ind.plus_di(h, lo, c, 14), talib and (lambda: talib.PLUS_DI(h, lo, c, 14)), None),
        ("MINUS_DI(14)", lambda: ind.minus_di(h, lo, c, 14), talib and (lambda: talib.MINUS_DI(h, lo, c, 14)),
         None),
        ("OBV", lambda: ind.obv(c, v), talib and (lambda: talib.OBV(c, v)), None),
        ("ROC(10)", lambda: ind.roc(c, 10), talib and (lambda: talib.ROC(c, 10)), None),
        ("MOM(10)", lambda: ind.momentum(c, 10), talib and (lambda: talib.MOM(c, 10)), None),
    ]
    print(f"{'indicator':<16}{'thunes ms':>11}{'talib ms':>10}{'ratio':>8}{'cpu ratio':>11}{'unchecked':>11}"
          f"{'pandas ms':>11}")
    core = ("SMA(20)", "EMA(20)", "RSI(14)", "MACD(12,26,9)", "ATR(14)", "BBANDS(20,2)", "STOCH(14,3,3)",
            "ADX(14)", "OBV")
    ours_core = talib_core = 0.0
    worst = worst_cpu = worst_unchecked = 0.0
    nan = float("nan")
    for name, ours, ref, pd_fn in cases:
        t_ours, c_ours = best_of(ours, args.repeat)
        t_ref, c_ref = best_of(ref, args.repeat) if ref else (nan, nan)
        t_pd = best_of(pd_fn, max(1, args.repeat // 2))[0] if pd_fn else nan
        with unchecked_inputs():
            c_unchecked = best_of(ours, args.repeat)[1]
        ratio = t_ours / t_ref if ref else nan
        cpu_ratio = c_ours / c_ref if ref and c_ref > 0 else nan
        unchecked_ratio = c_unchecked / c_ref if ref and c_ref > 0 else nan
        if ref:
            worst = max(worst, ratio)
            worst_cpu = max(worst_cpu, cpu_ratio)
            worst_unchecked = max(worst_unchecked, unchecked_ratio)
        if name in core:
            ours_core += t_ours
            talib_core += t_ref
        print(f"{name:<16}{t_ours * 1e3:>11.2f}{t_ref * 1e3:>10.2f}{ratio:>8.2f}{cpu_ratio:>11.2f}"
              f"{unchecked_ratio:>11.2f}{t_pd * 1e3:>11.2f}")
    print(f"{'9 core together':<16}{ours_core * 1e3:>11.2f}{talib_core * 1e3:>10.2f}"
          f"{ours_core / talib_core if talib_core else nan:>8.2f}")
    print(f"worst ratio vs TA-Lib: {worst:.2f} wall, {worst_cpu:.2f} CPU, {worst_unchecked:.2f} CPU without the "
          "input check (target <= 1.5)")
    fs = get_feature_set("default")
    for workers in (None, 1):
        wall, cpu = best_of(lambda: compute_features(frame, fs, workers=workers), max(1, args.repeat // 2))
        label = "default workers" if workers is None else "1 worker"
        print(f"default feature set ({label}): {len(fs.columns)} columns + gap_flag on {len(frame):,} "
              f"bars: "
              f"{wall:.3f} s wall, {cpu:.3f} s CPU (target < 1 s)")


if __name__ == "__main__":
    main()
