"""Model artifacts: one folder per model, and a loader that accepts the checkpoints found in the wild.

Folder layout (written by :func:`save_model`)::

    <dir>/meta.json      ModelMeta: feature set name/hash/columns, shapes, seq_len, horizon, date ranges,
                         metrics, leakage-audit outcome (and any override), code version
    <dir>/scaler.json    FeatureScaler fitted on training rows only
    <dir>/model.pt       LSTM2Head state dict (torch) — or xgb_ret.json + xgb_vol.json (XGBoost)
    <dir>/model.onnx     the LSTM exported for torch-free serving (optional)

:func:`load_model` returns ``(model, meta)``. For torch checkpoints it unwraps the usual containers
(``{"state": …}``, ``{"model_state_dict": …}``, ``{"state_dict": …}``, ``{"model": …}``, nested in any
order), strips ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes, maps common head
names (``fc_ret``/``return_head``/… → ``ret_head``) and infers ``input_size``/``hidden``/``num_layers``
from the weight shapes when ``meta.json`` is missing or incomplete. It refuses a model whose feature
columns (or feature-set hash) differ from the current feature set: feeding it other columns would give
silently wrong predictions.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError, DataError
from thunes.ml.dataset import FeatureScaler

__all__ = [
    "META_FILE",
    "ONNX_FILE",
    "SCALER_FILE",
    "TORCH_FILE",
    "ModelCompatibilityError",
    "ModelMeta",
    "check_feature_compatibility",
    "code_version",
    "export_onnx",
    "extract_state_dict",
    "infer_lstm_arch",
    "load_meta",
    "load_model",
    "load_scaler",
    "save_model",
]

META_FILE = "meta.json"
SCALER_FILE = "scaler.json"
TORCH_FILE = "model.pt"
ONNX_FILE = "model.onnx"
XGB_FILES = ("xgb_ret.json", "xgb_vol.json")


class ModelCompatibilityError(ConfigError):
    """The model was trained on inputs that the current code does not produce (columns, order, hash)."""


@dataclass(kw_only=True)
class ModelMeta:
    """What ``meta.json`` holds. Unknown keys from older files are kept in ``extra``."""

    model_type: str = "lstm2head"  # or "xgboost"
    symbol: str | None = None
    timeframe: str | None = None
    feature_set: str = "default"
    feature_set_hash: str | None = None
    feature_set_version: str | None = None
    feature_cols: list[str] = field(default_factory=list)
    input_size: int | None = None
    hidden: int | None = None
    num_layers: int | None = None
    dropout: float = 0.0
    seq_len: int | None = None
    horizon: int | None = None
    target_scale: float = 1.0  # the model predicts returns/vols divided by this
    train_range: list[str] | None = None
    val_range: list[str] | None = None
    test_range: list[str] | None = None
    last_candle: str | None = None  # open time of the last candle the model's data contained
    trained_at: str | None = None
    code_version: str | None = None
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    leakage: dict[str, Any] = field(default_factory=dict)  # {"findings": [...], "override": bool}
    samples: dict[str, Any] = field(default_factory=dict)  # split sizes and dropped-window counts
    options: dict[str, Any] = field(default_factory=dict)
    onnx: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # loaded from scaler.json by load_model(); never written into meta.json
    scaler: FeatureScaler | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "scaler")}
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeta:
        known = {f.name for f in fields(cls)} - {"extra", "scaler"}
        aliases = {"hidden_size": "hidden", "n_features": "input_size", "layers": "num_layers",
                   "sequence_length": "seq_len", "features": "feature_cols", "columns": "feature_cols"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = dict(data.get("extra", {}) or {})
        for key, value in data.items():
            if key == "extra":
                continue
            name = aliases.get(key, key)
            if name in known and name not in kwargs:
                kwargs[name] = value
            else:
                extra[key] = value
        if "feature_cols" in kwargs and kwargs["feature_cols"] is not None:
            kwargs["feature_cols"] = [str(c) for c in kwargs["feature_cols"]]
        return cls(**kwargs, extra=extra)


def code_version() -> str:
    """``thunes <version>`` plus the git commit when running from a checkout."""
    from thunes import __version__

    version = f"thunes {__version__}"
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip()
        if commit:
            version += f" ({commit})"
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def _write_json(path: Path, data: Any) -> None:
    from thunes.files import atomic_write

    atomic_write(path, json.dumps(data, indent=2, sort_keys=False, default=str))


def save_model(folder: str | Path, model: Any, meta: ModelMeta, scaler: FeatureScaler | None,
               *, onnx: bool = True) -> Path:
    """Write weights, scaler and ``meta.json`` (and ``model.onnx`` for an LSTM when ``onnx``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta.trained_at = meta.trained_at or datetime.now(UTC).isoformat(timespec="seconds")
    meta.code_version = meta.code_version or code_version()
    if scaler is not None:
        if meta.feature_cols and tuple(meta.feature_cols) != scaler.feature_names:
            raise DataError("scaler feature names differ from meta.feature_cols; refusing to save")
        _write_json(folder / SCALER_FILE, scaler.to_dict())
    if meta.model_type == "xgboost":
        model.save(folder)
        meta.onnx = None
    else:
        import torch

        torch.save({"state_dict": model.state_dict(),
                    "arch": {"input_size": meta.input_size, "hidden": meta.hidden,
                             "num_layers": meta.num_layers, "dropout": meta.dropout}},
                   folder / TORCH_FILE)
        if onnx:
            export_onnx(model, folder / ONNX_FILE, seq_len=int(meta.seq_len or 1))
            meta.onnx = ONNX_FILE
    _write_json(folder / META_FILE, meta.to_dict())
    return folder


def load_meta(folder: str | Path) -> ModelMeta:
    path = Path(folder) / META_FILE
    if not path.exists():
        raise ConfigError(f"{path} not found: is {folder} a model folder (written by `thunes train`)?")
    try:
        return ModelMeta.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc


def load_scaler(folder: str | Path) -> FeatureScaler | None:
    path = Path(folder) / SCALER_FILE
    if not path.exists():
        return None
    return FeatureScaler.from_dict(json.loads(path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------------------- checkpoint unwrapping
_CONTAINER_KEYS = ("state", "model_state_dict", "state_dict", "model", "net", "weights")
_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
_HEAD_ALIASES = {
    "ret_head": ("fc_ret", "head_ret", "return_head", "head_return", "fc_return", "ret_fc", "mu_head",
                 "fc_mu", "mean_head"),
    "vol_head": ("fc_vol", "head_vol", "volatility_head", "head_volatility", "fc_volatility", "vol_fc",
                 "sigma_head", "fc_sigma", "std_head"),
}


def _is_tensor_map(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or not obj:
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is required for checkpoints anyway
        return False
    return all(isinstance(k, str) for k in obj) and any(isinstance(v, torch.Tensor) for v in obj.values())


def extract_state_dict(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, side_info)`` from any common checkpoint shape; side_info holds non-weight entries.

    Accepts a bare state dict or a dict nesting one under ``state``/``model_state_dict``/``state_dict``/
    ``model``/… (at any depth); strips ``module.``/``_orig_mod.``/``model.`` prefixes and renames head
    aliases to ``ret_head``/``vol_head``.
    """
    side: dict[str, Any] = {}
    node = obj
    for _ in range(6):
        if _is_tensor_map(node) and any(k.split(".")[-1].startswith(("weight", "bias")) for k in node):
            break
        if not isinstance(node, Mapping):
            break
        for key, value in node.items():
            if key not in _CONTAINER_KEYS and not _is_tensor_map(value):
                side.setdefault(key, value)
        inner = next((node[k] for k in _CONTAINER_KEYS if k in node and isinstance(node[k], Mapping)), None)
        if inner is None:
            break
        node = inner
    if not _is_tensor_map(node):
        raise DataError("checkpoint holds no state dict (looked for keys "
                        f"{', '.join(_CONTAINER_KEYS)} and for a mapping of tensors)")
    state: dict[str, Any] = {}
    for key, value in node.items():
        if not hasattr(value, "shape"):
            continue
        name = _strip_prefixes(key)
        head, _, rest = name.partition(".")
        for canonical, aliases in _HEAD_ALIASES.items():
            if head in aliases:
                name = f"{canonical}.{rest}"
        if name in state:
            raise DataError(f"checkpoint has two tensors that both map to {name!r} (original key {key!r})")
        state[name] = value
    return state, side


_KNOWN_HEADS = ("lstm", "ret_head", "vol_head") + tuple(a for v in _HEAD_ALIASES.values() for a in v)


def _strip_prefixes(key: str) -> str:
    """Remove wrapper prefixes: always ``module.``/``_orig_mod.``; ``model.``/``net.`` before a known part."""
    name = key
    while True:
        for prefix in _PREFIXES:
            if name.startswith(prefix) and (
                prefix in ("module.", "_orig_mod.") or name[len(prefix):].split(".")[0] in _KNOWN_HEADS
                or name[len(prefix):].startswith(_PREFIXES)
            ):
                name = name[len(prefix):]
                break
        else:
            return name


_LAYER = re.compile(r"^lstm\.weight_ih_l(\d+)$")


def infer_lstm_arch(state: Mapping[str, Any]) -> dict[str, int]:
    """``input_size``, ``hidden`` and ``num_layers`` from the shapes of an LSTM2Head state dict."""
    if "lstm.weight_ih_l0" not in state or "lstm.weight_hh_l0" not in state:
        raise DataError("cannot infer the architecture: no 'lstm.weight_ih_l0'/'lstm.weight_hh_l0' in the "
                        f"checkpoint (keys: {sorted(state)[:8]}…)")
    ih = state["lstm.weight_ih_l0"]
    hh = state["lstm.weight_hh_l0"]
    hidden = int(hh.shape[1])
    if int(ih.shape[0]) != 4 * hidden:
        raise DataError(f"lstm.weight_ih_l0 has {ih.shape[0]} rows; an LSTM with hidden={hidden} needs "
                        f"{4 * hidden}")
    layers = sorted(int(m.group(1)) for k in state if (m := _LAYER.match(k)))
    if any(k.endswith("_reverse") for k in state):
        raise DataError("bidirectional LSTM checkpoints are not LSTM2Head models")
    for head in ("ret_head.weight", "vol_head.weight"):
        if head not in state:
            raise DataError(f"checkpoint lacks {head!r}; found keys {sorted(state)[:12]}")
    return {"input_size": int(ih.shape[1]), "hidden": hidden, "num_layers": len(layers)}


# ---------------------------------------------------------------------------- feature compatibility
def check_feature_compatibility(meta: ModelMeta, *, strict_hash: bool = True) -> None:
    """Refuse a model whose feature columns (or, with ``strict_hash``, feature-set hash) are not current."""
    from thunes.features import get_feature_set

    try:
        spec = get_feature_set(meta.feature_set)
    except Exception as exc:  # unknown feature set name
        raise ModelCompatibilityError(f"model needs feature set {meta.feature_set!r}, which this version of "
                                      f"thunes does not have: {exc}") from exc
    current = [str(c) for c in spec.columns]
    if not meta.feature_cols:
        if meta.input_size is not None and meta.input_size != len(current):
            raise ModelCompatibilityError(
                f"model has no feature_cols in meta.json and takes {meta.input_size} inputs, but feature set "
                f"{meta.feature_set!r} has {len(current)} columns"
            )
        meta.feature_cols = current
        meta.extra["feature_cols_inferred"] = True
        return
    if list(meta.feature_cols) != current:
        missing = [c for c in meta.feature_cols if c not in current]
        added = [c for c in current if c not in meta.feature_cols]
        if missing or added:
            detail = f"no longer produced: {missing[:8]}; new: {added[:8]}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(meta.feature_cols, current)) if a != b)
            detail = f"same columns in another order (position {i}: model {meta.feature_cols[i]!r}, " \
                     f"current {current[i]!r})"
        raise ModelCompatibilityError(
            f"model was trained on feature set {meta.feature_set!r} with {len(meta.feature_cols)} columns that "
            f"do not match the current set ({len(current)} columns): {detail}. Retrain the model."
        )
    if strict_hash and meta.feature_set_hash and str(spec.hash) != meta.feature_set_hash:
        raise ModelCompatibilityError(
            f"feature set {meta.feature_set!r} changed since training (hash {meta.feature_set_hash} → "
            f"{spec.hash}, version {meta.feature_set_version} → {spec.version}): the same column names now "
            "mean something else. Retrain the model."
        )


# ------------------------------------------------------------------------------------------- loading
def _load_torch_checkpoint(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read checkpoint {path}: {exc}") from exc


def load_model(path: str | Path, *, check_features: bool = True, strict_hash: bool = True) -> tuple[Any, ModelMeta]:
    """Load a model folder (or a bare ``.pt``/``.pth`` checkpoint) → ``(model, meta)``.

    The training scaler (``scaler.json``, or a ``scaler`` entry inside a legacy checkpoint) is attached as
    ``meta.scaler``. ``check_features`` refuses models whose columns differ from the current feature set.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"model path {path} does not exist")
    folder = path if path.is_dir() else path.parent
    meta = load_meta(folder) if (folder / META_FILE).exists() else ModelMeta(model_type="lstm2head")
    scaler = load_scaler(folder)
    if meta.model_type == "xgboost":
        from thunes.ml.models.xgb import XGBTwoHead

        model: Any = XGBTwoHead.load(folder)
    else:
        ckpt_path = path if path.is_file() else next(
            (folder / n for n in (TORCH_FILE, "model.pth", "checkpoint.pt", "best.pt") if (folder / n).exists()),
            None)
        if ckpt_path is None:
            raise ConfigError(f"{folder} has no {TORCH_FILE} (nor model.pth/checkpoint.pt/best.pt)")
        state, side = extract_state_dict(_load_torch_checkpoint(ckpt_path))
        arch = infer_lstm_arch(state)
        # meta from side info of the checkpoint fills what meta.json lacks
        for key in ("arch", "config", "hparams", "hyper_parameters", "args", "meta"):
            info = side.get(key)
            if isinstance(info, Mapping):
                filled = ModelMeta.from_dict(info)
                for f in ("feature_cols", "seq_len", "horizon", "feature_set", "target_scale", "dropout"):
                    value = getattr(filled, f)
                    default = getattr(ModelMeta(), f)
                    if value not in (None, [], default) and getattr(meta, f) in (None, [], default):
                        setattr(meta, f, value)
        for name, inferred in arch.items():
            declared = getattr(meta, name)
            if declared is not None and int(declared) != inferred:
                raise DataError(f"meta.json says {name}={declared} but the weights have {name}={inferred}")
            setattr(meta, name, inferred)
        if scaler is None and isinstance(side.get("scaler"), Mapping):
            sc = dict(side["scaler"])
            sc.setdefault("feature_names", meta.feature_cols or [f"f{i}" for i in range(arch["input_size"])])
            scaler = FeatureScaler.from_dict(sc)
        from thunes.ml.models.lstm import LSTM2Head

        model = LSTM2Head(arch["input_size"], arch["hidden"], arch["num_layers"], float(meta.dropout or 0.0))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DataError(f"checkpoint does not fit LSTM2Head: missing {list(missing)}, "
                            f"unexpected {list(unexpected)}")
        model.eval()
    if check_features:
        check_feature_compatibility(meta, strict_hash=strict_hash)
    if scaler is not None and meta.feature_cols and scaler.feature_names != tuple(meta.feature_cols):
        if meta.extra.get("feature_cols_inferred") or all(n.startswith("f") for n in scaler.feature_names):
            scaler = FeatureScaler.from_dict({**scaler.to_dict(), "feature_names": list(meta.feature_cols)})
        else:
            raise ModelCompatibilityError("scaler.json feature names differ from meta.json feature_cols")
    meta.scaler = scaler
    return model, meta


def export_onnx(model: Any, path: str | Path, *, seq_len: int, opset: int = 17) -> Path:
    """Export an ``LSTM2Head`` to ONNX (input ``x``: ``(batch, seq_len, features)``; outputs ``ret``, ``vol``)."""
    import torch

    path = Path(path)
    was_training = model.training
    model.eval()
    dummy = torch.zeros((1, seq_len, model.arch.input_size), dtype=torch.float32)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes about LSTM batch sizes: h0 is built from x
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["x"], output_names=["ret", "vol"],
            dynamic_axes={"x": {0: "batch"}, "ret": {0: "batch"}, "vol": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    model.train(was_training)
    return path
