"""Leakage-proof datasets: targets, a purged/embargoed temporal split, a train-only scaler, gap-aware windows.

A *sample* is identified by its **end row** ``t``: the model sees feature rows ``t-seq_len+1 … t`` and
is asked for the forward log return ``log(close[t+h] / close[t])`` and the realised volatility
``sqrt(sum_{k=1..h} r_{t+k}^2)`` over the next ``h = horizon`` bars. Its information therefore spans rows
``t-seq_len+1 … t+h``.

Temporal split (:func:`temporal_split`): the valid end rows are cut, in time order, into train /
validation / test by fractions. At each boundary ``B`` (the first end row of the later block) the earlier
block keeps only ends ``<= B - purge`` and the later block only ends ``>= B + embargo``, so two samples
on either side are at least ``purge + embargo`` rows apart. With ``purge >= seq_len + horizon`` (enforced)
a training sample's label window ends strictly before the first input row of any validation sample.

The scaler (:class:`FeatureScaler`) is fitted on the rows up to the last training end and nothing later;
it stores its feature names and the time range it saw, and tags what it transforms so that nothing is
scaled twice. Windows that span a gap in the candles (or a row the feature set flags with ``gap_flag``)
are dropped and counted, never bridged.

Nothing here imports torch: the arrays are float32 numpy, consumed by :mod:`thunes.ml.train`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms, validate_candles
from thunes.core.errors import ConfigError, DataError, InsufficientData

__all__ = [
    "SCALED_ATTR",
    "TARGET_COLUMNS",
    "Dataset",
    "DatasetOptions",
    "FeatureScaler",
    "Split",
    "WindowCounts",
    "build_dataset",
    "gap_before",
    "gather_windows",
    "make_targets",
    "temporal_split",
    "valid_window_ends",
]

TARGET_COLUMNS = ("target_ret", "target_vol")
SCALED_ATTR = "thunes_scaled_by"  # DataFrame.attrs key set by FeatureScaler.transform


# --------------------------------------------------------------------------------------------- targets
def make_targets(close: pd.Series | np.ndarray, horizon: int) -> pd.DataFrame:
    """Forward log return and realised volatility over ``horizon`` bars; the last ``horizon`` rows are NaN."""
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1, got {horizon}")
    values = np.asarray(close, dtype="float64")
    if np.any(~np.isfinite(values)) or np.any(values <= 0):
        bad = int(np.flatnonzero(~np.isfinite(values) | (values <= 0))[0])
        raise DataError(f"close must be finite and positive to build targets; row {bad} is {values[bad]}")
    n = values.size
    logc = np.log(values)
    ret = np.full(n, np.nan)
    vol = np.full(n, np.nan)
    if n > horizon:
        ret[: n - horizon] = logc[horizon:] - logc[: n - horizon]
        r2 = np.concatenate([[0.0], np.diff(logc) ** 2])  # r2[i] = squared return from i-1 to i
        csum = np.cumsum(r2)
        # sum of r2[t+1 .. t+h] = csum[t+h] - csum[t]
        vol[: n - horizon] = np.sqrt(np.maximum(csum[horizon:] - csum[: n - horizon], 0.0))
    index = close.index if isinstance(close, pd.Series) else pd.RangeIndex(n)
    return pd.DataFrame({"target_ret": ret, "target_vol": vol}, index=index)


# ----------------------------------------------------------------------------------------------- split
@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """End rows of the train / validation / test samples, and the gaps that separate them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    purge: int
    embargo: int
    purged: int  # samples removed at the boundaries

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size),
                "purged": int(self.purged)}


def temporal_split(
    ends: np.ndarray | Sequence[int],
    *,
    seq_len: int,
    horizon: int,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    purge: int | None = None,
    embargo: int = 0,
) -> Split:
    """Cut sorted sample end rows into train/val/test in time order, purging ``purge`` and embargoing rows.

    ``purge`` defaults to (and may not be below) ``seq_len + horizon``. Block sizes are taken from the
    fractions *before* purging: ``n_test = round(N * test_frac)``, ``n_val = round(N * val_frac)``.
    """
    ends = np.asarray(ends, dtype="int64")
    if seq_len < 1 or horizon < 1:
        raise ConfigError(f"seq_len and horizon must be >= 1, got seq_len={seq_len}, horizon={horizon}")
    minimum = seq_len + horizon
    purge = minimum if purge is None else int(purge)
    if purge < minimum:
        raise ConfigError(f"purge={purge} is below seq_len + horizon = {minimum}: windows would share rows "
                          "with the previous block's labels")
    if embargo < 0:
        raise ConfigError(f"embargo must be >= 0, got {embargo}")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ConfigError(f"val_frac={val_frac} and test_frac={test_frac} must be in [0, 1) and sum below 1")
    if ends.size and np.any(np.diff(ends) <= 0):
        raise DataError("sample end rows must be strictly increasing")
    n = ends.size
    n_test = int(round(n * test_frac))
    n_val = int(round(n * val_frac))
    n_train = n - n_val - n_test
    blocks = [ends[:n_train], ends[n_train:n_train + n_val], ends[n_train + n_val:]]
    before = sum(b.size for b in blocks)
    for i in range(len(blocks) - 1):
        later = next((b for b in blocks[i + 1:] if b.size), None)
        if later is None:
            break
        boundary = int(later[0])
        blocks[i] = blocks[i][blocks[i] <= boundary - purge]
        # the embargo applies to every later block that starts at this boundary
        for j in range(i + 1, len(blocks)):
            if blocks[j].size and int(blocks[j][0]) == boundary:
                blocks[j] = blocks[j][blocks[j] >= boundary + embargo]
                break
    train, val, test = blocks
    if train.size == 0:
        raise InsufficientData(
            f"no training samples left: {n} valid samples, val_frac={val_frac}, test_frac={test_frac}, "
            f"purge={purge}, embargo={embargo}; use more data or a shorter seq_len/horizon"
        )
    return Split(train=train, val=val, test=test, purge=purge, embargo=embargo,
                 purged=before - train.size - val.size - test.size)


# ---------------------------------------------------------------------------------------------- scaler
@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureScaler:
    """Standardisation fitted on training rows only; remembers feature names and the rows it saw."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    fit_rows: int
    fit_start: str | None = None  # ISO timestamps of the first/last row used for fitting
    fit_end: str | None = None

    # sklearn-style aliases, so audits written for sklearn scalers can inspect this one
    @property
    def mean_(self) -> np.ndarray:
        return self.mean

    @property
    def scale_(self) -> np.ndarray:
        return self.scale

    @property
    def feature_names_in_(self) -> list[str]:
        return list(self.feature_names)

    @classmethod
    def fit(cls, features: pd.DataFrame, rows: np.ndarray | slice | None = None) -> FeatureScaler:
        """Fit on ``features.iloc[rows]`` (all rows when None); NaN rows are ignored column by column."""
        part = features if rows is None else features.iloc[rows]
        if part.empty:
            raise InsufficientData("cannot fit a scaler on zero rows")
        values = part.to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
        empty = [c for c, m in zip(part.columns, mean) if not np.isfinite(m)]
        if empty:
            raise DataError(f"scaler: column(s) {empty} have no finite value in the training rows")
        std = np.where(std > 1e-12, std, 1.0)  # a constant column is centred, not blown up
        start = end = None
        if isinstance(part.index, pd.DatetimeIndex):
            start, end = part.index[0].isoformat(), part.index[-1].isoformat()
        return cls(feature_names=tuple(str(c) for c in part.columns), mean=mean, scale=std,
                   fit_rows=len(part), fit_start=start, fit_end=end)

    @property
    def fingerprint(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def check_columns(self, columns: Sequence[str]) -> None:
        cols = tuple(str(c) for c in columns)
        if cols == self.feature_names:
            return
        missing = [c for c in self.feature_names if c not in cols]
        extra = [c for c in cols if c not in self.feature_names]
        if missing or extra:
            raise DataError(f"scaler was fitted on {len(self.feature_names)} columns; missing {missing[:8]}, "
                            f"unexpected {extra[:8]}")
        first = next(i for i, (a, b) in enumerate(zip(cols, self.feature_names)) if a != b)
        raise DataError(f"feature columns are out of order: position {first} is {cols[first]!r}, the scaler "
                        f"expects {self.feature_names[first]!r}")

    def transform_array(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype="float64") - self.mean) / self.scale).astype("float32")

    def transform(self, features: pd.DataFrame) -> pd.DataFrame:
        """Scaled copy (float32) of ``features`` in the scaler's column order; refuses already-scaled input."""
        if features.attrs.get(SCALED_ATTR):
            raise DataError(f"features are already scaled (by scaler {features.attrs[SCALED_ATTR]}); "
                            "scaling twice would corrupt them")
        self.check_columns(features.columns)
        out = pd.DataFrame(self.transform_array(features.to_numpy(dtype="float64")),
                           index=features.index, columns=list(self.feature_names))
        out.attrs[SCALED_ATTR] = self.fingerprint
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"feature_names": list(self.feature_names), "mean": [float(x) for x in self.mean],
                "scale": [float(x) for x in self.scale], "fit_rows": self.fit_rows,
                "fit_start": self.fit_start, "fit_end": self.fit_end}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        names = tuple(data["feature_names"])
        mean = np.asarray(data["mean"], dtype="float64")
        scale = np.asarray(data["scale"], dtype="float64")
        if not (len(names) == mean.size == scale.size):
            raise DataError(f"scaler file is inconsistent: {len(names)} names, {mean.size} means, "
                            f"{scale.size} scales")
        return cls(feature_names=names, mean=mean, scale=scale, fit_rows=int(data.get("fit_rows", 0)),
                   fit_start=data.get("fit_start"), fit_end=data.get("fit_end"))


# ------------------------------------------------------------------------------------------ sequences
def gap_before(ts: np.ndarray, step_ms: int) -> np.ndarray:
    """``out[i]`` is True when rows ``i-1`` and ``i`` are more than one candle apart (``out[0]`` False)."""
    ts = np.asarray(ts, dtype="int64")
    out = np.zeros(ts.size, dtype=bool)
    if ts.size > 1:
        out[1:] = np.diff(ts) != step_ms
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowCounts:
    """How many candidate end rows were kept, and why the others were dropped."""

    candidates: int
    kept: int
    dropped_warmup: int  # a NaN feature in the window (indicator warm-up)
    dropped_gap: int  # the window or its label spans a gap in the candles, or a gap-flagged row
    dropped_target: int  # no (finite) label: too close to the end of the data

    def to_dict(self) -> dict[str, int]:
        return {"candidates": self.candidates, "kept": self.kept, "dropped_warmup": self.dropped_warmup,
                "dropped_gap": self.dropped_gap, "dropped_target": self.dropped_target}


def _window_any(flags: np.ndarray, lo_offset: int, hi_offset: int, ends: np.ndarray) -> np.ndarray:
    """For each end t: any(flags[t+lo_offset .. t+hi_offset]) (inclusive, clipped to the array)."""
    csum = np.concatenate([[0], np.cumsum(flags.astype("int64"))])
    lo = np.clip(ends + lo_offset, 0, flags.size)
    hi = np.clip(ends + hi_offset + 1, 0, flags.size)
    return (csum[hi] - csum[lo]) > 0


def valid_window_ends(
    *,
    n_rows: int,
    seq_len: int,
    horizon: int,
    feature_ok: np.ndarray,
    gaps: np.ndarray,
    gap_flag: np.ndarray | None = None,
    target_ok: np.ndarray | None = None,
) -> tuple[np.ndarray, WindowCounts]:
    """End rows ``t`` whose window ``t-seq_len+1 … t`` and label ``t+1 … t+horizon`` are usable.

    ``feature_ok[i]``: row ``i`` has every feature finite. ``gaps[i]``: a candle is missing between rows
    ``i-1`` and ``i``. ``gap_flag[i]``: the feature set says row ``i``'s indicator windows span a gap.
    ``target_ok[i]``: the label of row ``i`` exists (default: ``i + horizon < n_rows``). Use
    ``horizon=0`` for inference windows (no label needed).
    """
    candidates = np.arange(seq_len - 1, n_rows, dtype="int64")
    if target_ok is None:
        target_ok = np.arange(n_rows) + horizon < n_rows
    has_target = target_ok[candidates] if candidates.size else np.zeros(0, dtype=bool)
    warm = ~_window_any(~np.asarray(feature_ok, dtype=bool), -(seq_len - 1), 0, candidates)
    # a gap between rows i-1 and i matters when both rows are inside the window+label span
    gap_hit = _window_any(np.asarray(gaps, dtype=bool), -(seq_len - 2), horizon, candidates)
    if gap_flag is not None:
        gap_hit |= _window_any(np.asarray(gap_flag, dtype=bool), -(seq_len - 1), 0, candidates)
    keep = has_target & warm & ~gap_hit
    # attribute each dropped row to one reason, in this order: target, gap, warm-up
    dropped_target = int((~has_target).sum())
    dropped_gap = int((has_target & gap_hit).sum())
    dropped_warm = int((has_target & ~gap_hit & ~warm).sum())
    counts = WindowCounts(candidates=int(candidates.size), kept=int(keep.sum()), dropped_warmup=dropped_warm,
                          dropped_gap=dropped_gap, dropped_target=dropped_target)
    return candidates[keep], counts


def gather_windows(values: np.ndarray, ends: np.ndarray, seq_len: int) -> np.ndarray:
    """``(len(ends), seq_len, n_features)`` windows ending at ``ends`` (a copy; float32 kept as is)."""
    ends = np.asarray(ends, dtype="int64")
    if ends.size and (ends.min() < seq_len - 1 or ends.max() >= len(values)):
        raise DataError(f"window ends must lie in [{seq_len - 1}, {len(values) - 1}], got "
                        f"[{ends.min()}, {ends.max()}]")
    idx = ends[:, None] + np.arange(-seq_len + 1, 1, dtype="int64")[None, :]
    return values[idx]


# ------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetOptions:
    feature_set: str = "default"
    seq_len: int = 32
    horizon: int = 10
    val_frac: float = 0.15
    test_frac: float = 0.15
    purge: int | None = None
    embargo: int = 0


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """Everything training needs: unscaled features, scaled float32 matrix, targets, split and scaler."""

    options: DatasetOptions
    features: pd.DataFrame  # unscaled, feature_cols only
    feature_cols: tuple[str, ...]
    values: np.ndarray  # scaled float32 (n_rows, n_features), NaN where a feature is NaN
    targets: pd.DataFrame  # target_ret, target_vol (unscaled)
    split: Split
    scaler: FeatureScaler
    counts: WindowCounts
    feature_set_hash: str = ""
    feature_set_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.features.index  # type: ignore[return-value]

    def windows(self, part: str) -> np.ndarray:
        return gather_windows(self.values, getattr(self.split, part), self.options.seq_len)

    def target(self, part: str, column: str = "target_ret") -> np.ndarray:
        return self.targets[column].to_numpy(dtype="float64")[getattr(self.split, part)]

    def date_range(self, part: str) -> tuple[str, str] | None:
        ends = getattr(self.split, part)
        if ends.size == 0:
            return None
        first = self.index[max(int(ends[0]) - self.options.seq_len + 1, 0)]
        last = self.index[int(ends[-1])]
        return first.isoformat(), last.isoformat()


def _step_ms(ts: np.ndarray, timeframe: str | None) -> int:
    if timeframe is not None:
        from thunes.core.timeframes import timeframe_ms

        return timeframe_ms(timeframe)
    if ts.size < 2:
        raise InsufficientData("need at least two candles to infer the timeframe")
    return int(np.median(np.diff(ts)))


def build_dataset(
    candles: pd.DataFrame,
    options: DatasetOptions = DatasetOptions(),
    *,
    timeframe: str | None = None,
    features: pd.DataFrame | None = None,
) -> Dataset:
    """Features (from the named feature set) → targets → valid windows → split → train-only scaler.

    ``features`` may be given pre-computed (same index as ``candles``); otherwise
    :func:`thunes.features.compute_features` computes them. A ``gap_flag`` column, when present, is used
    to drop windows and is not a model input.
    """
    validate_candles(candles)
    feature_set_hash = feature_set_version = ""
    if features is None:
        from thunes.features import compute_features, get_feature_set

        spec = get_feature_set(options.feature_set)
        features = compute_features(candles, feature_set=options.feature_set)
        feature_cols = tuple(spec.columns)
        feature_set_hash, feature_set_version = str(spec.hash), str(spec.version)
    else:
        feature_cols = tuple(c for c in features.columns if c != "gap_flag")
    if len(features) != len(candles) or not features.index.equals(candles.index):
        raise DataError("features and candles must share the same index (one feature row per candle)")
    missing = [c for c in feature_cols if c not in features.columns]
    if missing:
        raise DataError(f"feature frame lacks column(s) {missing}")
    gap_flag = features["gap_flag"].to_numpy(dtype=bool) if "gap_flag" in features.columns else None
    feats = features.loc[:, list(feature_cols)]
    raw = feats.to_numpy(dtype="float64")
    feature_ok = np.isfinite(raw).all(axis=1)
    targets = make_targets(candles["close"], options.horizon)
    target_ok = np.isfinite(targets.to_numpy()).all(axis=1)
    ts = ts_ms(candles)
    ends, counts = valid_window_ends(
        n_rows=len(candles), seq_len=options.seq_len, horizon=options.horizon, feature_ok=feature_ok,
        gaps=gap_before(ts, _step_ms(ts, timeframe)), gap_flag=gap_flag, target_ok=target_ok,
    )
    if ends.size == 0:
        raise InsufficientData(
            f"no usable samples among {len(candles)} candles (seq_len={options.seq_len}, "
            f"horizon={options.horizon}): {counts.to_dict()}"
        )
    split = temporal_split(ends, seq_len=options.seq_len, horizon=options.horizon, val_frac=options.val_frac,
                           test_frac=options.test_frac, purge=options.purge, embargo=options.embargo)
    # the scaler sees every row up to the last training end and nothing after (NaNs ignored per column)
    last_train = int(split.train[-1])
    scaler = FeatureScaler.fit(feats, slice(0, last_train + 1))
    values = scaler.transform_array(raw)
    return Dataset(options=options, features=feats, feature_cols=feature_cols, values=values, targets=targets,
                   split=split, scaler=scaler, counts=counts, feature_set_hash=feature_set_hash,
                   feature_set_version=feature_set_version)
