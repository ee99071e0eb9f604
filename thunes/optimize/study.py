"""Optuna studies over a strategy's declared parameter ranges.

Why this shape: the strategy class already declares every parameter's type, default and range
(:class:`thunes.strategies.Param`), so the search space is read from it, never written twice. Each
trial builds the strategy, runs the backtester (fees, slippage and risk limits on, exactly as
``thunes backtest`` runs it) and returns the requested metrics: one objective for TPE, several for
NSGA-II (a Pareto front, e.g. Sharpe against max drawdown).

Every completed trial also stores, as user attributes, what the overfitting statistics need later
without re-running it: its per-bar Sharpe ratio (for the variance term of the Deflated Sharpe Ratio)
and the moments of its return series over ``n_blocks`` consecutive blocks (for PBO by CSCV). Trials
whose parameters were already evaluated are not backtested again; they reuse the earlier values and
are marked ``duplicate_of`` (TPE proposes repeats on integer grids), and they do not count as separate
trials in the statistics.

A study's description (:class:`StudySpec`: strategy, symbol, timeframe, objectives, fixed parameters,
backtest options, data window and its fingerprint) is stored in the study itself, so a worker started
elsewhere with only the storage URL and the study name evaluates exactly the same objective
(:mod:`thunes.optimize.worker`). ``--trials N`` means "until the study holds N completed trials": a
re-run after an interruption finishes the remaining ones.

Speed (a trial's time should go to the backtest, not to overhead): trials backtest through a
prepared handle (:class:`thunes.backtest.PreparedBacktest`, built once per evaluator: validated candles,
kernel inputs, option vector) and take their metrics from the kernel's statistics, with the same
numbers as ``run_backtest``; and a study in a SQLite file runs in memory and is written to the file in
batches of finished trials (:mod:`thunes.optimize.write_behind`).

The pieces, one module each: :mod:`~thunes.optimize.spec` (objectives, search space, StudySpec, sampler),
:mod:`~thunes.optimize.evaluator` (the objective function), :mod:`~thunes.optimize.trials` (a trial's
record, repeats), :mod:`~thunes.optimize.study_io` (create/load with the spec),
:mod:`~thunes.optimize.quota` and :mod:`~thunes.optimize.write_behind` (running trials),
:mod:`~thunes.optimize.worker` (worker processes), :mod:`~thunes.optimize.summary` (DSR, PBO) and
:mod:`~thunes.optimize.verdict` (deploy or not). This module runs a study from start to summary and
keeps the names callers import from ``thunes.optimize.study``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from thunes.core.errors import ConfigError
from thunes.optimize.evaluator import Evaluation, TrialEvaluator
from thunes.optimize.quota import optimize_quota
from thunes.optimize.spec import (
    SPEC_ATTR,
    Objective,
    SearchParam,
    StudySpec,
    default_study_name,
    parse_objectives,
    reseed,
    search_space,
)
from thunes.optimize.storage import StorageOptions, fail_orphaned_trials
from thunes.optimize.study_io import create_or_load, load_study
from thunes.optimize.summary import StudyOutcome, summarize_study
from thunes.optimize.trials import RESULT_ATTR, n_complete, trial_result, worker_id
from thunes.optimize.verdict import Recommendation, recommend
from thunes.optimize.worker import spawn_workers

__all__ = [
    "RESULT_ATTR",
    "SPEC_ATTR",
    "Evaluation",
    "Objective",
    "Recommendation",
    "SearchParam",
    "StudyOutcome",
    "StudySpec",
    "TrialEvaluator",
    "default_study_name",
    "load_study",
    "n_complete",
    "optimize_quota",
    "parse_objectives",
    "recommend",
    "run_study",
    "search_space",
    "summarize_study",
    "trial_result",
]

def run_study(
    spec: StudySpec,
    candles: pd.DataFrame,
    *,
    n_trials: int,
    storage_url: str,
    study_name: str,
    workers: int = 1,
    progress: bool = True,
    storage_options: StorageOptions | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    desc: str | None = None,
    store_url: str | None = None,
    sample_dir: str | Path | None = None,
) -> StudyOutcome:
    """Create or resume ``study_name`` and run it until it holds ``n_trials`` completed trials.

    ``workers > 1`` starts ``workers - 1`` extra processes (:mod:`thunes.optimize.worker`) on the same
    storage; that needs a server database (PostgreSQL), because SQLite allows a single writer. The extra
    workers reload the study's candles themselves, from ``store_url`` (the spec keeps it without a
    password) or the samples in ``sample_dir``.
    """
    from thunes.optimize.storage import is_memory, is_sqlite

    if n_trials < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if workers > 1 and is_memory(storage_url):
        raise ConfigError("--workers > 1 needs a server storage (postgresql://…): a 'memory' study lives "
                          "in one process")
    if workers > 1 and is_sqlite(storage_url):
        raise ConfigError("--workers > 1 needs a server storage (postgresql://…): SQLite allows one writer; "
                          "use --workers 1 or --storage postgresql://user@host/db")
    if spec.start_ms is None:
        raise ConfigError("bind the spec to its candles first: spec.for_window(candles, source)")
    t0 = time.perf_counter()
    study = create_or_load(spec, storage_url, study_name, storage_options)
    fail_orphaned_trials(study, (storage_options or StorageOptions()).grace_period_s)
    reseed(study, spec)
    evaluator = TrialEvaluator(spec, candles, worker_id=worker_id(0))
    remaining = max(0, n_trials - n_complete(study))
    shares = [remaining // workers + (1 if i < remaining % workers else 0) for i in range(workers)]
    start_complete = n_complete(study)
    bar = _progress(n_trials, start_complete, desc or study_name, enabled=progress)

    def tick(mine: int | None = None) -> None:
        # With one worker, count locally; with several, ask the storage (the others' trials count too).
        if mine is None or workers > 1:
            bar.n = min(n_complete(study), n_trials)
        else:
            bar.n = min(start_complete + mine, n_trials)
        bar.refresh()

    procs = (spawn_workers(storage_url, study_name, shares[1:], storage_options, store_url=store_url,
                            sample_dir=sample_dir) if remaining else [])
    try:
        if shares and shares[0]:
            optimize_quota(study, evaluator, shares[0], on_trial=tick, callbacks=callbacks)
        while any(p.poll() is None for p, _ in procs):
            time.sleep(0.2)
            tick()
        if procs:
            tick()
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        bar.close()
    failed = [(p, log) for p, log in procs if p.returncode not in (0, None)]
    if failed:
        p, log = failed[0]
        tail = Path(log).read_text(errors="replace")[-2000:]
        raise ConfigError(f"{len(failed)} optimize worker(s) failed (exit {p.returncode}); "
                          f"last output:\n{tail}")
    for _, log in procs:
        Path(log).unlink(missing_ok=True)
    outcome = summarize_study(study, spec, evaluator, storage_url=storage_url, study_name=study_name)
    return replace(outcome, wall_seconds=time.perf_counter() - t0,
                   backtest_seconds=evaluator.backtest_seconds, trial_seconds=evaluator.trial_seconds)


def _progress(total: int, initial: int, desc: str, *, enabled: bool):  # noqa: ANN202 - tqdm
    from thunes.progress import progress_bar

    return progress_bar(total=total, initial=min(initial, total), desc=desc, unit="trial", enabled=enabled)
