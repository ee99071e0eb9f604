"""Optimise -> decide -> deploy, as one service (the bot's scheduled re-optimisation calls it).

:func:`optimise_and_decide` runs an Optuna study of a strategy on a candle window, the walk-forward that
gives the out-of-sample Sharpe, and the existing deploy rule (:func:`thunes.optimize.study.recommend`:
out-of-sample Sharpe above ``optimize.deploy_min_sharpe`` and Deflated Sharpe Ratio at least
``optimize.deploy_min_dsr``). With ``deployed_dir`` a DEPLOY verdict writes the parameters there
(:func:`thunes.optimize.decay.write_deployed`), as ``thunes optimize`` does. Nothing is printed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from thunes.core.errors import ConfigError

__all__ = ["OptimiseRequest", "OptimiseResult", "optimise_and_decide"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimiseRequest:
    strategy: str
    symbol: str
    timeframe: str
    candles: pd.DataFrame
    trials: int = 25
    folds: int = 3
    is_oos_ratio: float = 3.0
    fixed_params: Mapping[str, Any] | None = None
    ranges: Mapping[str, tuple[float, float]] | None = None  # narrower search ranges than the strategy's
    seed: int = 42
    storage_url: str = "memory"  # an in-process study: nothing to clean up
    deployed_dir: Path | None = None  # where a DEPLOY verdict writes the parameters (None: nowhere)
    data_source: str = "bot"


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimiseResult:
    best_params: dict[str, Any]
    deploy: bool
    reasons: tuple[str, ...]
    oos_sharpe: float | None
    dsr: float | None
    deployed_path: Path | None


def optimise_and_decide(request: OptimiseRequest, settings: Any) -> OptimiseResult:
    """Study + walk-forward + the deploy rule; ``settings`` is the global tree (backtest, risk, optimize)."""
    import optuna

    from thunes.backtest import BacktestOptions
    from thunes.optimize import _evaluate
    from thunes.optimize.decay import deployed_path, write_deployed
    from thunes.optimize.study import StudySpec, parse_objectives, recommend, run_study
    from thunes.optimize.walk_forward import run_walk_forward

    if request.trials < 1:
        raise ConfigError(f"trials must be >= 1, got {request.trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    options = BacktestOptions.from_settings(settings.backtest, settings.risk)
    spec = StudySpec(strategy=request.strategy, symbol=request.symbol, timeframe=request.timeframe,
                     objectives=parse_objectives("sharpe"), seed=request.seed,
                     fixed_params=dict(request.fixed_params or {}), ranges=dict(request.ranges or {}),
                     backtest=_evaluate.options_to_json(options))
    name = f"bot-{request.strategy}-{request.symbol.replace('/', '')}-{request.timeframe}"
    outcome = run_study(spec.for_window(request.candles, request.data_source), request.candles,
                        n_trials=request.trials, storage_url=request.storage_url, study_name=name, progress=False)
    wf = run_walk_forward(spec, request.candles, data_source=request.data_source, scheme="rolling",
                          n_folds=request.folds, is_oos_ratio=request.is_oos_ratio, n_trials=request.trials,
                          storage_url=request.storage_url, study_name=name, progress=False)
    dsr = outcome.dsr.dsr if outcome.dsr is not None else None
    opt = settings.optimize
    rec = recommend(oos_sharpe=wf.oos_sharpe, dsr=dsr, min_sharpe=opt.deploy_min_sharpe, min_dsr=opt.deploy_min_dsr)
    path = None
    if rec.deploy and request.deployed_dir is not None:
        path = write_deployed(deployed_path(request.deployed_dir, request.strategy, request.symbol, request.timeframe),
                              strategy=request.strategy, symbol=request.symbol, timeframe=request.timeframe,
                              params=outcome.best_params, study=name,
                              evidence={"oos_sharpe": wf.oos_sharpe, "dsr": dsr,
                                        "pbo": outcome.pbo.pbo if outcome.pbo else None})
    return OptimiseResult(best_params=dict(outcome.best_params), deploy=rec.deploy, reasons=rec.reasons,
                          oos_sharpe=wf.oos_sharpe, dsr=dsr, deployed_path=path)
