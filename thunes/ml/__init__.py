"""Machine learning: leakage-proof datasets, a two-head LSTM and XGBoost, artifacts, CPU serving, evaluation.

Importing :mod:`thunes.ml` needs neither torch nor xgboost (they are the optional ``ml`` extra): the
dataset and artifact-metadata code is numpy/pandas only, and each heavy dependency is imported inside
the module that needs it (``thunes.ml.models.lstm``, ``thunes.ml.models.xgb``, ``thunes.ml.train``,
``thunes.ml.serving`` for onnxruntime). The trader serves models through ONNX, so live inference
needs onnxruntime but not torch.

Flow: ``build_dataset`` (features → targets → gap-aware windows → purged split → train-only scaler) →
``train_model`` (leakage audit, LSTM2Head or XGBoost, early stopping) → ``save_model`` (one folder:
weights, scaler.json, meta.json, model.onnx) → ``Forecaster.load`` (serving) / ``evaluate_model``.
"""

from thunes.ml.dataset import (
    Dataset,
    DatasetOptions,
    FeatureScaler,
    Split,
    build_dataset,
    gather_windows,
    make_targets,
    temporal_split,
    valid_window_ends,
)

__all__ = [
    "Dataset",
    "DatasetOptions",
    "FeatureScaler",
    "Split",
    "build_dataset",
    "gather_windows",
    "make_targets",
    "temporal_split",
    "valid_window_ends",
]
