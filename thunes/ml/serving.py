"""CPU serving: an onnxruntime predictor, input preparation, and the ``Forecaster``.

Live inference must not need torch: :func:`thunes.ml.artifacts.export_onnx` writes the LSTM once at training time and
:class:`OnnxPredictor` runs it with onnxruntime on one thread (the trader's latency budget is a couple
of milliseconds per bar, and one thread avoids fighting the event loop for cores).

:func:`prepare_input_for_model` is the single gate between a feature frame and a model: it enforces the
training column order, refuses already-scaled input (scaling twice silently shrinks every feature),
refuses windows with NaNs, gap-flagged rows or irregular timestamps, and names what is wrong.

:class:`Forecaster` ties a model folder together: feature set → scaler → predictor → un-scaled
``(return, volatility)``; ``predict_latest`` serves the trader and ``thunes forecast``,
``predict_frame`` serves evaluation and the model strategy (every bar, in batches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError, DataError, InsufficientData
from thunes.core.timeframes import index_ms
from thunes.ml.dataset import SCALED_ATTR, FeatureScaler, gap_before, gather_windows, valid_window_ends

__all__ = [
    "Forecast",
    "Forecaster",
    "OnnxPredictor",
    "TorchPredictor",
    "prepare_input_for_model",
]


class OnnxPredictor:
    """onnxruntime session over ``model.onnx``; ``predict(x)`` → ``(ret, vol)`` in the model's units."""

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise ConfigError(f"ONNX model {path} not found (train with ONNX export, or use the torch backend)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        shape = self.session.get_inputs()[0].shape
        self.seq_len = shape[1] if isinstance(shape[1], int) else None
        self.input_size = shape[2] if isinstance(shape[2], int) else None

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if self.input_size is not None and x.shape[2] != self.input_size:
            raise DataError(f"model takes {self.input_size} features per step, got {x.shape[2]}")
        ret, vol = self.session.run(None, {"x": x})
        return ret.astype("float64"), vol.astype("float64")


class TorchPredictor:
    """The same interface over a torch ``LSTM2Head`` (used when no ONNX file exists, and in tests)."""

    def __init__(self, model: Any) -> None:
        self.model = model.eval()

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        with torch.no_grad():
            ret, vol = self.model(torch.from_numpy(x))
        return ret.numpy().astype("float64"), vol.numpy().astype("float64")


def prepare_input_for_model(
    df: pd.DataFrame,
    feature_cols: Sequence[str],
    seq_len: int,
    scaler: FeatureScaler | None,
) -> np.ndarray:
    """The model input ``(1, seq_len, n_features)`` float32 for the window ending at ``df``'s last row.

    ``df`` holds *unscaled* features (extra columns such as ``gap_flag`` are allowed). Raises
    ``DataError`` when a column is missing, when the scaler was fitted on other columns or another order,
    when ``df`` is already scaled, when the window has a NaN, a gap-flagged row or irregular timestamps,
    and ``InsufficientData`` when fewer than ``seq_len`` rows are given.
    """
    cols = [str(c) for c in feature_cols]
    if df.attrs.get(SCALED_ATTR):
        raise DataError(f"input is already scaled (by scaler {df.attrs[SCALED_ATTR]}); pass unscaled features, "
                        "prepare_input_for_model scales them exactly once")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"feature frame lacks {len(missing)} column(s) the model needs: {missing[:8]}")
    if scaler is not None:
        scaler.check_columns(cols)
    if len(df) < seq_len:
        raise InsufficientData(f"need {seq_len} feature rows for one window, got {len(df)}")
    # work on numpy slices: slicing a 60+-column frame costs milliseconds, this about half of one
    index = df.index[-seq_len:]
    if "gap_flag" in df.columns:
        flags = df["gap_flag"].to_numpy(dtype=bool)[-seq_len:]
        if flags.any():
            raise DataError(f"window spans a gap in the candles (gap_flag set at {index[int(np.argmax(flags))]}); "
                            "no prediction")
    if isinstance(index, pd.DatetimeIndex) and seq_len > 1:
        steps = np.diff(index_ms(index))
        if np.any(steps != steps[0]) or steps[0] <= 0:
            i = int(np.flatnonzero(steps != steps[0])[0]) + 1 if np.any(steps != steps[0]) else 1
            raise DataError(f"window timestamps are not evenly spaced (misaligned or missing rows near {index[i]})")
    values = np.column_stack([df[c].to_numpy(dtype="float64")[-seq_len:] for c in cols])
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"non-finite value in feature {cols[c]!r} at {index[r]} (row {r} of the window); "
                        "too little warm-up history?")
    out = scaler.transform_array(values) if scaler is not None else values.astype("float32")
    return out[None, :, :]


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """A prediction for the ``horizon`` bars after ``as_of`` (the last candle's open time)."""

    as_of: pd.Timestamp
    horizon: int
    ret: float  # forward log return
    vol: float  # predicted standard deviation of that return
    model_trained_at: str | None
    model_last_candle: str | None


# Recursive indicators (EMA, Wilder's RSI/ADX) depend on where they started; 300 extra bars bring the
# live values within ~2e-6 training standard deviations of values computed on the full history.
CONVERGE_BARS = 300


class Forecaster:
    """A loaded model folder: computes features, scales, predicts, and un-scales."""

    def __init__(self, predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], meta: Any,
                 scaler: FeatureScaler | None, *, backend: str) -> None:
        self._predict = predict
        self.meta = meta
        self.scaler = scaler
        self.backend = backend
        self.feature_cols = list(meta.feature_cols)
        self.seq_len = int(meta.seq_len)
        self.horizon = int(meta.horizon)
        self.target_scale = float(meta.target_scale or 1.0)
        self._warmup: int | None = None

    @classmethod
    def load(cls, folder: str | Path, *, backend: str = "auto", threads: int = 1) -> Forecaster:
        """``backend``: ``onnx`` (torch-free), ``torch``, or ``auto`` (ONNX when the file exists)."""
        from thunes.ml.artifacts import ONNX_FILE, check_feature_compatibility, load_meta, load_scaler

        folder = Path(folder)
        meta = load_meta(folder)
        if meta.seq_len is None or meta.horizon is None:
            raise ConfigError(f"{folder}/meta.json lacks seq_len/horizon; cannot serve this model")
        if meta.model_type == "xgboost":
            from thunes.ml.models.xgb import XGBTwoHead

            check_feature_compatibility(meta)
            model = XGBTwoHead.load(folder)
            return cls(model.predict, meta, load_scaler(folder), backend="xgboost")
        onnx_path = folder / (meta.onnx or ONNX_FILE)
        if backend == "onnx" or (backend == "auto" and onnx_path.exists()):
            check_feature_compatibility(meta)
            return cls(OnnxPredictor(onnx_path, threads=threads).predict, meta, load_scaler(folder), backend="onnx")
        if backend not in ("auto", "torch"):
            raise ConfigError(f"unknown backend {backend!r}: use onnx, torch or auto")
        from thunes.ml.artifacts import load_model

        model, meta = load_model(folder)
        return cls(TorchPredictor(model).predict, meta, meta.scaler, backend="torch")

    @property
    def history(self) -> int:
        """Candles :meth:`predict_latest` reads: the warm-up plus ``CONVERGE_BARS`` for recursive indicators."""
        return self.warmup + CONVERGE_BARS

    @property
    def warmup(self) -> int:
        """Candles needed for one prediction: the feature set's warm-up plus ``seq_len``."""
        if self._warmup is None:
            from thunes.features import get_feature_set

            self._warmup = int(get_feature_set(self.meta.feature_set).warmup) + self.seq_len
        return self._warmup

    def features(self, candles: pd.DataFrame) -> pd.DataFrame:
        from thunes.features import compute_features

        return compute_features(candles, feature_set=self.meta.feature_set)

    def latest_window(self, candles: pd.DataFrame) -> np.ndarray:
        """Unscaled feature matrix ``(seq_len, n_features)`` of the window ending at the last candle.

        The hot path of live inference: it computes the feature set's blocks on the last ``history``
        candles (``warmup + CONVERGE_BARS``; at least ``warmup + 1``) straight into a matrix (no
        DataFrame), after checking that those candles are finite, positive and free of gaps. Without
        that fast path it falls back to ``compute_features`` + :func:`prepare_input_for_model`.
        """
        tail = candles.iloc[-self.history:]
        if len(tail) < self.warmup + 1:
            raise InsufficientData(f"need {self.warmup + 1} candles for one prediction (feature warm-up + "
                                   f"seq_len {self.seq_len}), got {len(tail)}")
        ts = ts_ms(tail)
        steps = np.diff(ts)
        step = self._step_ms(ts)
        if np.any(steps != step):
            i = int(np.flatnonzero(steps != step)[0]) + 1
            raise DataError(f"the candles needed for the latest window are not contiguous {self.meta.timeframe or ''} "
                            f"bars (hole or misalignment before {tail.index[i]}); no prediction")
        matrix = _fast_feature_matrix(tail, self.meta.feature_set, self.feature_cols, self.seq_len)
        if matrix is None:
            feats = self.features(tail)
            return prepare_input_for_model(feats, self.feature_cols, self.seq_len, None)[0].astype("float64")
        bad = ~np.isfinite(matrix)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise DataError(f"non-finite feature {self.feature_cols[c]!r} at {tail.index[len(tail) - self.seq_len + r]}")
        return matrix

    def _step_ms(self, ts: np.ndarray) -> int:
        if self.meta.timeframe:
            from thunes.core.timeframes import timeframe_ms

            return timeframe_ms(self.meta.timeframe)
        return int(np.median(np.diff(ts))) if ts.size > 1 else 1

    def predict_latest(self, candles: pd.DataFrame) -> Forecast:
        """Forecast from the window ending at the last candle (reads only the last ``history`` candles)."""
        window = self.latest_window(candles)
        x = (self.scaler.transform_array(window) if self.scaler is not None else window.astype("float32"))[None]
        ret, vol = self._predict(x)
        return Forecast(as_of=candles.index[-1], horizon=self.horizon, ret=float(ret[0]) * self.target_scale,
                        vol=float(vol[0]) * self.target_scale, model_trained_at=self.meta.trained_at,
                        model_last_candle=self.meta.last_candle)

    def predict_windows(self, x: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Un-scaled predictions for already scaled windows ``(n, seq_len, features)``."""
        rets, vols = [], []
        for i in range(0, len(x), batch):
            r, v = self._predict(x[i:i + batch])
            rets.append(r)
            vols.append(v)
        if not rets:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(rets) * self.target_scale, np.concatenate(vols) * self.target_scale

    def predict_frame(self, candles: pd.DataFrame, *, features: pd.DataFrame | None = None) -> pd.DataFrame:
        """``pred_ret``/``pred_vol`` for every candle whose window is complete and gap-free (NaN elsewhere).

        Row ``t`` uses candles ``<= t`` only, so the result is causal and can drive signals.
        """
        feats = self.features(candles) if features is None else features
        missing = [c for c in self.feature_cols if c not in feats.columns]
        if missing:
            raise DataError(f"feature frame lacks column(s) the model needs: {missing[:8]}")
        raw = feats[self.feature_cols].to_numpy(dtype="float64")
        from thunes.core.candles import ts_ms

        ts = ts_ms(candles)
        step = self._step_ms(ts)
        gap_flag = feats["gap_flag"].to_numpy(dtype=bool) if "gap_flag" in feats.columns else None
        ends, _ = valid_window_ends(n_rows=len(candles), seq_len=self.seq_len, horizon=0,
                                    feature_ok=np.isfinite(raw).all(axis=1), gaps=gap_before(ts, step),
                                    gap_flag=gap_flag)
        values = self.scaler.transform_array(raw) if self.scaler is not None else raw.astype("float32")
        ret = np.full(len(candles), np.nan)
        vol = np.full(len(candles), np.nan)
        if ends.size:
            r, v = self.predict_windows(gather_windows(values, ends, self.seq_len))
            ret[ends], vol[ends] = r, v
        return pd.DataFrame({"pred_ret": ret, "pred_vol": vol}, index=candles.index)


def _fast_feature_matrix(tail: pd.DataFrame, feature_set: str, cols: Sequence[str], seq_len: int
                         ) -> np.ndarray | None:
    """The last ``seq_len`` rows of the feature set's columns as a float64 matrix, or None when unavailable.

    Uses the feature set's block kernels directly (``FeatureBlock.compute`` on the features layer's
    input context), skipping DataFrame construction, which is most of ``compute_features``' cost on a
    window of ~150 rows. The values are those of ``compute_features``; a test asserts equality.
    """
    try:
        from thunes.features import get_feature_set
        from thunes.features.feature_set import _Ctx
    except ImportError:  # pragma: no cover - the features layer changed shape: take the slow path
        return None
    # the context's own float64 columns (selecting five columns as one frame cost ~0.6 ms, most of a call)
    ctx = _Ctx(tail)
    prices = (ctx.open, ctx.high, ctx.low, ctx.close)
    ok = np.isfinite(ctx.volume) & (ctx.volume >= 0)
    for p in prices:
        ok &= np.isfinite(p) & (p > 0)
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise DataError(f"invalid candle at {tail.index[r]}: OHLC must be finite and positive, volume >= 0")
    spec = get_feature_set(feature_set)
    wanted = set(cols)
    produced: dict[str, np.ndarray] = {}
    for block in spec.blocks:
        if wanted.intersection(block.columns):
            produced.update(block.compute(ctx))
    out = np.empty((seq_len, len(cols)), dtype="float64")
    for j, col in enumerate(cols):
        out[:, j] = produced[col][-seq_len:]
    return out
