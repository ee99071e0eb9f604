"""Prefix invariance: proof that a function of candles does not look ahead.

A causal function ``f`` satisfies ``f(frame[:L]).iloc[t] == f(frame).iloc[t]`` for every prefix length
``L`` and every ``t < L``: appending the future must not change the past. The checker computes ``f`` on
the whole frame once, then on prefixes, and reports every cell whose value changed, with the column,
the row and both values. It works for any ``frame -> DataFrame | Series`` callable: feature sets,
single indicators, strategy signals.

Which prefixes (and so what is guaranteed):

* **event prefixes**: one prefix *ending on* each event row of the full output, a row where a boolean
  column is True or where a sparse column (one that changes on at most 10 % of the rows: signals,
  targets, regimes) changes value. A value at row t that reads rows after t differs, on the prefix
  that ends at t, from the full series' value whenever that future changes it; a leak that acts where
  a signal fires or flips (an entry on the *next* close crossing an average) is therefore found on
  every run, not by the luck of a random prefix ending on one of those rare rows. With more event rows
  than ``max_event_prefixes``, a seeded sample of them is checked (the report says how many).
* **random prefixes** (``n_prefixes``, seeded): they catch leaks in dense columns (features that
  change on every row), where nearly any prefix end shows the leak.

Not covered: a dependence on the future that does not change the value on the rows checked (a leak
acting only on rows that are neither events nor random prefix ends), and non-determinism that is not
about the future (compare two full runs for that).

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
from thunes.progress import progress_bar

__all__ = ["LookaheadReport", "Violation", "check_prefix_invariance"]


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
    event_rows: int = 0  # rows where a boolean column fires or a sparse column changes, in the full output
    event_prefixes: int = 0  # prefixes ending on one of them (all of them unless capped)
    random_prefixes: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations and not self.errors

    @property
    def guarantee(self) -> str:
        """What the prefixes checked, in one sentence."""
        every = ("every one of them" if self.event_prefixes >= self.event_rows
                 else f"a seeded sample of {self.event_prefixes} of them")
        return (f"{self.event_rows} event row(s) (a signal fires or a sparse column changes): {every} was the "
                f"last row of a prefix, so a value there that reads later rows is caught; plus "
                f"{self.random_prefixes} random prefix(es) for dense columns")

    def format(self, max_lines: int = 20) -> str:
        head = (f"look-ahead check of {self.name}: {len(self.columns)} column(s), {self.rows} rows, "
                f"{len(self.prefix_lengths)} prefixes\nchecked: {self.guarantee}")
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


def event_rows(full: pd.DataFrame, *, max_share: float = 0.1) -> np.ndarray:
    """Rows where a boolean column is True or where a sparse column (changing on at most ``max_share``
    of the rows) changes value; sorted, unique."""
    n = len(full)
    found: list[np.ndarray] = []
    for col in full.columns:
        a = full[col].to_numpy()
        if n < 2:
            break
        if a.dtype.kind == "b":
            found.append(np.flatnonzero(a))
            found.append(np.flatnonzero(a[1:] != a[:-1]) + 1)
            continue
        changed = _changed(a[1:], a[:-1], 0.0, 0.0)
        rows = np.flatnonzero(changed) + 1
        if rows.size <= max_share * n:
            found.append(rows)
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(found)).astype(np.int64)


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
    max_event_prefixes: int = 500,
) -> LookaheadReport:
    """Run ``fn`` on the whole ``frame``, on a prefix ending on each event row of its output (see the
    module docstring; at most ``max_event_prefixes``, a seeded sample beyond) and on ``n_prefixes``
    random prefixes; report changed values.

    Random prefix lengths are drawn (seeded) from ``[min_rows, len(frame) - 1]``; ``min_rows`` defaults
    to a tenth of the frame. The last row of each prefix is always compared (that is where a centred
    window or a ``shift(-1)`` shows up first). ``report.guarantee`` states what was checked.
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
    random_lengths = {int(v) for v in rng.choice(candidates, size=take, replace=False)}
    events = event_rows(full)
    events = events[events < rows - 1]  # the prefix ending on the last row is the full frame
    event_lengths = events + 1
    if event_lengths.size > max_event_prefixes:
        event_lengths = np.sort(rng.choice(event_lengths, size=max_event_prefixes, replace=False))
    lengths = sorted(random_lengths | {int(v) for v in event_lengths if v >= 2})
    violations: list[Violation] = []
    errors: list[str] = []
    bad: dict[str, None] = {}
    used: list[int] = []
    for length in progress_bar(lengths, desc=f"look-ahead {label}", unit="prefix", enabled=progress):
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
                           violations=tuple(violations), errors=tuple(errors), bad_columns=tuple(bad),
                           event_rows=int(events.size), event_prefixes=int(event_lengths.size),
                           random_prefixes=len(random_lengths))
