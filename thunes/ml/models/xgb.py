"""XGBoost two-head model on aggregated windows: a gradient-boosted alternative to the LSTM.

A window ``(seq_len, n_features)`` is flattened into ``4 * n_features`` aggregates — the last row, the
window mean, the window standard deviation and the change over the window (last − first) — so the trees
see the level, the regime and the trend of every feature without ``seq_len × n_features`` columns.
Two regressors share those inputs: one for the forward return, one for ``log`` of the realised
volatility (exponentiated at prediction time, so it is always positive). Both use early stopping on the
validation set and run on the GPU (``device="cuda"``) when XGBoost was built with CUDA and a GPU is
visible; otherwise on the CPU with the ``hist`` method, seeded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thunes.core.errors import ConfigError, DataError

__all__ = ["XGBOptions", "XGBTwoHead", "aggregate_windows", "xgb_device"]

_FILES = ("xgb_ret.json", "xgb_vol.json")


def xgb_device() -> str:
    """``"cuda"`` when XGBoost has CUDA support and a GPU is visible, else ``"cpu"``."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return "cpu"
    if shutil.which("nvidia-smi") is None:
        return "cpu"
    return "cuda"


def aggregate_windows(windows: np.ndarray) -> np.ndarray:
    """``(n, seq_len, f)`` → ``(n, 4f)``: last row, mean, std, last − first (float32)."""
    w = np.asarray(windows, dtype="float32")
    if w.ndim != 3:
        raise DataError(f"expected windows of shape (n, seq_len, features), got {w.shape}")
    return np.concatenate([w[:, -1, :], w.mean(axis=1), w.std(axis=1), w[:, -1, :] - w[:, 0, :]], axis=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class XGBOptions:
    n_estimators: int = 400
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 30
    seed: int = 42
    n_jobs: int | None = None  # None: XGBoost's default (all cores); 1 on a shared, busy machine
    device: str | None = None  # None: xgb_device()


class XGBTwoHead:
    """Return regressor + log-volatility regressor over :func:`aggregate_windows` features."""

    def __init__(self, ret_model: object, vol_model: object) -> None:
        self.ret_model = ret_model
        self.vol_model = vol_model

    @classmethod
    def fit(
        cls,
        train_windows: np.ndarray,
        train_ret: np.ndarray,
        train_vol: np.ndarray,
        val_windows: np.ndarray | None = None,
        val_ret: np.ndarray | None = None,
        val_vol: np.ndarray | None = None,
        *,
        options: XGBOptions = XGBOptions(),
    ) -> XGBTwoHead:
        import xgboost

        if np.any(np.asarray(train_vol) <= 0):
            raise DataError("volatility targets must be positive (log is taken)")
        x_train = aggregate_windows(train_windows)
        has_val = val_windows is not None and len(val_windows) > 0
        x_val = aggregate_windows(val_windows) if has_val else None
        params = dict(
            n_estimators=options.n_estimators, max_depth=options.max_depth, learning_rate=options.learning_rate,
            subsample=options.subsample, colsample_bytree=options.colsample_bytree, random_state=options.seed,
            n_jobs=options.n_jobs, tree_method="hist", device=options.device or xgb_device(),
            early_stopping_rounds=options.early_stopping_rounds if has_val else None,
        )
        models = []
        for y_train, y_val in ((train_ret, val_ret), (np.log(train_vol), None if val_vol is None else np.log(
                np.maximum(val_vol, 1e-12)))):
            model = xgboost.XGBRegressor(**params)
            eval_set = [(x_val, y_val)] if has_val and y_val is not None else None
            model.fit(x_train, np.asarray(y_train, dtype="float32"), eval_set=eval_set, verbose=False)
            models.append(model)
        return cls(models[0], models[1])

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = aggregate_windows(windows)
        ret = np.asarray(self.ret_model.predict(x), dtype="float64")
        vol = np.exp(np.asarray(self.vol_model.predict(x), dtype="float64"))
        return ret, vol

    @property
    def best_iterations(self) -> tuple[int | None, int | None]:
        def best(m: object) -> int | None:
            try:
                return int(m.best_iteration)  # type: ignore[attr-defined]
            except (AttributeError, ValueError, TypeError):
                return None

        return best(self.ret_model), best(self.vol_model)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.ret_model.save_model(folder / _FILES[0])  # type: ignore[attr-defined]
        self.vol_model.save_model(folder / _FILES[1])  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: str | Path) -> XGBTwoHead:
        import xgboost

        folder = Path(folder)
        missing = [f for f in _FILES if not (folder / f).exists()]
        if missing:
            raise ConfigError(f"XGBoost model folder {folder} lacks {missing}")
        models = []
        for name in _FILES:
            model = xgboost.XGBRegressor()
            model.load_model(folder / name)
            models.append(model)
        return cls(models[0], models[1])
