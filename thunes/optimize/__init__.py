"""Optimisation: Optuna studies over a strategy's declared parameter ranges, walk-forward validation,
overfitting statistics (Deflated Sharpe Ratio, PBO) and a parameter-decay check.

See ``docs/optimize.md`` for the walkthrough and ``thunes optimize --help`` for the command.
"""

from thunes.optimize.decay import DecayReport, check_decay, read_decay_flag, rolling_sharpe, write_decay_flag
from thunes.optimize.evaluator import TrialEvaluator
from thunes.optimize.overfitting import (
    BlockMoments,
    DeflatedSharpe,
    PBOResult,
    block_moments,
    deflated_sharpe,
    deflated_sharpe_from_returns,
    expected_max_sharpe,
    pbo_from_block_moments,
    probability_of_backtest_overfitting,
)
from thunes.optimize.spec import Objective, StudySpec, parse_objectives, search_space
from thunes.optimize.storage import DEFAULT_STORAGE, StorageOptions, normalize_storage_url, open_storage
from thunes.optimize.study import run_study
from thunes.optimize.study_io import load_study
from thunes.optimize.summary import StudyOutcome
from thunes.optimize.verdict import Recommendation, recommend
from thunes.optimize.walk_forward import (
    Fold,
    FoldResult,
    WalkForwardResult,
    run_walk_forward,
    walk_forward_folds,
)
from thunes.optimize.worker import run_worker

__all__ = [
    "DEFAULT_STORAGE",
    "BlockMoments",
    "DecayReport",
    "DeflatedSharpe",
    "Fold",
    "FoldResult",
    "Objective",
    "PBOResult",
    "Recommendation",
    "StorageOptions",
    "StudyOutcome",
    "StudySpec",
    "TrialEvaluator",
    "WalkForwardResult",
    "block_moments",
    "check_decay",
    "deflated_sharpe",
    "deflated_sharpe_from_returns",
    "expected_max_sharpe",
    "load_study",
    "normalize_storage_url",
    "open_storage",
    "parse_objectives",
    "pbo_from_block_moments",
    "probability_of_backtest_overfitting",
    "read_decay_flag",
    "recommend",
    "rolling_sharpe",
    "run_study",
    "run_walk_forward",
    "run_worker",
    "search_space",
    "walk_forward_folds",
    "write_decay_flag",
]
