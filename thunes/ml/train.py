"""Training: leakage audit → dataset → LSTM2Head (or XGBoost) with early stopping → artifacts.

:func:`train_model` is the one service behind ``thunes train``. It

1. computes the feature set and runs the leakage audit from :mod:`thunes.features.leakage`; a finding
   stops training with :class:`LeakageDetected` unless ``allow_leakage`` is set, in which case the
   findings and the override are written to ``meta.json``;
2. builds the purged, embargoed, gap-aware dataset (:func:`thunes.ml.dataset.build_dataset`) with the
   scaler fitted on training rows only;
3. trains, seeded: on CPU two runs with the same seed give identical weights; on a GPU it uses CUDA with
   bfloat16 autocast (AMP). Early stopping keeps the weights of the best validation epoch;
4. measures out-of-sample metrics (validation and test) and training speed (samples/s), and writes the
   model folder (:func:`thunes.ml.artifacts.save_model`, with ONNX export for the LSTM).

Targets are divided by the training standard deviation of the forward return (``target_scale``) so
that the network and the boosters work on unit-scale numbers; predictions are multiplied back.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.errors import ConfigError, DataError
from thunes.ml.dataset import Dataset, DatasetOptions, build_dataset

__all__ = [
    "LeakageDetected",
    "TrainOptions",
    "TrainResult",
    "pick_device",
    "resolve_threads",
    "run_leakage_audit",
    "train_model",
]


class LeakageDetected(DataError):
    """The leakage audit found something; training is refused unless explicitly overridden."""

    def __init__(self, message: str, findings: list[str]) -> None:
        self.findings = findings
        super().__init__(message + "".join(f"\n  - {f}" for f in findings))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainOptions:
    """Everything that decides a training run (stored in ``meta.json['options']``)."""

    model: str = "lstm"  # "lstm" or "xgb"
    feature_set: str = "default"
    seq_len: int = 32
    horizon: int = 10
    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 5  # epochs without validation improvement before stopping
    vol_weight: float = 0.5
    grad_clip: float = 1.0
    seed: int = 42
    val_frac: float = 0.15
    test_frac: float = 0.15
    purge: int | None = None  # default seq_len + horizon (the minimum allowed)
    embargo: int = 0
    allow_leakage: bool = False
    device: str | None = None  # None or "auto": cuda when available, else cpu
    onnx: bool = True
    xgb_estimators: int = 400
    threads: int | None = None  # CPU threads for torch/XGBoost (None: resolve_threads() decides)

    def __post_init__(self) -> None:
        if self.model not in ("lstm", "xgb"):
            raise ConfigError(f"unknown model {self.model!r}: use 'lstm' or 'xgb'")
        for name in ("seq_len", "horizon", "hidden", "num_layers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def dataset_options(self) -> DatasetOptions:
        return DatasetOptions(feature_set=self.feature_set, seq_len=self.seq_len, horizon=self.horizon,
                              val_frac=self.val_frac, test_frac=self.test_frac, purge=self.purge,
                              embargo=self.embargo)


@dataclass(kw_only=True)
class TrainResult:
    model: Any
    meta: Any  # ModelMeta
    dataset: Dataset
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None
    samples_per_s: float = float("nan")
    train_seconds: float = float("nan")


def pick_device(requested: str | None = None) -> str:
    """``requested`` (``cpu``, ``cuda``, ``cuda:N``) if given, else ``cuda`` when torch sees a GPU, else ``cpu``.

    ``None`` and ``"auto"`` both mean "detect", so one command line runs unchanged on a laptop and on a GPU
    box; asking for ``cuda`` where there is none is a ``ConfigError``, not a silent fallback to the CPU.
    """
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    has_cuda = bool(torch is not None and torch.cuda.is_available())
    if requested in (None, "", "auto"):
        return "cuda" if has_cuda else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not has_cuda:
            raise ConfigError(f"device {requested!r} requested but torch sees no CUDA GPU; use --device auto or cpu")
        return requested
    raise ConfigError(f"unknown device {requested!r}: use auto, cpu or cuda")


def resolve_threads(requested: int | None = None) -> int:
    """CPU threads for torch/XGBoost: ``requested``, else every usable core unless the machine is busy.

    On a machine busier than its cores, OpenMP threads wait for each other's time slices and a batch on
    two threads can take many times as long as on one. So when the 1-minute load average already
    reaches the number of usable cores, one thread is used. Results are identical for a given
    thread count; the count used is recorded in ``meta.json["metrics"]["threads"]``.
    """
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"threads must be >= 1, got {requested}")
        return int(requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= cores - 0.5
    except OSError:  # pragma: no cover - no load average on this platform
        busy = False
    return 1 if busy or cores <= 1 else cores


# --------------------------------------------------------------------------------------------- audit
def run_leakage_audit(features: pd.DataFrame, close: pd.Series, *, horizon: int, scaler: Any = None,
                      train_end: int | None = None) -> list[str]:
    """Findings of :func:`thunes.features.leakage.audit_leakage` as readable strings (empty: clean).

    ``train_end`` is the number of leading rows the scaler may have seen (last training end + 1).
    """
    try:
        from thunes.features.leakage import audit_leakage
    except ImportError:  # the audit ships with thunes.features; refuse to pretend it ran
        return ["leakage audit unavailable: thunes.features.leakage could not be imported"]
    report = audit_leakage(features, close, horizon=horizon, scaler=scaler, train_end=train_end)
    return [f"[{f.check}] {f.column}: {getattr(f, 'message', None) or getattr(f, 'detail', '')}"
            for f in report.findings]


# ------------------------------------------------------------------------------------------ training
def _progress(iterable: Any, *, enabled: bool, desc: str, total: int | None = None) -> Any:
    from thunes.progress import progress_bar, show_progress

    if not show_progress(enabled):
        return iterable
    return progress_bar(iterable, desc=desc, total=total)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Any:
    """Run the block with torch on ``threads`` intra-op threads (restored afterwards); no-op without torch."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_lstm(ds: Dataset, options: TrainOptions, target_scale: float, *, progress: bool
                ) -> tuple[Any, list[dict[str, float]], int, float]:
    import torch

    torch.manual_seed(options.seed)
    return _train_lstm_loop(ds, options, target_scale, progress=progress)


def _train_lstm_loop(ds: Dataset, options: TrainOptions, target_scale: float, *, progress: bool
                     ) -> tuple[Any, list[dict[str, float]], int, float]:
    import torch

    from thunes.ml.models.lstm import LSTM2Head, two_head_loss

    device = torch.device(pick_device(options.device))
    use_amp = device.type == "cuda"  # bfloat16 autocast on GPU; CPU stays in float32 (deterministic)
    rng = np.random.default_rng(options.seed)
    values = torch.from_numpy(np.nan_to_num(ds.values, nan=0.0)).to(device)
    y_ret = torch.from_numpy((ds.targets["target_ret"].to_numpy() / target_scale).astype("float32"))
    y_ret = torch.nan_to_num(y_ret).to(device)
    offsets = torch.arange(-options.seq_len + 1, 1, device=device)

    def batch(ends: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.from_numpy(ends).to(device)
        return values[e[:, None] + offsets], y_ret[e]

    model = LSTM2Head(len(ds.feature_cols), options.hidden, options.num_layers, options.dropout).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    train_ends = ds.split.train
    val_ends = ds.split.val if ds.split.val.size else ds.split.train

    def evaluate(ends: np.ndarray) -> dict[str, float]:
        model.eval()
        tot = ret_l = vol_l = 0.0
        with torch.no_grad():
            for i in range(0, len(ends), 4096):
                x, y = batch(ends[i:i + 4096])
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                    r, v = model(x)
                t, rl, vl = two_head_loss(r.float(), v.float(), y, vol_weight=options.vol_weight)
                k = len(y)
                tot, ret_l, vol_l = tot + float(t) * k, ret_l + float(rl) * k, vol_l + float(vl) * k
        n = max(len(ends), 1)
        return {"loss": tot / n, "ret_mse": ret_l / n, "vol_nll": vol_l / n}

    history: list[dict[str, float]] = []
    best = math.inf
    best_state = copy.deepcopy(model.state_dict())
    stale = 0
    seen = 0
    train_time = 0.0
    epochs = _progress(range(1, options.epochs + 1), enabled=progress, desc="train", total=options.epochs)
    for epoch in epochs:
        model.train()
        t0 = time.perf_counter()
        order = train_ends[rng.permutation(train_ends.size)]
        run_loss = 0.0
        for i in range(0, order.size, options.batch_size):
            x, y = batch(order[i:i + options.batch_size])
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                r, v = model(x)
            loss, _, _ = two_head_loss(r.float(), v.float(), y, vol_weight=options.vol_weight)
            loss.backward()
            if options.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            opt.step()
            run_loss += float(loss.detach()) * len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
        seen += order.size
        val = evaluate(val_ends)
        row = {"epoch": epoch, "train_loss": run_loss / max(order.size, 1), "val_loss": val["loss"],
               "val_ret_mse": val["ret_mse"], "val_vol_nll": val["vol_nll"]}
        history.append(row)
        if progress and hasattr(epochs, "set_postfix"):
            epochs.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}")
        if val["loss"] < best - 1e-6:
            best, stale = val["loss"], 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= options.patience:
                break
    model.load_state_dict(best_state)
    model = model.to("cpu").eval()
    return model, history, seen, train_time


def _xgb_device(requested: str | None) -> str | None:
    """XGBoost's device for ``--device``: None (auto-detect, see ``xgb_device``), ``cpu`` or ``cuda``."""
    if requested in (None, "", "auto"):
        return None
    return "cuda" if requested.startswith("cuda") else "cpu"


def _train_xgb(ds: Dataset, options: TrainOptions, target_scale: float, threads: int
               ) -> tuple[Any, list[dict[str, float]], int, float]:
    from thunes.ml.models.xgb import XGBOptions, XGBTwoHead

    ret = ds.targets["target_ret"].to_numpy() / target_scale
    vol = np.maximum(ds.targets["target_vol"].to_numpy() / target_scale, 1e-6)
    tr, va = ds.split.train, ds.split.val
    t0 = time.perf_counter()
    model = XGBTwoHead.fit(
        ds.windows("train"), ret[tr], vol[tr],
        ds.windows("val") if va.size else None, ret[va] if va.size else None, vol[va] if va.size else None,
        options=XGBOptions(seed=options.seed, n_estimators=options.xgb_estimators, n_jobs=threads,
                           device=_xgb_device(options.device)),
    )
    elapsed = time.perf_counter() - t0
    best_ret, best_vol = model.best_iterations
    history = [{"best_iteration_ret": float(best_ret if best_ret is not None else -1),
                "best_iteration_vol": float(best_vol if best_vol is not None else -1)}]
    return model, history, int(tr.size), elapsed


def _predict_scaled(model: Any, ds: Dataset, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from thunes.ml.dataset import gather_windows

    if ends.size == 0:
        return np.zeros(0), np.zeros(0)
    if hasattr(model, "ret_model"):
        return model.predict(gather_windows(ds.values, ends, ds.options.seq_len))
    from thunes.ml.serving import TorchPredictor

    pred = TorchPredictor(model)
    rs, vs = [], []
    for i in range(0, ends.size, 4096):
        r, v = pred.predict(gather_windows(ds.values, ends[i:i + 4096], ds.options.seq_len))
        rs.append(r)
        vs.append(v)
    return np.concatenate(rs), np.concatenate(vs)


def train_model(
    candles: pd.DataFrame,
    options: TrainOptions = TrainOptions(),
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    out_dir: str | Path | None = None,
    features: pd.DataFrame | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train one model on ``candles``; write it to ``out_dir`` when given. See the module docstring."""
    from thunes.features import compute_features, get_feature_set
    from thunes.ml.artifacts import ModelMeta, save_model
    from thunes.ml.metrics import compare_to_baselines, prediction_metrics

    spec = get_feature_set(options.feature_set)
    if features is None:
        features = compute_features(candles, feature_set=options.feature_set)
    custom = [str(c) for c in features.columns if c != "gap_flag"] != [str(c) for c in spec.columns]
    # the hash certifies the columns only when they are exactly the named set's (a custom frame gets none,
    # so load_model() will refuse to serve it against the named set)
    feature_set_hash = None if custom else str(spec.hash)
    feature_set_version = None if custom else str(spec.version)
    ds = build_dataset(candles, options.dataset_options(), timeframe=timeframe, features=features)
    # --- leakage audit: blocks training on any finding unless overridden (and then recorded) ---
    last_train = int(ds.split.train[-1])
    findings = run_leakage_audit(ds.features, candles["close"], horizon=options.horizon, scaler=ds.scaler,
                                 train_end=last_train + 1)
    if findings and not options.allow_leakage:
        raise LeakageDetected(f"leakage audit found {len(findings)} problem(s); training refused "
                              "(override with --allow-leakage, which is recorded in meta.json)", findings)
    leakage = {"findings": findings, "override": bool(findings and options.allow_leakage),
               "train_end": ds.index[last_train].isoformat()}
    train_ret = ds.target("train", "target_ret")
    target_scale = float(np.std(train_ret)) or 1.0
    threads = resolve_threads(options.threads)
    device = pick_device(options.device) if options.model == "lstm" else None
    with _torch_threads(threads):
        if options.model == "lstm":
            model, history, seen, seconds = _train_lstm(ds, options, target_scale, progress=progress)
        else:
            model, history, seen, seconds = _train_xgb(ds, options, target_scale, threads)
        metrics: dict[str, Any] = {}
        for part in ("val", "test"):
            ends = getattr(ds.split, part)
            if ends.size < 2:
                continue
            r, v = _predict_scaled(model, ds, ends)
            metrics[part] = prediction_metrics(r * target_scale, v * target_scale, ds.target(part, "target_ret"),
                                               ds.target(part, "target_vol"))
            # The model against always-long, the last return's sign and the zero forecast (non-overlapping).
            all_ret = ds.targets["target_ret"].to_numpy(dtype="float64")
            past = np.where(ends >= options.horizon, all_ret[np.maximum(ends - options.horizon, 0)], np.nan)
            metrics[part]["baselines"] = compare_to_baselines(r * target_scale, ds.target(part, "target_ret"), past,
                                                              horizon=options.horizon, rows=ends)
    samples_per_s = seen / seconds if seconds > 0 else float("nan")
    metrics["train_samples_per_s"] = samples_per_s
    metrics["threads"] = threads
    if options.model == "lstm":
        metrics["device"] = device
        metrics["amp"] = "bfloat16" if str(device).startswith("cuda") else None  # autocast, see _train_lstm_loop
    else:
        from thunes.ml.models.xgb import xgb_device

        metrics["device"] = f"xgboost-{_xgb_device(options.device) or xgb_device()}"
    ranges = {p: list(r) if (r := ds.date_range(p)) else None for p in ("train", "val", "test")}
    meta = ModelMeta(
        model_type="lstm2head" if options.model == "lstm" else "xgboost", symbol=symbol, timeframe=timeframe,
        feature_set=options.feature_set, feature_set_hash=feature_set_hash,
        feature_set_version=feature_set_version, feature_cols=list(ds.feature_cols),
        input_size=len(ds.feature_cols), hidden=options.hidden if options.model == "lstm" else None,
        num_layers=options.num_layers if options.model == "lstm" else None,
        dropout=options.dropout if options.model == "lstm" else 0.0, seq_len=options.seq_len,
        horizon=options.horizon, target_scale=target_scale, train_range=ranges["train"],
        val_range=ranges["val"], test_range=ranges["test"], last_candle=candles.index[-1].isoformat(),
        seed=options.seed, metrics=metrics, leakage=leakage,
        samples={**ds.split.sizes(), **ds.counts.to_dict(), "purge": ds.split.purge, "embargo": ds.split.embargo},
        options=asdict(options), extra={"history": history, **({"custom_features": True} if custom else {})},
    )
    meta.scaler = ds.scaler
    path = None
    if out_dir is not None:
        with _torch_threads(threads):
            path = save_model(out_dir, model, meta, ds.scaler, onnx=options.onnx)
    return TrainResult(model=model, meta=meta, dataset=ds, history=history, path=path,
                       samples_per_s=samples_per_s, train_seconds=seconds)
