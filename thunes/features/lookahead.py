"""Prefix invariance: proof that a function of candles does not look ahead.

A causal function ``f`` satisfies ``f(frame[:L]).iloc[t] == f(frame).iloc[t]`` for every prefix length
``L`` and every ``t < L``: appending the future must not change the past. The checker computes ``f`` on
the whole frame once and on random prefixes, and reports every cell whose value changed, with the
column, the row and both values. It works for any ``frame -> DataFrame | Series`` callable: feature
sets, single indicators, strategy signals.

Our kernels walk left to right, so values are compared exactly by default (NaN equals NaN); pass
``rtol``/``atol`` for functions whose arithmetic legitimately depends on the length (e.g. BLAS
reductions). A function that raises :class:`InsufficientData` on a short prefix is retried on a longer
one; any other exception is reported, because a function that only works with the future present is
not usable live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from thunes.core.errors import ConfigError, InsufficientData

__all__ = ["check_prefix_invariance", "LookaheadReport", "Violation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """One value that changed when later rows were appended."""

    column: str
    row: int
    ts: object
    prefix_len: int
    prefix_value: object
    full_value: object

    def __str__(self) -> str:
        return (f"column {self.column!r} row {self.row} ({self.ts}): {self.prefix_value!r} with {self.prefix_len} "
                f"rows of data, {self.full_value!r} with all rows")


@dataclass(frozen=True, slots=True, kw_only=True)
class LookaheadReport:
    """Outcome of :func:`check_prefix_invariance`; ``ok`` is True when no value changed."""

    name: str
    rows: int
    prefix_lengths: tuple[int, ...]
    columns: tuple[str, ...]
    violations: tuple[Violation, ...] = ()
    errors: tuple[str, ...] = ()
    bad_columns: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.violations and not self.errors

    def format(self, max_lines: int = 20) -> str:
        head = (f"look-ahead check of {self.name}: {len(self.columns)} column(s), {self.rows} rows, "
                f"{len(self.prefix_lengths)} prefixes")
        if self.ok:
            return f"{head}\nOK: every value is unchanged when later rows are appended"
        lines = [head, f"FAILED: {len(self.violations)} changed value(s) in {len(self.bad_columns)} column(s): "
                       f"{', '.join(self.bad_columns)}"]
        lines += [f"  {v}" for v in self.violations[:max_lines]]
        if len(self.violations) > max_lines:
            lines.append(f"  ... {len(self.violations) - max_lines} more")
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _as_frame(result: object, where: str) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, pd.Series):
        return result.to_frame(name=result.name if result.name is not None else "value")
    raise ConfigError(f"look-ahead check: the function returned {type(result).__name__} on {where}; "
                      "expected a DataFrame or Series indexed like the candles")


def _changed(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Element-wise 'differs' for two equally long columns; NaN equals NaN."""
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        fa = a.astype("float64", copy=False)
        fb = b.astype("float64", copy=False)
        both_nan = np.isnan(fa) & np.isnan(fb)
        with np.errstate(invalid="ignore"):
            if rtol == 0.0 and atol == 0.0:
                same = fa == fb
            else:
                same = np.abs(fa - fb) <= atol + rtol * np.abs(fb)
        return ~(same | both_nan)
    return ~(a == b)


def check_prefix_invariance(
    fn: Callable[[pd.DataFrame], pd.DataFrame | pd.Series],
    frame: pd.DataFrame,
    *,
    n_prefixes: int = 20,
    seed: int = 0,
    min_rows: int | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    max_violations: int = 1000,
    name: str | None = None,
    progress: bool = False,
) -> LookaheadReport:
    """Run ``fn`` on the whole ``frame`` and on ``n_prefixes`` random prefixes; report changed values.

    Prefix lengths are drawn (seeded) from ``[min_rows, len(frame) - 1]``; ``min_rows`` defaults to a
    tenth of the frame. The last row of each prefix is always compared (that is where a centred window
    or a ``shift(-1)`` shows up first).
    """
    if n_prefixes < 1:
        raise ConfigError(f"look-ahead check: n_prefixes must be >= 1, got {n_prefixes}")
    rows = len(frame)
    if rows < 3:
        raise InsufficientData(f"look-ahead check needs at least 3 rows, got {rows}")
    label = name or getattr(fn, "__name__", repr(fn))
    full = _as_frame(fn(frame), "the full frame")
    lo = max(2, min(rows - 1, min_rows if min_rows is not None else rows // 10))
    rng = np.random.default_rng(seed)
    candidates = np.arange(lo, rows)
    take = min(n_prefixes, candidates.size)
    lengths = sorted(int(v) for v in rng.choice(candidates, size=take, replace=False))
    violations: list[Violation] = []
    errors: list[str] = []
    bad: dict[str, None] = {}
    used: list[int] = []
    iterator = lengths
    if progress:
        from tqdm import tqdm

        iterator = tqdm(lengths, desc=f"look-ahead {label}", unit="prefix", leave=False)
    for length in iterator:
        try:
            part = _as_frame(fn(frame.iloc[:length]), f"a {length}-row prefix")
        except InsufficientData:
            continue  # too short for the function's warm-up; longer prefixes are still checked
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            errors.append(f"{type(exc).__name__} on a {length}-row prefix: {exc}")
            continue
        used.append(length)
        missing = [c for c in full.columns if c not in part.columns]
        if missing:
            errors.append(f"columns {missing} missing from the output on a {length}-row prefix")
        expected = full.loc[full.index.isin(frame.index[:length])]
        if not part.index.equals(expected.index):
            errors.append(f"on a {length}-row prefix the output index differs from the full output's first rows "
                          f"({len(part)} vs {len(expected)} rows)")
            continue
        for col in full.columns:
            if col not in part.columns:
                continue
            a = part[col].to_numpy()
            b = expected[col].to_numpy()
            diff = np.flatnonzero(_changed(a, b, rtol, atol))
            if diff.size:
                bad[str(col)] = None
            for i in diff[: max(0, max_violations - len(violations))]:
                violations.append(Violation(column=str(col), row=int(i), ts=part.index[i], prefix_len=length,
                                            prefix_value=a[i].item() if hasattr(a[i], "item") else a[i],
                                            full_value=b[i].item() if hasattr(b[i], "item") else b[i]))
    if not used and not errors:
        errors.append(f"every prefix ({lengths[0]}..{lengths[-1]} rows) was too short for the function; "
                      "pass a larger min_rows or more data")
    return LookaheadReport(name=label, rows=rows, prefix_lengths=tuple(used), columns=tuple(map(str, full.columns)),
                           violations=tuple(violations), errors=tuple(errors), bad_columns=tuple(bad))
