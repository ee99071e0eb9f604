"""A study's outcome: the best parameters re-backtested, and DSR and PBO over its distinct trials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from thunes.core.errors import InsufficientData
from thunes.optimize.evaluator import TrialEvaluator
from thunes.optimize.overfitting import (
    BlockMoments,
    DeflatedSharpe,
    PBOResult,
    deflated_sharpe_from_returns,
    pbo_from_block_moments,
)
from thunes.optimize.spec import StudySpec
from thunes.optimize.trials import is_number, trial_result

__all__ = ["StudyOutcome", "best_trial", "summarize_study"]

@dataclass(frozen=True, slots=True, kw_only=True)
class StudyOutcome:
    """The result of :func:`run_study`: the study, its spec and its summary statistics."""

    study: optuna.Study
    spec: StudySpec
    name: str
    storage_url: str
    best_params: dict[str, Any]
    best_values: list[float]
    best_stats: dict[str, float]
    dsr: DeflatedSharpe | None
    pbo: PBOResult | None
    n_complete: int
    n_distinct: int
    n_pruned: int
    n_failed: int
    pareto: list[FrozenTrial]
    backtest_seconds: float
    trial_seconds: float
    wall_seconds: float
    best_returns: pd.Series = field(repr=False)


def best_trial(study: optuna.Study, spec: StudySpec) -> FrozenTrial:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise InsufficientData(f"study {study.study_name!r} has no completed trial (all pruned or failed?)")
    if not spec.multi_objective:
        return study.best_trial
    # On a Pareto front there is no single best: pick the front's best by the first objective.
    sign = 1.0 if spec.objectives[0].direction == "maximize" else -1.0
    return max(study.best_trials, key=lambda t: sign * t.values[0])


def summarize_study(
    study: optuna.Study,
    spec: StudySpec,
    evaluator: TrialEvaluator,
    *,
    storage_url: str,
    study_name: str,
) -> StudyOutcome:
    """Best parameters (re-backtested for their full stats and returns), DSR and PBO over the trials."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    distinct = [t for t in complete if "duplicate_of" not in trial_result(t)]
    best = best_trial(study, spec)
    fixed = dict(spec.fixed_params)
    ev = evaluator.evaluate({**fixed, **best.params})
    results = [trial_result(t) for t in distinct]
    srs = np.array([r["sr_period"] for r in results if "sr_period" in r], dtype="float64")
    dsr = None
    if len(ev.returns) >= 3:
        variance = float(srs.var(ddof=1)) if srs.size > 1 else 0.0
        dsr = deflated_sharpe_from_returns(ev.returns.to_numpy(), n_trials=max(1, len(distinct)),
                                           trials_sharpe_variance=variance)
    with_moments = [r["moments"] for r in results if "moments" in r]
    pbo = None
    if len(with_moments) >= 2:
        pbo = pbo_from_block_moments(BlockMoments.from_columns(with_moments))
    pareto = list(study.best_trials) if spec.multi_objective else [best]
    return StudyOutcome(
        study=study, spec=spec, name=study_name, storage_url=storage_url, best_params=ev.params,
        best_values=list(best.values), best_stats={k: float(v) for k, v in ev.stats.items() if is_number(v)},
        dsr=dsr, pbo=pbo, n_complete=len(complete), n_distinct=len(distinct),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials), pareto=pareto,
        backtest_seconds=0.0, trial_seconds=0.0, wall_seconds=0.0, best_returns=ev.returns,
    )
