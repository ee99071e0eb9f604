"""Optimisation: Optuna studies over a strategy's declared parameter ranges, walk-forward validation,
overfitting statistics (Deflated Sharpe Ratio, PBO) and a parameter-decay check.

See ``docs/optimize.md`` for the walkthrough and ``thunes optimize --help`` for the command.
"""

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
from thunes.optimize.storage import DEFAULT_STORAGE, StorageOptions, normalize_storage_url, open_storage
from thunes.optimize.walk_forward import Fold, walk_forward_folds

__all__ = [
    "BlockMoments",
    "DEFAULT_STORAGE",
    "DeflatedSharpe",
    "Fold",
    "PBOResult",
    "StorageOptions",
    "block_moments",
    "deflated_sharpe",
    "deflated_sharpe_from_returns",
    "expected_max_sharpe",
    "normalize_storage_url",
    "open_storage",
    "pbo_from_block_moments",
    "probability_of_backtest_overfitting",
    "walk_forward_folds",
]
