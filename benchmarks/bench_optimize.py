"""Benchmark: optimisation trials per second on the sample data, and where a trial's time goes.

Claim measured: trials should be dominated by the backtest, not by optimiser overhead. For a TPE study
of SMA-crossover parameters on BTC/USDT 1h (all sample bars), it prints trials/s and the share of wall
time spent (a) in the numba kernel, (b) in the strategy's signals plus the kernel, (c) in the whole
backtest call of a trial (signals + kernel + metrics), with the study kept in memory, in a SQLite file
(the default storage; written behind in batches) and with PostgreSQL when a URL is given. ``SQL/trial``
counts the statements the storage sent, flushes included.

    .venv/bin/python benchmarks/bench_optimize.py [--trials 40] [--bars 0] [--timeframe 1h] [--postgres postgresql://…]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from thunes.backtest import _kernels as K
from thunes.backtest import prepared
from thunes.data.samples import load_sample_candles
from thunes.optimize.spec import make_sampler
from thunes.optimize.storage import open_storage
from thunes.optimize.study import StudySpec, TrialEvaluator, optimize_quota


class Timer:
    """Wraps a module-level function (looked up at call time by its callers) to add up its time."""

    def __init__(self, module: object, name: str) -> None:
        self.module, self.name = module, name
        self.seconds = 0.0
        self.calls = 0
        self._inner = getattr(module, name)

    def __enter__(self) -> Timer:
        inner = self._inner

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.module, self.name, self._inner)


def run(label: str, storage: optuna.storages.BaseStorage | None, spec: StudySpec, candles, trials: int) -> dict:  # noqa: ANN001
    study = optuna.create_study(storage=storage, sampler=make_sampler(spec), directions=spec.directions,
                                study_name=f"bench-{label}-{time.time_ns()}")
    evaluator = TrialEvaluator(spec, candles, worker_id=f"bench-{label}")
    statements = [0]
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is not None:
        from sqlalchemy import event

        def count(*_: object) -> None:
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count)
    with Timer(K, "simulate") as kt, Timer(prepared, "strategy_arrays") as st:
        t0 = time.perf_counter()
        done = optimize_quota(study, evaluator, trials)
        wall = time.perf_counter() - t0
    attempted = len(study.trials)
    return {"storage": label, "trials": done, "attempted": attempted, "wall_s": wall,
            "trials_per_s": done / wall, "kernel_share": kt.seconds / wall,
            "engine_share": (kt.seconds + st.seconds) / wall,
            "backtest_share": evaluator.backtest_seconds / wall, "kernel_ms": 1000 * kt.seconds / max(kt.calls, 1),
            "signals_ms": 1000 * st.seconds / max(st.calls, 1),
            "backtest_ms": 1000 * evaluator.backtest_seconds / max(kt.calls, 1),
            "trial_ms": 1000 * wall / max(attempted, 1),
            "sql_per_trial": statements[0] / max(attempted, 1) if engine is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--bars", type=int, default=0, help="use only the last N bars (0: all)")
    parser.add_argument("--timeframe", default="1h", help="BTC/USDT sample timeframe (1h, 5m, 1m: more bars)")
    parser.add_argument("--postgres", default=None, help="also measure a PostgreSQL storage at this URL")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sample = load_sample_candles("BTC/USDT", args.timeframe)
    candles = sample.frame.iloc[-args.bars:] if args.bars else sample.frame
    spec = StudySpec(strategy="sma_cross", timeframe=args.timeframe).for_window(candles, "sample")
    # Warm the numba caches so compilation is not counted.
    TrialEvaluator(spec, candles).evaluate({"fast": 10, "slow": 50})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("memory", None), ("sqlite", open_storage(f"sqlite:///{Path(tmp) / 'b.sqlite'}"))]
        if args.postgres:
            targets.append(("postgresql", open_storage(args.postgres)))
        for label, storage in targets:
            rows.append(run(label, storage, spec, candles, args.trials))
    print(f"TPE study of sma_cross on BTC/USDT {args.timeframe}, {len(candles)} bars ({'real' if sample.real else 'synthetic'} "
          f"data), {args.trials} completed trials per storage")
    header = (f"{'storage':<11} {'trials/s':>9} {'trial ms':>9} {'backtest ms':>12} {'signals ms':>11} "
              f"{'kernel ms':>10} {'backtest %':>11} {'sig+kernel %':>13} {'kernel %':>9} {'SQL/trial':>10} "
              f"{'attempted':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        sql = "-" if r["sql_per_trial"] is None else f"{r['sql_per_trial']:.1f}"
        print(f"{r['storage']:<11} {r['trials_per_s']:>9.2f} {r['trial_ms']:>9.1f} {r['backtest_ms']:>12.2f} "
              f"{r['signals_ms']:>11.2f} {r['kernel_ms']:>10.2f} {100 * r['backtest_share']:>10.0f}% "
              f"{100 * r['engine_share']:>12.0f}% {100 * r['kernel_share']:>8.0f}% {sql:>10} {r['attempted']:>10}")


if __name__ == "__main__":
    main()
