"""Backtest, optimisation and training runs as background-task bodies (see :mod:`thunes.services.tasks`).

Each request is a frozen value; ``*_task(request, settings)`` returns the body a
:class:`~thunes.services.tasks.TaskRegistry` runs. The work is the same code as the CLI's
(:func:`thunes.backtest.run_backtest`, :func:`thunes.optimize.study.run_study`,
:func:`thunes.ml.train.train_model`); artifacts go where the CLI puts them, each run in its own folder
``api-<task id>`` (backtest) or its own study name, so :mod:`thunes.services.catalog` lists them.

Cancel: a backtest checks before and after the (single, fast) engine call; a study stops after the trial
in progress (Optuna's ``study.stop()`` from a trial callback); training runs in a child process that is
terminated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from thunes.core.errors import ConfigError
from thunes.services.tasks import TaskContext

__all__ = ["BacktestJob", "OptimizeJob", "TrainJob", "backtest_task", "optimize_task", "train_task"]

Source = Literal["auto", "store", "sample"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestJob:
    strategy: str
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    params: dict[str, Any] = field(default_factory=dict)
    since: str | None = None
    until: str | None = None
    source: Source = "auto"
    report: bool = True


def _candles(settings: Any, symbol: str, timeframe: str, source: str, since: str | None, until: str | None) -> Any:
    from thunes.optimize._data import load_study_candles

    return load_study_candles(symbol, timeframe, source=source, store_url=settings.data.url, since=since,
                              until=until, sample_dir=settings.data.sample_dir)


def backtest_task(job: BacktestJob, settings: Any) -> Callable[[TaskContext], dict[str, Any]]:
    from thunes.strategies import get_strategy

    strat = get_strategy(job.strategy)(**job.params)  # an unknown strategy/parameter fails now, not in the task

    def body(ctx: TaskContext) -> dict[str, Any]:
        from thunes.backtest import BacktestOptions, run_backtest
        from thunes.backtest.artifacts import write_artifacts
        from thunes.backtest.report import write_report

        ctx.update(0.05, "loading candles")
        data = _candles(settings, job.symbol.upper(), job.timeframe, job.source, job.since, job.until)
        ctx.check_cancel()
        ctx.update(0.3, f"backtesting {len(data.frame)} candles")
        options = BacktestOptions.from_settings(settings.backtest, settings.risk)
        result = run_backtest(data.frame, strat, options=options, symbol=job.symbol.upper(), timeframe=job.timeframe)
        ctx.check_cancel()
        ctx.update(0.8, "writing artifacts")
        folder = Path(settings.backtest.artifacts_dir) / f"api-{ctx.task_id}"
        paths = write_artifacts(result, folder)
        if job.report:
            paths["report"] = write_report(result, folder)
        run_id = str(paths["run"].relative_to(Path(settings.backtest.artifacts_dir)).with_suffix(""))
        stats = {k: v for k, v in result.stats.items() if isinstance(v, (int, float, str)) or v is None}
        return {"run_id": run_id, "candles": len(data.frame), "source": data.description,
                "settings_hash": result.settings_hash, "stats": _finite(stats)}

    return body


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    import math

    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizeJob:
    strategy: str
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    trials: int = 20
    objectives: str = "sharpe"
    params: dict[str, Any] = field(default_factory=dict)  # fixed (not searched)
    since: str | None = None
    until: str | None = None
    source: Source = "auto"
    seed: int = 42


def optimize_task(job: OptimizeJob, settings: Any) -> Callable[[TaskContext], dict[str, Any]]:
    from thunes.optimize.study import parse_objectives
    from thunes.strategies import get_strategy

    cls = get_strategy(job.strategy)
    objs = parse_objectives(job.objectives)
    if len(objs) > 1:
        raise ConfigError("a background study optimises one objective (TPE); run `thunes optimize --sampler nsga2` "
                          "for several")
    if not 1 <= job.trials <= 10_000:
        raise ConfigError(f"trials must be between 1 and 10000, got {job.trials}")
    space = cls.param_space()
    for name in job.params:
        if name not in space:
            cls(**{name: job.params[name]})  # StrategyError with a "did you mean" hint
    fixed = {k: space[k].validate(v) for k, v in job.params.items()}

    def body(ctx: TaskContext) -> dict[str, Any]:
        from thunes.backtest import BacktestOptions
        from thunes.optimize import _evaluate
        from thunes.optimize.report import write_artifacts
        from thunes.optimize.study import StudySpec, n_complete, recommend, run_study

        ctx.update(0.02, "loading candles")
        data = _candles(settings, job.symbol.upper(), job.timeframe, job.source, job.since, job.until)
        options = BacktestOptions.from_settings(settings.backtest, settings.risk)
        spec = StudySpec(strategy=job.strategy, symbol=job.symbol.upper(),
                         timeframe=job.timeframe, objectives=objs, sampler="tpe", seed=job.seed, fixed_params=fixed,
                         ranges={}, backtest=_evaluate.options_to_json(options))
        bound = spec.for_window(data.frame, data.source)
        done = {"n": 0}

        def on_trial(study: Any, _trial: Any) -> None:
            done["n"] = n_complete(study)  # pruned trials do not count towards n_trials
            ctx.update(0.05 + 0.9 * done["n"] / job.trials, f"trial {done['n']}/{job.trials}")
            if ctx.cancelled:
                study.stop()

        name = f"api-{ctx.task_id}"
        outcome = run_study(bound, data.frame, n_trials=job.trials, storage_url="memory", study_name=name,
                            progress=False, callbacks=(on_trial,))
        ctx.check_cancel()
        opt = settings.optimize
        rec = recommend(oos_sharpe=None, dsr=outcome.dsr.dsr if outcome.dsr else None,
                        min_sharpe=opt.deploy_min_sharpe, min_dsr=opt.deploy_min_dsr)
        write_artifacts(outcome, None, rec, opt.artifacts_dir, data_description=data.description)
        return {"run_id": outcome.name, "trials": done["n"], "best_params": dict(outcome.best_params),
                "best_stats": _finite({k: v for k, v in outcome.best_stats.items() if isinstance(v, (int, float))}),
                "recommendation": str(rec)}

    return body


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainJob:
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    model: Literal["lstm", "xgb"] = "xgb"
    epochs: int = 5
    source: str = "auto"
    since: str | None = None
    until: str | None = None


def _train_in_child(job: TrainJob, data_settings: Any, ml: Any, folder: str) -> dict[str, Any]:
    from thunes.data.sources import CandleQuery, load_candles
    from thunes.ml.train import TrainOptions, train_model

    options = TrainOptions(model=job.model, seq_len=ml.seq_len, horizon=ml.horizon, hidden=ml.hidden,
                           num_layers=ml.num_layers, epochs=job.epochs, seed=ml.seed, device="cpu")
    loaded = load_candles(CandleQuery(symbol=job.symbol, timeframe=job.timeframe, source=job.source,
                                      since=job.since, until=job.until), data_settings)
    result = train_model(loaded.frame, options, symbol=job.symbol, timeframe=job.timeframe, out_dir=folder)
    return {"model": Path(folder).name, "path": folder, "samples": dict(result.meta.samples),
            "train_seconds": result.train_seconds}


def train_task(job: TrainJob, settings: Any) -> Callable[[TaskContext], dict[str, Any]]:
    if not 1 <= job.epochs <= 1000:
        raise ConfigError(f"epochs must be between 1 and 1000, got {job.epochs}")
    if job.model not in ("lstm", "xgb"):
        raise ConfigError(f"unknown model {job.model!r}: use 'lstm' or 'xgb'")

    def body(ctx: TaskContext) -> dict[str, Any]:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        folder = Path(settings.ml.artifacts_dir) / f"{job.symbol.replace('/', '')}_{job.timeframe}_{job.model}_{stamp}"
        ctx.update(0.05, "training in a child process")
        return ctx.run_process(_train_in_child, job, settings.data, settings.ml, str(folder))

    return body
