"""Leakage audit: look for the future hiding in a training set before a model is trained on it.

Six checks, each producing findings that name the column and give the evidence:

* **names**: a feature called ``*shift*``, ``*lead*``, ``*next*``, ``*future*``, ``*target*``,
  ``*label*``, ``*fwd*`` or ``*forward*`` is suspicious by its name alone;
* **correlation**: ``|corr|`` above a threshold (0.95) with a future return ``ln(close[t+h]/close[t])``
  or, for price-like features, ``feature - close`` with the future price change ``close[t+h] - close[t]``
  (a feature that follows the future price more closely than the present one);
* **exact match**: the feature equals a future value (``h = 1..horizon`` rows ahead) of close, of the
  future return, or of another feature, on (almost) every row, while it does not also equal the past
  value at the same lag (that would be a periodic, deterministic column such as the hour of day);
* **predictive power**: the rank IC (Spearman correlation) of a column, or of its change from the
  previous row, with a future log return (``h = 1..horizon``) above ``ic_threshold`` (default
  :data:`IC_THRESHOLD` = 0.2). Real features are far below: the largest of the default set's 69 columns
  is 0.08 on BTC 1h and 0.03 on 5m (20 000 rows each), so a column above 0.2 knows the future: the next
  return plus noise (correlation 0.90, IC 0.78), the sign of the next return (IC 0.87), the next close
  z-scored with the whole series' statistics (the IC of its change: 0.99). On a short sample the IC
  must also be :data:`IC_MIN_Z` = 5 standard errors from zero (about ``sqrt(rows / h)`` independent
  periods), so chance does not raise findings across many columns and horizons. The change catches
  a level-like leak, whose level only tracks the price but whose every step is the next step of the
  price;
* **truncation**: with the candles, a column the project can compute (a feature-set column, by name)
  is recomputed from the candles up to row t, for sampled rows t, and must equal the dataset's value
  at t (a copy computed with a centred window or whole-series statistics does not);
* **scaler**: a fitted scaler (sklearn-style ``mean_``/``scale_``/``data_min_``/``data_max_``/
  ``n_samples_seen_``, the ML layer's ``FeatureScaler``, or a mapping with ``mean``/``std``/``min``/
  ``max``) whose statistics show it saw rows after ``train_end``.

The report is for people: ``format()`` prints every finding on one line; the CLI exits non-zero when
there is one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.errors import ConfigError, DataError

__all__ = ["IC_THRESHOLD", "SUSPICIOUS_NAME", "LeakageFinding", "LeakageReport", "audit_leakage", "rank_ic"]

IC_THRESHOLD = 0.2
IC_MIN_Z = 5.0  # and the IC must be this many standard errors from 0 (short samples: no chance findings)
SUSPICIOUS_NAME = re.compile(r"shift|lead|next|future|target|label|fwd|forward", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeakageFinding:
    """One suspicion: ``check`` is name | correlation | exact_match | predictive_power | truncation | scaler;
    ``message`` holds the evidence (the statistic, the rows it was measured on, the values)."""

    check: str
    column: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.column}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LeakageReport:
    """All findings of :func:`audit_leakage`; ``ok`` is True when there is none."""

    rows: int
    columns: tuple[str, ...]
    horizon: int
    findings: tuple[LeakageFinding, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def flagged_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.column for f in self.findings))

    def format(self) -> str:
        head = f"leakage audit: {len(self.columns)} feature(s), {self.rows} rows, horizon 1..{self.horizon}"
        lines = [head]
        if self.ok:
            lines.append("OK: no finding")
        else:
            lines.append(f"FAILED: {len(self.findings)} finding(s) in {len(self.flagged_columns)} column(s)")
            lines += [f"  {f}" for f in self.findings]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    to_text = format

    def __str__(self) -> str:
        return self.format()


def _corr(x: np.ndarray, y: np.ndarray, min_rows: int = 30) -> float:
    m = np.isfinite(x) & np.isfinite(y)
    if m.sum() < min_rows:
        return float("nan")
    a = x[m] - x[m].mean()
    b = y[m] - y[m].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def rank_ic(x: np.ndarray, y: np.ndarray, min_rows: int = 100) -> tuple[float, int]:
    """Spearman rank correlation of x and y over the rows where both are finite, and that row count
    (NaN when fewer than ``min_rows``). Ties get average ranks."""
    m = np.isfinite(x) & np.isfinite(y)
    k = int(m.sum())
    if k < min_rows:
        return float("nan"), k
    rx = pd.Series(x[m]).rank().to_numpy()
    ry = pd.Series(y[m]).rank().to_numpy()
    return _corr(rx, ry, min_rows), k


def _check_truncation(features: pd.DataFrame, candles: pd.DataFrame, findings: list[LeakageFinding],
                      notes: list[str], rng: np.random.Generator, samples: int) -> None:
    """Recompute the dataset's feature-set columns on candles cut at sampled rows; compare at the cut."""
    from thunes.core.errors import InsufficientData
    from thunes.features.feature_set import compute_features, feature_set_names, get_feature_set

    if len(candles) != len(features) or not candles.index.equals(features.index):
        raise DataError("leakage audit: candles and features must have the same index")
    known: dict[str, str] = {}
    for set_name in feature_set_names():
        for col in get_feature_set(set_name).columns:
            known.setdefault(col, set_name)
    cols = [str(c) for c in features.columns if str(c) in known]
    if not cols:
        notes.append("truncation test: no column of the dataset is a feature-set column the project computes")
        return
    n = len(features)
    start = max(n // 10, 2)
    rows = np.unique(np.concatenate([[n - 1], rng.choice(np.arange(start, n), size=min(samples, n - start),
                                                          replace=False)]))
    by_set: dict[str, list[str]] = {}
    for col in cols:
        by_set.setdefault(known[col], []).append(col)
    bad: set[str] = set()
    checked = 0
    for t in rows:
        for set_name, names in by_set.items():
            todo = [c for c in names if c not in bad]
            if not todo:
                continue
            try:
                part = compute_features(candles.iloc[: t + 1], set_name, columns=todo)
            except InsufficientData:
                continue
            checked += 1
            for col in todo:
                got, have = float(part[col].iloc[-1]), float(features[col].iloc[t])
                same = (np.isnan(got) and np.isnan(have)) or np.isclose(got, have, rtol=1e-9, atol=1e-12)
                if not same:
                    bad.add(col)
                    findings.append(LeakageFinding(check="truncation", column=col, message=(
                        f"recomputed from the candles up to row {t} ({features.index[t]}) it is {got:.6g}; the "
                        f"dataset has {have:.6g} there: the dataset's value used later rows")))
    notes.append(f"truncation test: {len(cols)} recomputable column(s) checked at {len(rows)} row(s)"
                 + ("" if checked else " (every cut was too short for the warm-up)"))


def _matches(x: np.ndarray, y: np.ndarray, min_rows: int = 20, share: float = 0.99) -> bool:
    """x equals y (to 1e-9 relative) on at least ``share`` of the rows where both are finite."""
    m = np.isfinite(x) & np.isfinite(y)
    k = int(m.sum())
    if k < min_rows:
        return False
    same = np.isclose(x[m], y[m], rtol=1e-9, atol=1e-12)
    return bool(same.sum() >= share * k)


def _lead(a: np.ndarray, h: int) -> np.ndarray:
    out = np.full(a.size, np.nan)
    if h < a.size:
        out[: a.size - h] = a[h:]
    return out


def _lag(a: np.ndarray, h: int) -> np.ndarray:
    out = np.full(a.size, np.nan)
    if h < a.size:
        out[h:] = a[: a.size - h]
    return out


def _numeric_columns(features: pd.DataFrame) -> list[str]:
    return [str(c) for c in features.columns
            if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]


def _scaler_stats(scaler: Any) -> dict[str, Any]:
    def get(*names: str) -> Any:
        for n in names:
            if isinstance(scaler, Mapping) and n in scaler:
                return scaler[n]
            if not isinstance(scaler, Mapping) and getattr(scaler, n, None) is not None:
                return getattr(scaler, n)
        return None

    stats: dict[str, Any] = {
        "names": get("feature_names_in_", "feature_names", "columns"),
        "mean": get("mean_", "mean"),
        "scale": get("scale_", "scale", "std"),
        "min": get("data_min_", "min"),
        "max": get("data_max_", "max"),
        "n": get("n_samples_seen_", "fit_rows", "n_samples", "n"),
        "fit_end": get("fit_end"),
    }
    if stats["scale"] is None and get("var_") is not None:
        stats["scale"] = np.sqrt(np.asarray(get("var_"), dtype="float64"))
    if all(stats[k] is None for k in ("mean", "scale", "min", "max", "n", "fit_end")):
        raise ConfigError(f"leakage audit: cannot read statistics from scaler {type(scaler).__name__}; expected "
                          "mean_/scale_/data_min_/data_max_/n_samples_seen_ attributes or a mapping with "
                          "mean/std/min/max")
    return stats


def _train_rows(features: pd.DataFrame, train_end: Any) -> int:
    """Number of leading rows that belong to the training range (``train_end`` inclusive)."""
    if isinstance(train_end, (int, np.integer)) and not isinstance(train_end, bool):
        if not 0 < int(train_end) <= len(features):
            raise ConfigError(f"leakage audit: train_end={train_end} rows is outside 1..{len(features)}")
        return int(train_end)
    if not isinstance(features.index, pd.DatetimeIndex):
        raise ConfigError("leakage audit: a timestamp train_end needs features indexed by time; pass a row count")
    stamp = pd.Timestamp(train_end)
    if stamp.tzinfo is None and features.index.tz is not None:
        stamp = stamp.tz_localize(features.index.tz)
    return int(features.index.searchsorted(stamp, side="right"))


def _check_scaler(features: pd.DataFrame, columns: list[str], scaler: Any, train_end: Any,
                  findings: list[LeakageFinding], notes: list[str]) -> None:
    stats = _scaler_stats(scaler)
    if train_end is None:
        notes.append("scaler given without train_end: its fitting range was not checked")
        return
    n_train = _train_rows(features, train_end)
    if n_train >= len(features):
        notes.append("train_end covers every row: nothing lies beyond the training range")
        return
    label = "scaler"
    if stats["fit_end"] is not None and isinstance(features.index, pd.DatetimeIndex):
        fit_end = pd.Timestamp(stats["fit_end"])
        last_train = features.index[n_train - 1]
        if fit_end.tzinfo is None and last_train.tzinfo is not None:
            fit_end = fit_end.tz_localize(last_train.tzinfo)
        if fit_end > last_train:
            findings.append(LeakageFinding(check="scaler", column=label, message=(
                f"fitted on rows up to {fit_end}, after the end of training {last_train}")))
    names = [str(n) for n in stats["names"]] if stats["names"] is not None else list(columns)
    train = features.iloc[:n_train]
    if stats["n"] is not None:
        n_seen = int(np.max(np.asarray(stats["n"])))
        if n_seen > n_train:
            findings.append(LeakageFinding(check="scaler", column=label, message=(
                f"fitted on {n_seen} rows but the training range has only {n_train}")))
    for key in ("mean", "scale", "min", "max"):
        if stats[key] is not None and np.asarray(stats[key]).size != len(names):
            raise ConfigError(f"leakage audit: scaler {key} has {np.asarray(stats[key]).size} values for "
                              f"{len(names)} feature names")
    for j, name in enumerate(names):
        if name not in features.columns:
            notes.append(f"scaler column {name!r} is not in the dataset")
            continue
        tr = train[name].to_numpy(dtype="float64")
        al = features[name].to_numpy(dtype="float64")
        tr = tr[np.isfinite(tr)]
        al = al[np.isfinite(al)]
        if tr.size == 0:
            continue
        spread = float(np.std(tr)) or 1.0
        tol = 1e-9 * max(spread, float(np.max(np.abs(tr))))
        if stats["max"] is not None and float(np.asarray(stats["max"])[j]) > tr.max() + tol:
            findings.append(LeakageFinding(check="scaler", column=name, message=(
                f"scaler max {float(np.asarray(stats['max'])[j]):.6g} exceeds the training maximum {tr.max():.6g}")))
        if stats["min"] is not None and float(np.asarray(stats["min"])[j]) < tr.min() - tol:
            findings.append(LeakageFinding(check="scaler", column=name, message=(
                f"scaler min {float(np.asarray(stats['min'])[j]):.6g} is below the training minimum {tr.min():.6g}")))
        if stats["mean"] is not None:
            s = float(np.asarray(stats["mean"])[j])
            m_train, m_all = float(tr.mean()), float(al.mean())
            if (abs(s - m_train) > 1e-6 * spread and abs(m_all - m_train) > 1e-6 * spread
                    and abs(s - m_all) < abs(s - m_train)):
                findings.append(LeakageFinding(check="scaler", column=name, message=(
                    f"scaler mean {s:.6g} is closer to the all-rows mean {m_all:.6g} than to the training mean "
                    f"{m_train:.6g}")))


def audit_leakage(
    features: pd.DataFrame,
    close: pd.Series | np.ndarray,
    *,
    horizon: int = 1,
    scaler: Any = None,
    train_end: Any = None,
    corr_threshold: float = 0.95,
    ic_threshold: float = IC_THRESHOLD,
    candles: pd.DataFrame | None = None,
    truncation_samples: int = 12,
    exclude: Sequence[str] = (),
    seed: int = 0,
) -> LeakageReport:
    """Audit ``features`` (rows aligned with ``close``) for leaks of the next ``horizon`` rows.

    ``train_end`` is the last training timestamp (inclusive) or the number of training rows; it is
    needed only for the scaler check. ``candles`` (OHLCV on the same index) enable the truncation test
    of the columns the project can recompute. Boolean columns (``gap_flag``) and ``exclude`` are
    skipped by the numeric checks but still checked by name.
    """
    if isinstance(horizon, bool) or int(horizon) < 1:
        raise ConfigError(f"leakage audit: horizon must be an integer >= 1, got {horizon!r}")
    horizon = int(horizon)
    c = close.to_numpy(dtype="float64") if isinstance(close, pd.Series) else np.asarray(close, dtype="float64")
    if c.ndim != 1 or c.size != len(features):
        raise DataError(f"leakage audit: close has {c.size} rows, features have {len(features)}")
    if isinstance(close, pd.Series) and not close.index.equals(features.index):
        raise DataError("leakage audit: close and features have different indexes; align them first")
    if np.any(c[np.isfinite(c)] <= 0):
        raise DataError("leakage audit: close must be positive")
    findings: list[LeakageFinding] = []
    notes: list[str] = []
    all_cols = [str(col) for col in features.columns]
    for col in all_cols:
        word = SUSPICIOUS_NAME.search(col)
        if word:
            findings.append(LeakageFinding(check="name", column=col, message=(
                f"the name contains {word.group(0)!r}, which usually means a value from the future")))
    numeric = [col for col in _numeric_columns(features) if col not in set(exclude)]
    values = {col: features[col].to_numpy(dtype="float64") for col in numeric}
    with np.errstate(divide="ignore", invalid="ignore"):
        log_c = np.log(c)
    future_ret = {h: _lead(log_c, h) - log_c for h in range(1, horizon + 1)}
    future_simple = {h: np.exp(future_ret[h]) - 1.0 for h in future_ret}
    future_close = {h: _lead(c, h) for h in future_ret}
    variable = [col for col in numeric if np.nanstd(values[col]) > 0] if numeric else []

    for col in variable:
        x = values[col]
        done = False
        for h in range(1, horizon + 1):
            targets = {"close": (future_close[h], _lag(c, h)),
                       "log return": (future_ret[h], _lag(log_c, h) - log_c),
                       "simple return": (future_simple[h], None)}
            for what, (fut, past) in targets.items():
                if _matches(x, fut) and not (past is not None and _matches(x, past)):
                    findings.append(LeakageFinding(check="exact_match", column=col, message=(
                        f"equals the {what} {h} row(s) ahead")))
                    done = True
                    break
            if done:
                break
        if done:
            continue
        for h in range(1, horizon + 1):
            r = _corr(x, future_ret[h])
            if np.isfinite(r) and abs(r) > corr_threshold:
                findings.append(LeakageFinding(check="correlation", column=col, message=(
                    f"|corr| {abs(r):.3f} with the log return {h} row(s) ahead (threshold {corr_threshold})")))
                break
            r = _corr(x - c, future_close[h] - c)
            if np.isfinite(r) and abs(r) > corr_threshold:
                findings.append(LeakageFinding(check="correlation", column=col, message=(
                    f"(feature - close) has |corr| {abs(r):.3f} with the price change {h} row(s) ahead")))
                break

    # Feature equal to another feature's future value: fingerprint a sample of rows, verify candidates.
    flagged = {f.column for f in findings if f.check == "exact_match"}
    if len(variable) > 0 and len(features) > horizon + 40:
        rng = np.random.default_rng(seed)
        block = np.column_stack([values[col] for col in variable])
        finite_rows = np.flatnonzero(np.isfinite(block).all(axis=1))
        usable = finite_rows[finite_rows < len(features) - horizon]
        if usable.size >= 20:
            picks = np.sort(rng.choice(usable, size=min(32, usable.size), replace=False))
            index: dict[bytes, list[tuple[str, int]]] = {}
            for col in variable:
                for h in range(1, horizon + 1):
                    index.setdefault(values[col][picks + h].tobytes(), []).append((col, h))
            for col in variable:
                if col in flagged:
                    continue
                for other, h in index.get(values[col][picks].tobytes(), []):
                    x, y = values[col], values[other]
                    if _matches(x, _lead(y, h)) and not _matches(x, _lag(y, h)):
                        findings.append(LeakageFinding(check="exact_match", column=col, message=(
                            f"equals feature {other!r} {h} row(s) ahead")))
                        break
        else:
            notes.append("too few fully finite rows to compare features with each other's future values")

    # Implausible predictive power, for the columns no sharper rule has explained.
    explained = {f.column for f in findings if f.check in ("exact_match", "correlation")}
    for col in variable:
        if col in explained:
            continue
        x = values[col]
        change = x - _lag(x, 1)
        for h in range(1, horizon + 1):
            hit = None
            for what, series in (("value", x), ("change from the previous row", change)):
                ic, k = rank_ic(series, future_ret[h])
                # Also far beyond chance: h-row returns overlap, so about k / h of the rows are independent.
                z = abs(ic) * np.sqrt(k / h) if np.isfinite(ic) else 0.0
                if np.isfinite(ic) and abs(ic) > ic_threshold and z >= IC_MIN_Z:
                    hit = (what, ic, k, z)
                    break
            if hit is not None:
                what, ic, k, z = hit
                findings.append(LeakageFinding(check="predictive_power", column=col, message=(
                    f"rank IC {ic:+.3f} of its {what} with the log return {h} row(s) ahead, over {k} rows "
                    f"({z:.0f} standard errors from 0; threshold {ic_threshold}, real features stay under 0.1): "
                    "no causal column predicts the future return that well")))
                break

    if candles is not None:
        _check_truncation(features, candles, findings, notes, np.random.default_rng(seed), truncation_samples)
    if scaler is not None:
        _check_scaler(features, numeric, scaler, train_end, findings, notes)
    return LeakageReport(rows=len(features), columns=tuple(all_cols), horizon=horizon, findings=tuple(findings),
                         notes=tuple(notes))
