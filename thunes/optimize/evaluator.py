"""The objective function of a study: parameters -> backtest -> metric values (plus the trial's record).

Each trial builds the strategy, runs the backtester (fees, slippage and risk limits on, exactly as
``thunes backtest`` runs it) and returns the requested metrics: one objective for TPE, several for
NSGA-II. Speed (a trial's time should go to the backtest, not to overhead): trials backtest
through the backtester's prepared handle (:class:`thunes.backtest.PreparedBacktest`, built once per
evaluator: validated candles, kernel inputs, option vector, gap flags per signal window) and take their
metrics from the kernel's statistics and trade records, with the same numbers as ``run_backtest``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from thunes.backtest import PreparedBacktest
from thunes.core.errors import ConfigError, StrategyError
from thunes.optimize import _evaluate
from thunes.optimize.overfitting import block_moments, sharpe_per_period
from thunes.optimize.spec import StudySpec, search_space
from thunes.optimize.trials import RESULT_ATTR, EvaluatedParams, is_number
from thunes.optimize.trials import worker_id as local_worker_id

__all__ = ["Evaluation", "TrialEvaluator"]

@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """One backtest of one parameter set."""

    params: dict[str, Any]
    stats: dict[str, Any]
    returns: pd.Series
    equity: pd.Series
    trades: pd.DataFrame
    backtest_s: float


class TrialEvaluator:
    """The objective function: parameters → backtest → metric values (plus stored trial attributes)."""

    def __init__(self, spec: StudySpec, candles: pd.DataFrame, *, worker_id: str | None = None) -> None:
        self.spec = spec
        self.candles = candles
        self.strategy_cls = spec.strategy_class()
        self.space = search_space(self.strategy_cls, fixed=spec.fixed_params, ranges=spec.ranges)
        self.options = _evaluate.make_options(spec.backtest)
        self.worker_id = worker_id or local_worker_id()
        self._seen = EvaluatedParams()
        self._prepared: PreparedBacktest | None = None
        self.backtest_seconds = 0.0  # time spent inside the backtester by this process (benchmark)
        self.trial_seconds = 0.0

    @property
    def prepared(self) -> PreparedBacktest:
        """The candles validated and turned into kernel inputs once, for every trial of this evaluator."""
        if self._prepared is None:
            self._prepared = PreparedBacktest.from_candles(
                self.candles, self.options, symbol=self.spec.symbol, timeframe=self.spec.timeframe)
        return self._prepared

    def evaluate(self, params: Mapping[str, Any]) -> Evaluation:
        """Backtest one complete parameter set (searched + fixed) on this evaluator's candles."""
        strategy = self.strategy_cls(**{**dict(self.spec.fixed_params), **dict(params)})
        t0 = time.perf_counter()
        stats, equity, trades = _evaluate.run(self.candles, strategy, self.options, self.spec.symbol,
                                              self.spec.timeframe)
        elapsed = time.perf_counter() - t0
        self.backtest_seconds += elapsed
        returns = _evaluate.bar_returns(equity, self.options.initial_cash)
        return Evaluation(params=strategy.params, stats=stats, returns=returns, equity=equity, trades=trades,
                          backtest_s=elapsed)

    def _values(self, stats: Mapping[str, Any]) -> list[float]:
        values = []
        for o in self.spec.objectives:
            if o.metric not in stats:
                raise ConfigError(f"objective {o.metric!r} is not a backtest metric; available: "
                                  f"{', '.join(sorted(k for k, v in stats.items() if is_number(v)))}")
            v = float(stats[o.metric])
            # No trades gives an undefined Sharpe ratio: count it as 0, not as a failed trial.
            values.append(v if math.isfinite(v) else 0.0)
        return values

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        try:
            return self._run_trial(trial)
        finally:
            # This process knows how the trial ended (complete, pruned or failed) without asking the storage.
            self._seen.mark_final(trial.number)

    def _run_trial(self, trial: optuna.Trial) -> float | list[float]:
        t_start = time.perf_counter()
        params = {name: p.suggest(trial) for name, p in self.space.items()}
        try:
            strategy = self.strategy_cls(**{**dict(self.spec.fixed_params), **params})
        except StrategyError as exc:
            # Parameter combinations the strategy refuses (fast >= slow) are pruned, not failed.
            trial.set_user_attr(RESULT_ATTR, {"worker": self.worker_id, "invalid": str(exc)})
            raise optuna.TrialPruned(str(exc)) from None
        earlier = self._seen.find(trial, params)
        if earlier is not None:
            number, values, old = earlier
            trial.set_user_attr(RESULT_ATTR, {
                "worker": self.worker_id, "duplicate_of": number,
                **{k: old[k] for k in ("sr_period", "n_obs", "n_trades") if k in old},
            })
            return list(values) if self.spec.multi_objective else values[0]
        # The prepared path: the same metrics as `evaluate` (tested bit for bit), without rebuilding the
        # parameter-independent inputs, the trade DataFrame and the equity Series on every trial.
        prepared = self.prepared
        t0 = time.perf_counter()
        quick = prepared.quick(strategy)
        elapsed = time.perf_counter() - t0
        self.backtest_seconds += elapsed
        returns = _evaluate.bar_returns_array(quick.equity, self.options.initial_cash)
        values = self._values(quick.stats)
        # One attribute write per trial: every write is a database round trip.
        result: dict[str, Any] = {
            "worker": self.worker_id,
            "sr_period": sharpe_per_period(returns),
            "n_obs": int(returns.size),
            "n_trades": quick.n_trades,
            "backtest_s": round(elapsed, 6),
            "stats": {k: float(v) for k, v in quick.stats.items()
                      if is_number(v) and math.isfinite(float(v))},
        }
        if returns.size >= self.spec.n_blocks:
            result["moments"] = block_moments(returns, self.spec.n_blocks).column(0)
        trial.set_user_attr(RESULT_ATTR, result)
        self._seen.add(trial.number, params, values, result)
        self.trial_seconds += time.perf_counter() - t_start
        return values if self.spec.multi_objective else values[0]
