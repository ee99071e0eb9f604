"""Model-driven strategy: go long when the predicted return clears a volatility-scaled threshold.

At each bar's close the model (a folder written by ``thunes train``) predicts the forward log return
``mu`` and its standard deviation ``sigma`` over its horizon. The strategy enters when
``mu > threshold * sigma`` — a signal-to-noise rule, so the same ``threshold`` means the same confidence
in calm and in volatile markets — and exits when ``mu < exit_threshold * sigma``. Bars without a
prediction (warm-up, windows spanning a data gap) never enter and never force an exit.

Predictions at bar t use candles <= t only (:meth:`thunes.ml.serving.Forecaster.predict_frame`), and the
engine executes at t+1's open, so the strategy is causal. The model is served through ONNX when the
folder has ``model.onnx`` (no torch needed in the trader). Registered as ``"model"``.

The strategy remembers its last predictions (with the candles they came from). Called again on the same
candles (a threshold sweep) it reuses them; called on a window that slid by one new bar (the trader, once
per closed candle) it predicts only the new bar with :meth:`~thunes.ml.serving.Forecaster.predict_latest`
(features of the last window + one ONNX call: milliseconds) instead of every bar of the window. Any other
change of the candles recomputes everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thunes.core.errors import DataError, StrategyError
from thunes.strategies.base import Param, Signals, Strategy

__all__ = ["ModelSignalStrategy"]

_OHLCV = ["open", "high", "low", "close", "volume"]


class ModelSignalStrategy(Strategy):
    name = "model"
    model = Param(str, default="", doc="model folder written by `thunes train` (meta.json, model.onnx, ...)")
    threshold = Param(float, default=0.5, low=0.0, high=5.0, doc="enter when pred_ret > threshold * pred_vol")
    exit_threshold = Param(float, default=0.0, low=-5.0, high=5.0,
                           doc="exit when pred_ret < exit_threshold * pred_vol")
    backend = Param(str, default="auto", choices=("auto", "onnx", "torch"), doc="inference backend")

    def check(self) -> None:
        if self.exit_threshold > self.threshold:
            raise StrategyError(f"model strategy needs exit_threshold <= threshold, got "
                                f"exit_threshold={self.exit_threshold} > threshold={self.threshold}")

    @classmethod
    def from_forecaster(cls, forecaster: Any, *, predictions: pd.DataFrame | None = None,
                        **params: Any) -> ModelSignalStrategy:
        """A strategy around an already loaded :class:`~thunes.ml.serving.Forecaster`.

        ``predictions`` (``pred_ret``/``pred_vol`` indexed like the candles later passed to ``signals``)
        saves recomputing them; they are ignored when the candle index differs.
        """
        strategy = cls(**params)
        object.__setattr__(strategy, "_forecaster", forecaster)
        object.__setattr__(strategy, "_predictions", predictions)
        return strategy

    @property
    def forecaster(self) -> Any:
        loaded = getattr(self, "_forecaster", None)
        if loaded is None:
            if not self.model:
                raise StrategyError("strategy 'model' needs a model folder: --param model=artifacts/models/<name>")
            from thunes.ml.serving import Forecaster

            loaded = Forecaster.load(self.model, backend=self.backend)
            object.__setattr__(self, "_forecaster", loaded)
        return loaded

    @property
    def warmup(self) -> int:
        return int(self.forecaster.warmup)

    def predictions(self, candles: pd.DataFrame) -> pd.DataFrame:
        """``pred_ret``/``pred_vol`` per candle (NaN where no prediction); see the module docstring on reuse."""
        given = getattr(self, "_predictions", None)
        if given is not None and given.index.equals(candles.index):
            return given
        preds = self._reuse(candles)
        if preds is None:
            preds = self.forecaster.predict_frame(candles)
        object.__setattr__(self, "_memo", (candles[_OHLCV].to_numpy(dtype="float64"), preds))
        return preds

    def _reuse(self, candles: pd.DataFrame) -> pd.DataFrame | None:
        """Predictions from the last call when ``candles`` are those (or those plus one new bar), else None."""
        memo = getattr(self, "_memo", None)
        if memo is None or len(candles) == 0:
            return None
        values, preds = memo
        pos = preds.index.get_indexer(candles.index)
        known = pos >= 0
        if known.all():
            new_bar = False
        elif len(candles) > 1 and known[:-1].all():
            new_bar = True
        else:
            return None
        rows = pos[:-1] if new_bar else pos
        current = candles[_OHLCV].to_numpy(dtype="float64")
        if not np.array_equal(values[rows], current[: len(rows)], equal_nan=True):
            return None  # same timestamps, other candles (another symbol, a corrected bar)
        out = preds.iloc[rows].set_axis(candles.index[: len(rows)])
        if not new_bar:
            return out
        try:
            latest = self.forecaster.predict_latest(candles)
        except DataError:  # a gap or too little history for the fast path: let predict_frame decide
            return None
        last = pd.DataFrame({"pred_ret": [latest.ret], "pred_vol": [latest.vol]}, index=candles.index[-1:])
        return pd.concat([out, last])

    def signals(self, candles: pd.DataFrame) -> Signals:
        preds = self.predictions(candles)
        mu = preds["pred_ret"].to_numpy(dtype="float64")
        sigma = preds["pred_vol"].to_numpy(dtype="float64")
        known = np.isfinite(mu) & np.isfinite(sigma)
        with np.errstate(invalid="ignore"):
            entries = known & (mu > self.threshold * sigma)
            exits = known & (mu < self.exit_threshold * sigma)
        return Signals(entries=pd.Series(entries, index=candles.index),
                       exits=pd.Series(exits & ~entries, index=candles.index))
