"""What a trial of a thunes study records, and how a repeated parameter set is found without a query.

Every completed trial stores, as one user attribute (``RESULT_ATTR``), what the overfitting statistics
need later without re-running it: its per-bar Sharpe ratio (for the variance term of the Deflated Sharpe
Ratio) and the moments of its return series over ``n_blocks`` consecutive blocks (for PBO by CSCV).
Trials whose parameters were already evaluated are not backtested again (:class:`EvaluatedParams`); they
reuse the earlier values and are marked ``duplicate_of`` (TPE proposes repeats on integer grids), and
they do not count as separate trials in the statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["RESULT_ATTR", "EvaluatedParams", "is_number", "n_complete", "trial_result", "worker_id"]

RESULT_ATTR = "thunes"


def worker_id(index: int | None = None) -> str:
    """``host:pid[:index]``: which process ran a trial (stored in the trial's record)."""
    base = f"{os.uname().nodename}:{os.getpid()}"
    return base if index is None else f"{base}:{index}"


def trial_result(trial: FrozenTrial) -> dict[str, Any]:
    """What :class:`TrialEvaluator` stored on a trial (worker, per-bar Sharpe, stats, block moments)."""
    return dict(trial.user_attrs.get(RESULT_ATTR, {}))


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


class EvaluatedParams:
    """Completed parameter sets of a study, kept in this process so a repeat is found without a query.

    Why: asking the storage for every completed trial on every trial cost a SQLite study about a third of
    its time. The view is refreshed from the storage only when a trial number below the current one has
    an outcome this process has not seen (another worker's trial, or a study resumed from storage); with
    one worker that is once per run.
    """

    def __init__(self) -> None:
        self._by_params: dict[str, tuple[int, list[float], dict[str, Any]]] = {}
        self._final: set[int] = set()
        self._frontier = 0  # every trial number below it has a known outcome
        self.refreshes = 0

    @staticmethod
    def _key(params: Mapping[str, Any]) -> str:
        return json.dumps(params, sort_keys=True, default=str)

    def _advance(self) -> None:
        while self._frontier in self._final:
            self._final.discard(self._frontier)
            self._frontier += 1

    def mark_final(self, number: int) -> None:
        if number >= self._frontier:
            self._final.add(number)
            self._advance()

    def add(self, number: int, params: Mapping[str, Any], values: Sequence[float],
            result: Mapping[str, Any]) -> None:
        key = self._key(params)
        known = self._by_params.get(key)
        if known is None or number < known[0]:  # the earliest trial is the original
            self._by_params[key] = (number, list(values), dict(result))

    def _refresh(self, study: optuna.Study) -> None:
        self.refreshes += 1
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        for t in study.get_trials(deepcopy=False, states=finished):
            if t.state == TrialState.COMPLETE and "duplicate_of" not in trial_result(t):
                self.add(t.number, t.params, t.values, trial_result(t))
            self.mark_final(t.number)

    def find(self, trial: optuna.Trial, params: Mapping[str, Any]
             ) -> tuple[int, list[float], dict[str, Any]] | None:
        if self._frontier < trial.number:
            self._refresh(trial.study)
        return self._by_params.get(self._key(params))
