"""What a study is: its objectives, its search space (read from the strategy) and its :class:`StudySpec`.

The strategy class already declares every parameter's type, default and range
(:class:`thunes.strategies.Param`), so the search space is read from it, never written twice. The spec
(strategy, symbol, timeframe, objectives, fixed parameters, backtest options, data window and its
fingerprint) is stored in the study itself (``SPEC_ATTR``), so a worker started elsewhere with only the
storage URL and the study name evaluates exactly the same objective. The sampler is derived from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import optuna
import pandas as pd

from thunes.core.errors import ConfigError, InsufficientData
from thunes.optimize._data import candles_fingerprint
from thunes.strategies import Strategy

__all__ = [
    "SPEC_ATTR",
    "Direction",
    "Objective",
    "SearchParam",
    "StudySpec",
    "default_study_name",
    "make_sampler",
    "parse_objectives",
    "reseed",
    "search_space",
]

SPEC_ATTR = "thunes_spec"
Direction = Literal["maximize", "minimize"]

# Direction of the metrics the backtester reports (thunes.backtest.metrics); "name:min" / "name:max"
# overrides it. max_drawdown is reported as a positive fraction (0.25 = 25 % below the peak).
_DIRECTIONS: dict[str, Direction] = {
    "sharpe": "maximize", "sortino": "maximize", "calmar": "maximize", "total_return": "maximize",
    "annual_return": "maximize", "annualized_return": "maximize", "cagr": "maximize", "win_rate": "maximize",
    "profit_factor": "maximize", "expectancy": "maximize", "final_equity": "maximize",
    "max_drawdown": "minimize", "max_drawdown_duration": "minimize", "fees": "minimize",
    "fees_paid": "minimize",
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

    def for_window(self, candles: pd.DataFrame, data_source: str) -> StudySpec:
        """This spec bound to a candle window (recorded so workers can check they load the same)."""
        from thunes.core.candles import ts_ms

        ts = ts_ms(candles)
        if len(ts) == 0:
            raise InsufficientData(f"no {self.symbol} {self.timeframe} candles to optimise on")
        return replace(self, data_source=data_source, start_ms=int(ts[0]), end_ms=int(ts[-1]) + 1,
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
    def from_json(cls, text: str) -> StudySpec:
        d = json.loads(text)
        d["objectives"] = parse_objectives(d["objectives"])
        d["ranges"] = {k: tuple(v) for k, v in d.get("ranges", {}).items()}
        return cls(**d)


def default_study_name(strategy: str, symbol: str, timeframe: str, sampler: str,
                       objectives: Sequence[Objective]) -> str:
    metrics = "-".join(o.metric for o in objectives)
    return f"{strategy}_{symbol.replace('/', '').upper()}_{timeframe}_{sampler}_{metrics}"


def make_sampler(spec: StudySpec, salt: int = 0) -> optuna.samplers.BaseSampler:
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
    study.sampler = make_sampler(spec, salt=7919 * worker_index + len(study.get_trials(deepcopy=False)))
