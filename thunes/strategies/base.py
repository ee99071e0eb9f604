"""The strategy API: typed parameters and one vectorised, causal ``signals(candles)`` method.

A strategy is a small class. Its parameters are class attributes declared with :class:`Param`
(type, default, search range); ``Strategy(**params)`` validates them (an unknown name fails with a
"did you mean" hint, an out-of-range value names the range). ``signals(candles)`` turns a candle
frame into :class:`Signals` computed from each bar's *close*: entries/exits booleans, or a target
position. The same class runs unchanged in backtest, paper and live trading:

* the backtest engine executes a signal computed on bar t at bar t+1's open (the engine shifts,
  strategies never do), so a signal on the last bar never trades;
* the trader calls ``signals()`` on the trailing window (at least ``warmup`` bars) and acts on the
  last bar's signal at the next bar's open.

``signals`` must therefore be pure and causal: the value at bar t may depend only on bars <= t
(tests recompute signals on prefixes and assert that earlier values never change).

The smallest strategy::

    class SmaCross(Strategy):
        fast = Param(int, default=10, low=2, high=100)
        slow = Param(int, default=50, low=5, high=400)

        @property
        def warmup(self) -> int:
            return self.slow

        def signals(self, candles):
            f, s = sma(candles.close, self.fast), sma(candles.close, self.slow)
            return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import pandas as pd

from thunes.core.errors import StrategyError

__all__ = ["BarSignals", "CrossGrid", "Param", "Signals", "Strategy", "crossed_above", "crossed_below"]

T = TypeVar("T", int, float, bool, str)


@dataclass(frozen=True, slots=True)
class _Unset:
    pass


_UNSET: Any = _Unset()


class Param(Generic[T]):
    """A typed strategy parameter with a default and an (inclusive) search range.

    ``low``/``high`` bound numeric values; ``choices`` restricts to a closed set; ``step`` is the
    grid step optimisers use for ints/floats (``None``: 1 for ints, continuous for floats);
    ``log`` asks optimisers to sample on a log scale. Reading the attribute on an instance returns
    the validated value.
    """

    __slots__ = ("choices", "default", "doc", "high", "log", "low", "name", "step", "type")

    def __init__(
        self,
        type: type[T],  # noqa: A002 - mirrors the declaration Param(int, ...)
        *,
        default: T,
        low: T | None = None,
        high: T | None = None,
        choices: tuple[T, ...] | None = None,
        step: T | None = None,
        log: bool = False,
        doc: str = "",
    ) -> None:
        if type not in (int, float, bool, str):
            raise StrategyError(f"Param type must be int, float, bool or str, got {type!r}")
        self.type = type
        self.low = low
        self.high = high
        self.choices = tuple(choices) if choices is not None else None
        self.step = step
        self.log = log
        self.doc = doc
        self.name = "?"
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        # Validate the default eagerly so a broken declaration fails at import, not at run time.
        self.default = self.validate(self.default)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._values[self.name]

    def __set__(self, instance: Any, value: Any) -> None:
        raise StrategyError(f"parameter {self.name!r} is read-only; build a new strategy with with_params()")

    def validate(self, value: Any) -> T:
        """Coerce ``value`` to the declared type and check the range; raise StrategyError otherwise."""
        name = self.name
        try:
            if self.type is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    coerced: Any = low in ("true", "1", "yes")
                else:
                    coerced = bool(value)
            elif self.type is int:
                if isinstance(value, bool):
                    raise ValueError(value)
                as_float = float(value)
                if not math.isfinite(as_float) or as_float != int(as_float):
                    raise ValueError(value)
                coerced = int(as_float)
            elif self.type is float:
                coerced = float(value)
                if not math.isfinite(coerced):
                    raise ValueError(value)
            else:
                coerced = str(value)
        except (TypeError, ValueError):
            raise StrategyError(
                f"parameter {name!r} expects {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices is not None and coerced not in self.choices:
            raise StrategyError(f"parameter {name!r} = {coerced!r} is not one of {list(self.choices)}")
        if self.low is not None and coerced < self.low:  # type: ignore[operator]
            raise StrategyError(f"parameter {name!r} = {coerced!r} is below its range [{self.low}, {self.high}]")
        if self.high is not None and coerced > self.high:  # type: ignore[operator]
            raise StrategyError(f"parameter {name!r} = {coerced!r} is above its range [{self.low}, {self.high}]")
        return coerced

    def grid(self, n: int | None = None) -> list[Any]:
        """Values spanning the range: every ``step`` (ints default 1) or ``n`` evenly spaced values."""
        if self.choices is not None:
            return list(self.choices)
        if self.type is bool:
            return [False, True]
        if self.low is None or self.high is None:
            return [self.default]
        if n is not None:
            vals = np.linspace(float(self.low), float(self.high), n)
            return sorted({self.validate(round(v) if self.type is int else v) for v in vals})
        step = self.step if self.step is not None else (1 if self.type is int else (self.high - self.low) / 10)
        out, v = [], self.low
        while v <= self.high + 1e-12:
            out.append(self.validate(v))
            v = v + step
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type.__name__, "default": self.default, "low": self.low,
            "high": self.high, "choices": list(self.choices) if self.choices else None, "step": self.step,
            "log": self.log, "doc": self.doc,
        }

    def __repr__(self) -> str:
        rng = f", low={self.low!r}, high={self.high!r}" if self.low is not None or self.high is not None else ""
        return f"Param({self.type.__name__}, default={self.default!r}{rng})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Signals:
    """What a strategy wants, bar by bar, decided at each bar's close.

    Either event booleans (``entries``/``exits`` for longs, ``short_entries``/``short_exits`` for
    shorts; True means "act at the next bar's open") or a ``target`` position in [-1, 1]: its sign is
    the wanted side (0 = flat), its magnitude scales the size the sizing model gives, NaN means "no
    opinion, keep what you hold". All series share the candles' index. Build with :meth:`from_target`
    or the constructor; :meth:`arrays` returns numpy arrays for the engine.

    ``refuse_entries`` (optional, with either form) vetoes entries: True at bar t means "open no
    position on bar t's signal" (exits are unaffected), e.g. the feature set's ``gap_flag`` column,
    which marks the rows whose indicator windows span missing candles. The engine and the trader
    refuse those entries and count them with the gap refusals (docs/backtest.md).
    """

    entries: pd.Series | None = None
    exits: pd.Series | None = None
    short_entries: pd.Series | None = None
    short_exits: pd.Series | None = None
    target: pd.Series | None = None
    refuse_entries: pd.Series | None = None

    def __post_init__(self) -> None:
        events = (self.entries, self.exits, self.short_entries, self.short_exits)
        if self.target is not None and any(e is not None for e in events):
            raise StrategyError("Signals takes either event series (entries/exits) or a target, not both")
        if self.target is None and self.entries is None and self.short_entries is None:
            raise StrategyError("Signals needs entries (or short_entries) or a target")

    @classmethod
    def from_target(cls, target: pd.Series, refuse_entries: pd.Series | None = None) -> Signals:
        return cls(target=target, refuse_entries=refuse_entries)

    def arrays(self, index: pd.Index) -> SignalArrays:
        """Engine view: boolean arrays (long entry/exit, short entry/exit) and a size scale per bar."""
        n = len(index)

        def as_bool(s: pd.Series | None, what: str) -> np.ndarray:
            if s is None:
                return np.zeros(n, dtype=np.bool_)
            if len(s) != n:
                raise StrategyError(f"signal series {what!r} has {len(s)} rows, candles have {n}")
            if isinstance(s, pd.Series):
                if not s.index.equals(index):
                    s = s.reindex(index)
                if s.dtype != np.bool_:
                    s = s.astype("boolean").fillna(False)
            return np.asarray(s, dtype=np.bool_)

        refuse = as_bool(self.refuse_entries, "refuse_entries")
        if self.target is None:
            return SignalArrays(
                as_bool(self.entries, "entries"), as_bool(self.exits, "exits"),
                as_bool(self.short_entries, "short_entries"), as_bool(self.short_exits, "short_exits"),
                np.ones(n, dtype=np.float64), refuse,
            )
        t = self.target
        if len(t) != n:
            raise StrategyError(f"signal series 'target' has {len(t)} rows, candles have {n}")
        if isinstance(t, pd.Series) and not t.index.equals(index):
            t = t.reindex(index)
        tv = np.asarray(t, dtype=np.float64)
        if np.nanmax(np.abs(tv), initial=0.0) > 1.0 + 1e-12:
            raise StrategyError("target position must lie in [-1, 1] (its sign is the side, |t| scales the size)")
        known = ~np.isnan(tv)
        return SignalArrays(
            entries=known & (tv > 0),
            exits=known & (tv <= 0),
            short_entries=known & (tv < 0),
            short_exits=known & (tv >= 0),
            size_scale=np.where(known, np.abs(tv), 1.0),
            refuse_entries=refuse,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BarSignals:
    """One bar's signals (the last row of ``Signals.arrays``): what a strategy that can advance one candle at a
    time returns from ``stream_advance`` (the optional protocol of :mod:`thunes.execution.incremental`)."""

    entry: bool = False
    exit: bool = False
    short_entry: bool = False
    short_exit: bool = False
    refuse_entry: bool = False


@dataclass(frozen=True, slots=True)
class SignalArrays:
    """Signals as numpy arrays, the form the kernels take (a target becomes level-type events).

    ``refuse_entries[t]``: no entry on bar t's signal (None, as built by hand: nothing vetoed).
    """

    entries: np.ndarray
    exits: np.ndarray
    short_entries: np.ndarray
    short_exits: np.ndarray
    size_scale: np.ndarray
    refuse_entries: np.ndarray | None = None


__all__.append("SignalArrays")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossGrid:
    """The signals of a grid of parameter sets as crossings of lines computed once (a sweep's fast path,
    offered by :meth:`Strategy.signal_grid`).

    ``lines`` are causal functions of one symbol's close prices (a float64 array -> a float64 array of
    the same length, NaN while unknown). Parameter set ``c`` enters long on the bars where line
    ``fast[c]`` crosses above line ``slow[c]`` (:func:`crossed_above`) and exits where it crosses below
    (:func:`crossed_below`), with no shorts, no size scaling and no ``refuse_entries`` veto: exactly
    what its ``signals()`` return. A sweep computes each line once per symbol and builds each set's
    crossings inside the kernel, so memory is O(bars x lines), not O(bars x parameter sets).
    """

    lines: tuple[Callable[[np.ndarray], np.ndarray], ...]
    fast: tuple[int, ...]
    slow: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.fast) != len(self.slow):
            raise StrategyError(f"CrossGrid: {len(self.fast)} fast lines for {len(self.slow)} slow ones")
        if any(not 0 <= i < len(self.lines) for i in (*self.fast, *self.slow)):
            raise StrategyError(f"CrossGrid: a line index outside 0..{len(self.lines) - 1}")


def _crossed(a: pd.Series, b: pd.Series | float, up: bool) -> pd.Series:
    # numpy on the values: the pandas shift/compare/fillna chain cost 3x the whole engine on 1M bars.
    x = a.to_numpy(dtype=np.float64)
    y = b.to_numpy(dtype=np.float64) if isinstance(b, pd.Series) else np.full(x.shape, float(b))
    out = np.zeros(x.shape, dtype=np.bool_)
    if x.size > 1:
        with np.errstate(invalid="ignore"):  # NaN compares False: no cross while either side is unknown
            if up:
                out[1:] = (x[1:] > y[1:]) & (x[:-1] <= y[:-1])
            else:
                out[1:] = (x[1:] < y[1:]) & (x[:-1] >= y[:-1])
    return pd.Series(out, index=a.index)


def crossed_above(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """True on the bar where ``a`` moves from <= b to > b (needs both bars known; causal)."""
    return _crossed(a, b, True)


def crossed_below(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """True on the bar where ``a`` moves from >= b to < b."""
    return _crossed(a, b, False)


class Strategy:
    """Base class of every strategy. Subclasses declare ``Param`` attributes and implement ``signals``.

    ``name`` is the registry key (defaults to the class name in snake case). Subclasses may
    override :meth:`check` to validate relations between parameters (e.g. fast < slow).
    """

    name: ClassVar[str] = ""
    params_spec: ClassVar[dict[str, Param[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec: dict[str, Param[Any]] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    spec[key] = value
        cls.params_spec = spec
        if not cls.__dict__.get("name"):
            cls.name = "".join("_" + c.lower() if c.isupper() else c for c in cls.__name__).lstrip("_")

    def __init__(self, **params: Any) -> None:
        spec = type(self).params_spec
        unknown = [k for k in params if k not in spec]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, list(spec), n=1, cutoff=0.5)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            known = ", ".join(spec) or "none"
            raise StrategyError(
                f"unknown parameter(s) for strategy {type(self).name!r}: {', '.join(hints)}; known: {known}"
            )
        values = {k: p.default for k, p in spec.items()}
        for k, v in params.items():
            values[k] = spec[k].validate(v)
        object.__setattr__(self, "_values", values)
        self.check()

    # -- parameters -------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The validated parameter values (a copy)."""
        return dict(self._values)

    @classmethod
    def param_space(cls) -> dict[str, Param[Any]]:
        """Declared parameters by name (for optimisers: type, default, low/high, step, log)."""
        return dict(cls.params_spec)

    def with_params(self, **changes: Any) -> Strategy:
        """A new strategy of the same class with some parameters changed."""
        return type(self)(**{**self._values, **changes})

    def check(self) -> None:
        """Validate relations between parameters; raise StrategyError. Default: nothing to check."""

    # -- behaviour --------------------------------------------------------------------------------
    @property
    def warmup(self) -> int:
        """Bars needed before the first meaningful signal (the trader loads at least this many).

        It is also the window of every signal: the signal at bar t depends on bars t-warmup+1..t. The
        backtester and the trader refuse an entry whose window spans a hole in the candles, so a
        strategy declares here the longest look-back its ``signals`` use.
        """
        return 1

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The lines a chart draws over the candles (name -> series on the candles' index); none by default."""
        return {}

    def signals(self, candles: pd.DataFrame) -> Signals:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement signals(candles)")

    @classmethod
    def signal_grid(cls, combos: Sequence[Mapping[str, Any]]) -> CrossGrid | None:
        """Optional fast path for sweeps: the signals of every parameter set in ``combos`` (validated
        parameter dicts) as a :class:`CrossGrid`, or None when they are not crossings of shared lines.
        Default None: the sweep calls ``signals()`` once per parameter set. A class that offers a grid
        must return None for subclasses that change its signals."""
        return None

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The series ``thunes plot`` draws, by name (each causal, on ``candles``' index): series on the
        price scale (moving averages, bands) overlay the candles, others (RSI) get their own pane.
        Default: none."""
        return {}

    # -- dunder -----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values == self._values  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self._values.items()))))
