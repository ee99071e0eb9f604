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

Speed (issue 8: a trial's time should go to the backtest, not to overhead): trials backtest through a
prepared handle (:func:`thunes.optimize._evaluate.prepare`, built once per evaluator: validated candles,
kernel inputs, option vector) and take their metrics from the kernel's statistics, with the same
numbers as ``run_backtest``; and a study in a SQLite file runs in memory and is written to the file in
batches of finished trials (:class:`_WriteBehind`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from thunes.core.errors import ConfigError, InsufficientData, StoreError, StrategyError
from thunes.optimize import _evaluate
from thunes.optimize._data import candles_fingerprint
from thunes.optimize.overfitting import (
    BlockMoments,
    DeflatedSharpe,
    PBOResult,
    block_moments,
    deflated_sharpe_from_returns,
    pbo_from_block_moments,
    sharpe_per_period,
)
from thunes.optimize.storage import StorageOptions, fail_orphaned_trials, open_storage, redact_url
from thunes.strategies import Strategy

__all__ = [
    "Objective",
    "parse_objectives",
    "SearchParam",
    "search_space",
    "StudySpec",
    "TrialEvaluator",
    "StudyOutcome",
    "run_study",
    "load_study",
    "summarize_study",
    "default_study_name",
    "Recommendation",
    "recommend",
    "SPEC_ATTR",
    "RESULT_ATTR",
    "trial_result",
    "optimize_quota",
    "n_complete",
]

SPEC_ATTR = "thunes_spec"
RESULT_ATTR = "thunes"
Direction = Literal["maximize", "minimize"]

# Direction of the metrics the backtester reports (thunes.backtest.metrics); "name:min" / "name:max"
# overrides it. max_drawdown is reported as a positive fraction (0.25 = 25 % below the peak).
_DIRECTIONS: dict[str, Direction] = {
    "sharpe": "maximize", "sortino": "maximize", "calmar": "maximize", "total_return": "maximize",
    "annual_return": "maximize", "annualized_return": "maximize", "cagr": "maximize", "win_rate": "maximize",
    "profit_factor": "maximize", "expectancy": "maximize", "final_equity": "maximize",
    "max_drawdown": "minimize", "max_drawdown_duration": "minimize", "fees": "minimize", "fees_paid": "minimize",
    "turnover": "minimize", "exposure": "minimize",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Objective:
    """One metric of the backtest stats to optimise, and which way."""

    metric: str
    direction: Direction

    def __str__(self) -> str:
        return f"{self.metric}:{'max' if self.direction == 'maximize' else 'min'}"


def parse_objectives(spec: str | Sequence[str]) -> tuple[Objective, ...]:
    """``"sharpe,max_drawdown"`` or ``["sharpe:max", "fees:min"]`` → objectives with directions."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise ConfigError("give at least one objective, e.g. --objectives sharpe")
    out = []
    for item in items:
        name, _, way = item.partition(":")
        if way:
            if way not in ("max", "min", "maximize", "minimize"):
                raise ConfigError(f"objective {item!r}: direction must be max or min")
            direction: Direction = "maximize" if way.startswith("max") else "minimize"
        elif name in _DIRECTIONS:
            direction = _DIRECTIONS[name]
        else:
            known = ", ".join(sorted(_DIRECTIONS))
            raise ConfigError(f"objective {name!r} has no known direction; write {name}:max or {name}:min "
                              f"(known metrics: {known})")
        out.append(Objective(metric=name, direction=direction))
    if len({o.metric for o in out}) != len(out):
        raise ConfigError(f"objectives repeat a metric: {items}")
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchParam:
    """One searched parameter as Optuna samples it."""

    name: str
    kind: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices or ()))
        if self.kind == "int":
            step = 1 if self.log else int(self.step or 1)
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        step = None if self.log else self.step
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=step, log=self.log)


def search_space(
    strategy_cls: type[Strategy],
    *,
    fixed: Mapping[str, Any] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, SearchParam]:
    """The searched parameters of ``strategy_cls``: numeric ones with a declared range and those with
    ``choices``. Booleans and free strings keep their default unless fixed. ``fixed`` removes names from
    the search; ``ranges`` narrows (or widens, within nothing) a numeric range."""
    fixed = dict(fixed or {})
    ranges = dict(ranges or {})
    spec = strategy_cls.param_space()
    for name in [*fixed, *ranges]:
        if name not in spec:
            strategy_cls(**{name: None})  # raises StrategyError with the "did you mean" hint
    out: dict[str, SearchParam] = {}
    for name, p in spec.items():
        if name in fixed:
            continue
        if p.choices is not None:
            out[name] = SearchParam(name=name, kind="categorical", choices=tuple(p.choices))
        elif p.type in (int, float) and p.low is not None and p.high is not None:
            low, high = ranges.get(name, (p.low, p.high))
            low, high = p.validate(low), p.validate(high)  # a range outside the declared one is refused
            if low > high:
                raise ConfigError(f"range of {name!r}: low {low} is above high {high}")
            out[name] = SearchParam(
                name=name, kind="int" if p.type is int else "float", low=low, high=high,
                step=p.step, log=bool(p.log),
            )
    if not out:
        raise ConfigError(f"strategy {strategy_cls.name!r} has nothing to search (every parameter is fixed)")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySpec:
    """Everything a worker needs to evaluate a trial exactly as the study's creator does."""

    strategy: str
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    objectives: tuple[Objective, ...] = (Objective(metric="sharpe", direction="maximize"),)
    sampler: Literal["tpe", "nsga2"] = "tpe"
    seed: int | None = 42
    fixed_params: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    backtest: Mapping[str, Any] = field(default_factory=dict)  # BacktestOptions fields (JSON values)
    n_blocks: int = 16
    # The data window: where the candles come from and [start, end) in epoch ms, with a fingerprint.
    data_source: str = "sample"
    start_ms: int | None = None
    end_ms: int | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.sampler not in ("tpe", "nsga2"):
            raise ConfigError(f"sampler must be tpe or nsga2, not {self.sampler!r}")
        if self.n_blocks < 2 or self.n_blocks % 2:
            raise ConfigError(f"n_blocks (CSCV) must be an even number >= 2, got {self.n_blocks}")

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def strategy_class(self) -> type[Strategy]:
        from thunes.strategies.loader import resolve_strategy

        return resolve_strategy(self.strategy)

    def for_window(self, candles: pd.DataFrame, data_source: str) -> "StudySpec":
        """This spec bound to a candle window (recorded so workers can check they load the same)."""
        from thunes.core.candles import ts_ms

        ts = ts_ms(candles)
        if len(ts) == 0:
            raise InsufficientData(f"no {self.symbol} {self.timeframe} candles to optimise on")
        return _replace(self, data_source=data_source, start_ms=int(ts[0]), end_ms=int(ts[-1]) + 1,
                        fingerprint=candles_fingerprint(candles))

    def to_json(self) -> str:
        return json.dumps({
            "strategy": self.strategy, "symbol": self.symbol, "timeframe": self.timeframe,
            "objectives": [str(o) for o in self.objectives], "sampler": self.sampler, "seed": self.seed,
            "fixed_params": dict(self.fixed_params), "ranges": {k: list(v) for k, v in self.ranges.items()},
            "backtest": dict(self.backtest), "n_blocks": self.n_blocks, "data_source": self.data_source,
            "start_ms": self.start_ms, "end_ms": self.end_ms, "fingerprint": self.fingerprint,
        }, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "StudySpec":
        d = json.loads(text)
        d["objectives"] = parse_objectives(d["objectives"])
        d["ranges"] = {k: tuple(v) for k, v in d.get("ranges", {}).items()}
        return cls(**d)


def _replace(spec: StudySpec, **changes: Any) -> StudySpec:
    from dataclasses import replace

    return replace(spec, **changes)


def default_study_name(strategy: str, symbol: str, timeframe: str, sampler: str, objectives: Sequence[Objective]) -> str:
    metrics = "-".join(o.metric for o in objectives)
    return f"{strategy}_{symbol.replace('/', '').upper()}_{timeframe}_{sampler}_{metrics}"


def _make_sampler(spec: StudySpec, salt: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler. ``salt`` (worker index, trials already in the study) varies the seed: a
    resumed run or a second worker seeded like the first would re-propose the same random start-up
    trials, which would all be duplicates. Runs stay reproducible for a given history."""
    seed = None if spec.seed is None else (spec.seed * 1_000_003 + salt) % 2**31
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    # constant_liar: parallel workers see running trials as pending and spread out instead of repeating.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True, constant_liar=True)


def reseed(study: optuna.Study, spec: StudySpec, worker_index: int = 0) -> None:
    """Give ``study`` a sampler seeded for this worker and the study's current length."""
    study.sampler = _make_sampler(spec, salt=7919 * worker_index + len(study.get_trials(deepcopy=False)))


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
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}"
        self._seen = _EvaluatedParams()
        self._prepared: _evaluate.PreparedCandles | None = None
        self.backtest_seconds = 0.0  # time spent inside the backtester by this process (benchmark)
        self.trial_seconds = 0.0

    @property
    def prepared(self) -> _evaluate.PreparedCandles:
        """The candles validated and turned into kernel inputs once, for every trial of this evaluator."""
        if self._prepared is None:
            self._prepared = _evaluate.prepare(self.candles, self.options, self.spec.symbol, self.spec.timeframe)
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
                                  f"{', '.join(sorted(k for k, v in stats.items() if _is_number(v)))}")
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
        quick = _evaluate.run_prepared(prepared, strategy)
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
            "stats": {k: float(v) for k, v in quick.stats.items() if _is_number(v) and math.isfinite(float(v))},
        }
        if returns.size >= self.spec.n_blocks:
            result["moments"] = block_moments(returns, self.spec.n_blocks).column(0)
        trial.set_user_attr(RESULT_ATTR, result)
        self._seen.add(trial.number, params, values, result)
        self.trial_seconds += time.perf_counter() - t_start
        return values if self.spec.multi_objective else values[0]


class _EvaluatedParams:
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

    def add(self, number: int, params: Mapping[str, Any], values: Sequence[float], result: Mapping[str, Any]) -> None:
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

    def find(self, trial: optuna.Trial, params: Mapping[str, Any]) -> tuple[int, list[float], dict[str, Any]] | None:
        if self._frontier < trial.number:
            self._refresh(trial.study)
        return self._by_params.get(self._key(params))


def trial_result(trial: FrozenTrial) -> dict[str, Any]:
    """What :class:`TrialEvaluator` stored on a trial (worker, per-bar Sharpe, stats, block moments)."""
    return dict(trial.user_attrs.get(RESULT_ATTR, {}))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------- running


def _create_or_load(spec: StudySpec, storage_url: str, study_name: str, storage_options: StorageOptions | None
                    ) -> optuna.Study:
    storage = open_storage(storage_url, options=storage_options)
    study = optuna.create_study(
        storage=storage, study_name=study_name, sampler=_make_sampler(spec), load_if_exists=True,
        directions=spec.directions,
    )
    existing = study.user_attrs.get(SPEC_ATTR)
    if existing is None:
        study.set_user_attr(SPEC_ATTR, spec.to_json())
    else:
        old = StudySpec.from_json(existing)
        # The same candles (same window and fingerprint) read from another place, e.g. the samples first
        # and the store after `thunes data import`, give the same objective: the study goes on.
        if old != spec and old != _replace(spec, data_source=old.data_source):
            raise ConfigError(
                f"study {study_name!r} in {redact_url(storage_url)} was created with different settings "
                f"({_spec_diff(old, spec)}); choose another --study name or delete that study"
            )
    return study


def _spec_diff(old: StudySpec, new: StudySpec) -> str:
    a, b = json.loads(old.to_json()), json.loads(new.to_json())
    return "; ".join(f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def load_study(storage_url: str, study_name: str, *, storage_options: StorageOptions | None = None
               ) -> tuple[optuna.Study, StudySpec]:
    """An existing study and its spec (for workers, reports and the decay check)."""
    storage = open_storage(storage_url, options=storage_options)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name not in names:
        listed = ", ".join(names) or "none"
        raise ConfigError(f"no study {study_name!r} in {redact_url(storage_url)} (studies: {listed})")
    study = optuna.load_study(study_name=study_name, storage=storage)
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise ConfigError(f"study {study_name!r} was not created by thunes (it has no {SPEC_ATTR} attribute)")
    spec = StudySpec.from_json(raw)
    reseed(study, spec)
    return study, spec


def n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


class _WriteBehind:
    """A SQLite study run in memory and copied to its file in batches (finished trials only).

    Why: Optuna's relational storage issues about 57 SQL statements per trial (creating it, every
    ``suggest``, the sampler reading the trials back, the heartbeat, the result), which made a SQLite
    study several times slower than the same study in memory, and the backtest a small part of a trial
    (issue 8). SQLite allows one writer, so a study in a SQLite file has one worker: this process. The
    trials then run against an in-memory copy of the study (same trial numbers, same sampler), and every
    ``flush_every_s`` seconds, and when the run ends or is interrupted, the finished trials are appended
    to the file, one transaction each.

    What it changes: a crash (power cut, ``kill -9``) loses at most the last ``flush_every_s`` seconds of
    trials, which the resumed study runs again; a trial is never left RUNNING in the file, so no
    heartbeat is needed. Before each write it checks that nobody else added trials to the study meanwhile
    (a second process on the same file) and stops with an error instead of mixing trial numbers.
    """

    def __init__(self, study: optuna.Study, *, flush_every_s: float = 1.0) -> None:
        self.target = study
        self.flush_every_s = flush_every_s
        mirror = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=study.sampler,
                                     directions=study.directions, study_name=study.study_name)
        for key, value in study.user_attrs.items():
            mirror.set_user_attr(key, value)
        for key, value in study._storage.get_study_system_attrs(study._study_id).items():  # e.g. NSGA-II's
            mirror._storage.set_study_system_attr(mirror._study_id, key, value)
        existing = study.get_trials(deepcopy=False)
        mirror.add_trials(existing)  # numbers 0..n-1, as in the file
        self.mirror = mirror
        self.flushed = len(existing)  # trials [0, flushed) are in the file
        self._last = time.monotonic()
        self.writes = 0

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        pending = []
        for t in self.mirror.get_trials(deepcopy=False)[self.flushed:]:
            if not t.state.is_finished():
                break  # keep the order: a later trial waits for this one
            pending.append(t)
        if not pending:
            return
        in_file = len(self.target._storage.get_all_trials(self.target._study_id, deepcopy=False))
        if in_file != self.flushed:
            raise StoreError(
                f"study {self.target.study_name!r}: another process added {in_file - self.flushed} trial(s) to "
                f"the SQLite file while this one ran; SQLite studies take one worker (use PostgreSQL with "
                f"--workers N to share a study); this run's last {len(pending)} trial(s) were not saved"
            )
        self.target.add_trials(pending)
        self.flushed += len(pending)
        self.writes += 1


def _writes_behind(study: optuna.Study) -> bool:
    """True for a study in a SQLite file (one writer: see :class:`_WriteBehind`)."""
    backend = getattr(study._storage, "_backend", study._storage)
    return isinstance(backend, optuna.storages.RDBStorage) and backend.engine.url.get_backend_name() == "sqlite"


def optimize_quota(
    study: optuna.Study,
    evaluator: TrialEvaluator,
    quota: int,
    *,
    on_trial: Callable[[int], None] | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    flush_every_s: float = 1.0,
) -> int:
    """Run trials until this process has completed ``quota`` of them; returns how many it completed.
    ``on_trial(completed_so_far)`` is called after every trial.

    Pruned (invalid) trials do not count, but at most ``3 × quota + 10`` trials are attempted so a space
    that is mostly invalid cannot loop for ever. A study in a SQLite file runs in memory and is written
    to the file every ``flush_every_s`` seconds and at the end (:class:`_WriteBehind`); the callbacks
    then see the in-memory study."""
    done = 0
    limit = 3 * quota + 10
    behind = _WriteBehind(study, flush_every_s=flush_every_s) if _writes_behind(study) else None
    running = behind.mirror if behind is not None else study

    def count(_: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal done
        done += trial.state == TrialState.COMPLETE
        if behind is not None:
            behind.maybe_flush()
        if on_trial is not None:
            on_trial(done)
        if done >= quota:
            running.stop()

    quiet = _QuietInterrupt()
    # A logger's filters see only the records logged on it: Optuna reports trials from its _optimize module.
    loggers = [logging.getLogger(name) for name in ("optuna.study._optimize", "optuna")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        running.optimize(evaluator, n_trials=limit, callbacks=[count, *callbacks], catch=())
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
        if behind is not None:
            behind.flush()  # on Ctrl-C too: the finished trials are kept and the next run resumes them
    return done


class _QuietInterrupt(logging.Filter):
    """Drop Optuna's report of a trial stopped by Ctrl-C (a warning with the whole traceback, then "failed
    with value None"): the trial is recorded as failed in the study, and the interrupt itself reaches
    the caller, which says in one line what was kept."""

    def __init__(self) -> None:
        super().__init__()
        self._interrupted: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if isinstance(exc, KeyboardInterrupt) or "KeyboardInterrupt" in message:
            self._interrupted.add(message.split(" failed", 1)[0])
            return False
        return message.split(" failed", 1)[0] not in self._interrupted


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
        raise ConfigError("--workers > 1 needs a server storage (postgresql://…): a 'memory' study lives in one "
                          "process")
    if workers > 1 and is_sqlite(storage_url):
        raise ConfigError("--workers > 1 needs a server storage (postgresql://…): SQLite allows one writer; "
                          "use --workers 1 or --storage postgresql://user@host/db")
    if spec.start_ms is None:
        raise ConfigError("bind the spec to its candles first: spec.for_window(candles, source)")
    t0 = time.perf_counter()
    study = _create_or_load(spec, storage_url, study_name, storage_options)
    fail_orphaned_trials(study, (storage_options or StorageOptions()).grace_period_s)
    reseed(study, spec)
    evaluator = TrialEvaluator(spec, candles, worker_id=f"{os.uname().nodename}:{os.getpid()}:0")
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

    procs = (_spawn_workers(storage_url, study_name, shares[1:], storage_options, store_url=store_url,
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
        for p, log in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        bar.close()
    failed = [(p, log) for p, log in procs if p.returncode not in (0, None)]
    if failed:
        p, log = failed[0]
        tail = Path(log).read_text(errors="replace")[-2000:]
        raise ConfigError(f"{len(failed)} optimize worker(s) failed (exit {p.returncode}); last output:\n{tail}")
    for _, log in procs:
        Path(log).unlink(missing_ok=True)
    outcome = summarize_study(study, spec, evaluator, storage_url=storage_url, study_name=study_name)
    return _replace_outcome(outcome, wall_seconds=time.perf_counter() - t0,
                            backtest_seconds=evaluator.backtest_seconds, trial_seconds=evaluator.trial_seconds)


def _replace_outcome(outcome: StudyOutcome, **changes: Any) -> StudyOutcome:
    from dataclasses import replace

    return replace(outcome, **changes)


def _progress(total: int, initial: int, desc: str, *, enabled: bool):  # noqa: ANN202 - tqdm
    from thunes.progress import progress_bar

    return progress_bar(total=total, initial=min(initial, total), desc=desc, unit="trial", enabled=enabled)


def _spawn_workers(storage_url: str, study_name: str, shares: Sequence[int], storage_options: StorageOptions | None,
                   *, store_url: str | None = None, sample_dir: str | Path | None = None
                   ) -> list[tuple[subprocess.Popen, str]]:
    procs = []
    opts = storage_options or StorageOptions()
    for i, share in enumerate(shares, start=1):
        if share <= 0:
            continue
        fd, log = tempfile.mkstemp(prefix="thunes-optimize-worker-", suffix=".log")
        cmd = [sys.executable, "-m", "thunes.optimize.worker", "--storage", storage_url, "--study", study_name,
               "--trials", str(share), "--worker-index", str(i),
               "--heartbeat", str(opts.heartbeat_interval_s), "--grace", str(opts.grace_period_s)]
        if store_url:
            cmd += ["--store-url", store_url]
        if sample_dir:
            cmd += ["--sample-dir", str(sample_dir)]
        procs.append((subprocess.Popen(cmd, stdout=fd, stderr=subprocess.STDOUT), log))
        os.close(fd)
    return procs


# ---------------------------------------------------------------------------------------------- summary


def _best_trial(study: optuna.Study, spec: StudySpec) -> FrozenTrial:
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
    best = _best_trial(study, spec)
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
        best_values=list(best.values), best_stats={k: float(v) for k, v in ev.stats.items() if _is_number(v)},
        dsr=dsr, pbo=pbo, n_complete=len(complete), n_distinct=len(distinct),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials), pareto=pareto,
        backtest_seconds=0.0, trial_seconds=0.0, wall_seconds=0.0, best_returns=ev.returns,
    )


# ---------------------------------------------------------------------------------------------- decision


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """Deploy or not, and why (each check with its value and threshold)."""

    deploy: bool
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        verdict = "DEPLOY" if self.deploy else "DO NOT DEPLOY"
        return f"{verdict}: " + "; ".join(self.reasons)


def recommend(*, oos_sharpe: float | None, dsr: float | None, min_sharpe: float, min_dsr: float) -> Recommendation:
    """Deploy only when the out-of-sample Sharpe exceeds ``min_sharpe`` and the DSR reaches ``min_dsr``."""
    reasons = []
    ok = True
    if oos_sharpe is None or not math.isfinite(oos_sharpe):
        ok = False
        reasons.append("no out-of-sample Sharpe (run with --walk-forward rolling|anchored)")
    elif oos_sharpe > min_sharpe:
        reasons.append(f"out-of-sample Sharpe {oos_sharpe:.2f} > {min_sharpe:g}")
    else:
        ok = False
        reasons.append(f"out-of-sample Sharpe {oos_sharpe:.2f} <= {min_sharpe:g}")
    if dsr is None or not math.isfinite(dsr):
        ok = False
        reasons.append("no Deflated Sharpe Ratio")
    elif dsr >= min_dsr:
        reasons.append(f"DSR {dsr:.3f} >= {min_dsr:g}")
    else:
        ok = False
        reasons.append(f"DSR {dsr:.3f} < {min_dsr:g}")
    return Recommendation(deploy=ok, reasons=tuple(reasons))
