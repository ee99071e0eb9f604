"""Out-of-sample evaluation: prediction quality, volatility calibration, a backtest, walk-forward folds.

* :func:`prediction_metrics` — directional accuracy, information coefficient (Spearman rank correlation
  of predicted and realised returns, plus Pearson), RMSE, and the calibration of the volatility head:
  the share of realised returns within 1 and 2 predicted sigmas of the predicted mean (0.683 / 0.954 for
  a calibrated Gaussian), the standard deviation of the z-scores (1 when calibrated), the mean realised /
  predicted volatility ratio and the correlation of predicted and realised volatility.
* :func:`compare_to_baselines` — is the model better than doing nothing clever? On non-overlapping
  horizons (one period every ``horizon`` rows: overlapping targets share returns and fake precision) the
  model is compared with three baselines: **always long** (directional accuracy, and the return of
  being long when the forecast is positive against being long always), **the sign of the last
  return** (directional accuracy) and **the zero-return forecast** (mean squared error). Each
  difference comes with a block-bootstrap standard error and 95 % interval and a plain verdict:
  ``"better than always-long at 95 %"`` only when the whole interval is above zero, else
  ``"not better than always-long at 95 %"``.
* :func:`evaluate_model` — those metrics on the rows a saved model never saw (windows starting at or
  after its test range, and anything after its last training candle), the baseline comparison, and a
  backtest of :class:`~thunes.strategies.model_signal.ModelSignalStrategy` through the standard
  backtester beside buy-and-hold over the same bars and costs.
* :func:`walk_forward` — expanding-window retraining over several folds: fold k trains on everything
  before cut k and is scored on the bars up to cut k+1, with windows that start after the training data
  (so at least ``seq_len + horizon`` bars separate the last training label from the first test input).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.errors import InsufficientData
from thunes.ml.dataset import make_targets
from thunes.ml.metrics import compare_to_baselines, format_comparison, non_overlapping, prediction_metrics

__all__ = [
    "EvaluationResult",
    "WalkForwardResult",
    "backtest_forecaster",
    "compare_to_baselines",
    "evaluate_model",
    "format_comparison",
    "non_overlapping",
    "prediction_metrics",
    "walk_forward",
]


def backtest_forecaster(candles: pd.DataFrame, forecaster: Any, *, threshold: float = 0.5,
                        exit_threshold: float = 0.0, symbol: str = "BTC/USDT", timeframe: str | None = None,
                        options: Any = None, predictions: pd.DataFrame | None = None) -> Any:
    """Backtest the model strategy on ``candles`` with an already loaded forecaster (standard engine)."""
    from thunes.backtest import run_backtest
    from thunes.strategies.model_signal import ModelSignalStrategy

    strategy = ModelSignalStrategy.from_forecaster(forecaster, threshold=threshold,
                                                   exit_threshold=exit_threshold, predictions=predictions)
    kwargs: dict[str, Any] = {"symbol": symbol}
    if timeframe:
        kwargs["timeframe"] = timeframe
    if options is not None:
        kwargs["options"] = options
    return run_backtest(candles, strategy, **kwargs)


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    metrics: dict[str, float]
    predictions: pd.DataFrame  # pred_ret, pred_vol, target_ret, target_vol on the evaluated rows
    backtest: Any | None
    start: pd.Timestamp | None
    baselines: dict[str, Any] | None = None  # compare_to_baselines on the evaluated rows
    buy_and_hold: Any | None = None  # the same bars and costs, long from the first out-of-sample bar


def _oos_start(meta: Any, candles: pd.DataFrame) -> pd.Timestamp:
    """First candle whose window the model never trained or validated on."""
    seq_len = int(meta.seq_len)
    if meta.test_range:
        first = pd.Timestamp(meta.test_range[0])
    elif meta.last_candle:
        first = pd.Timestamp(meta.last_candle) + (candles.index[1] - candles.index[0])
    else:
        return candles.index[0]
    pos = int(candles.index.searchsorted(first))
    return candles.index[min(pos + seq_len - 1, len(candles) - 1)]


def evaluate_model(forecaster: Any, candles: pd.DataFrame, *, start: pd.Timestamp | str | None = None,
                   backtest: bool = True, threshold: float = 0.5, exit_threshold: float = 0.0,
                   symbol: str | None = None, timeframe: str | None = None) -> EvaluationResult:
    """Metrics (and a backtest) on the rows from ``start`` (default: where the model's unseen data begins)."""
    meta = forecaster.meta
    begin = pd.Timestamp(start) if start is not None else _oos_start(meta, candles)
    preds = forecaster.predict_frame(candles)
    targets = make_targets(candles["close"], int(meta.horizon))
    frame = pd.concat([preds, targets], axis=1).loc[begin:]
    if frame[["pred_ret"]].dropna().empty:
        raise InsufficientData(f"no predictions from {begin}: too few candles after the model's training data")
    metrics = prediction_metrics(frame.pred_ret.to_numpy(), frame.pred_vol.to_numpy(), frame.target_ret.to_numpy(),
                                 frame.target_vol.to_numpy())
    horizon = int(meta.horizon)
    past = targets["target_ret"].shift(horizon).loc[begin:]  # the return over the horizon bars before
    rows = candles.index.get_indexer(frame.index)
    baselines = compare_to_baselines(frame.pred_ret.to_numpy(), frame.target_ret.to_numpy(), past.to_numpy(),
                                     horizon=horizon, rows=rows)
    metrics.update(_non_overlapping_metrics(frame, rows, horizon))
    result = hold = None
    if backtest:
        pos = max(int(candles.index.searchsorted(begin)) - forecaster.warmup, 0)
        window = candles.iloc[pos:]
        wpreds = preds.iloc[pos:].copy()
        wpreds.loc[wpreds.index < begin] = np.nan  # trade only on out-of-sample predictions
        result = backtest_forecaster(window, forecaster, threshold=threshold, exit_threshold=exit_threshold,
                                     symbol=symbol or meta.symbol or "BTC/USDT",
                                     timeframe=timeframe or meta.timeframe, predictions=wpreds)
        metrics.update({f"bt_{k}": v for k, v in _scalar_stats(result).items()})
        hold = _buy_and_hold(window, begin, result)
        metrics.update({f"bh_{k}": v for k, v in _scalar_stats(hold).items()})
    return EvaluationResult(metrics=metrics, predictions=frame, backtest=result, start=begin, baselines=baselines,
                            buy_and_hold=hold)


def _non_overlapping_metrics(frame: pd.DataFrame, rows: np.ndarray, horizon: int) -> dict[str, float]:
    """Directional accuracy and IC on one period every ``horizon`` rows (independent targets)."""
    ok = np.isfinite(frame.pred_ret.to_numpy()) & np.isfinite(frame.target_ret.to_numpy())
    keep = non_overlapping(np.asarray(rows)[ok], horizon)
    sub = frame[ok].iloc[keep]
    m = prediction_metrics(sub.pred_ret.to_numpy(), sub.pred_vol.to_numpy(), sub.target_ret.to_numpy())
    return {"n_non_overlapping": float(m.get("n", 0)),
            "directional_accuracy_non_overlapping": m.get("directional_accuracy", float("nan")),
            "ic_non_overlapping": m.get("ic", float("nan"))}


def _buy_and_hold(window: pd.DataFrame, begin: pd.Timestamp, model_run: Any) -> Any:
    """Long from the first out-of-sample bar to the end, same options and market as the model's run."""
    from thunes.backtest import run_backtest
    from thunes.strategies.base import Signals

    entries = pd.Series(False, index=window.index)
    entries.iloc[max(int(window.index.searchsorted(begin)) - 1, 0)] = True  # decided at the close before begin
    return run_backtest(window, signals=Signals(entries=entries), options=model_run.options,
                        symbol=model_run.symbol, timeframe=model_run.timeframe, market=model_run.market)


def _scalar_stats(result: Any) -> dict[str, float]:
    stats = getattr(result, "stats", {}) or {}
    keep = ("total_return", "sharpe", "max_drawdown", "n_trades", "win_rate", "profit_factor", "exposure")
    out = {}
    for k in keep:
        if k in stats:
            try:
                out[k] = float(stats[k])
            except (TypeError, ValueError):
                continue
    return out


@dataclass(frozen=True, kw_only=True)
class WalkForwardResult:
    folds: pd.DataFrame  # one row per fold: ranges, n, metrics, backtest stats
    summary: dict[str, float]  # metrics over all out-of-sample predictions pooled
    predictions: pd.DataFrame
    baselines: dict[str, Any] | None = None  # compare_to_baselines on the pooled predictions


def walk_forward(
    candles: pd.DataFrame,
    options: Any,
    *,
    folds: int = 3,
    min_train_frac: float = 0.4,
    timeframe: str | None = None,
    symbol: str | None = None,
    backtest: bool = True,
    threshold: float = 0.5,
    progress: bool = False,
) -> WalkForwardResult:
    """Expanding-window retraining: ``folds`` test blocks after an initial ``min_train_frac`` of the data."""
    from thunes.features import compute_features, get_feature_set
    from thunes.ml.serving import Forecaster, TorchPredictor
    from thunes.ml.train import train_model

    if folds < 1:
        raise InsufficientData(f"folds must be >= 1, got {folds}")
    n = len(candles)
    first_cut = int(n * min_train_frac)
    cuts = np.linspace(first_cut, n, folds + 1).astype(int)
    feats = compute_features(candles, feature_set=options.feature_set)
    warmup = int(get_feature_set(options.feature_set).warmup)
    targets = make_targets(candles["close"], options.horizon)
    fold_options = replace(options, test_frac=0.0)
    rows, pooled = [], []
    iterator: Any = range(folds)
    if progress:
        from thunes.progress import progress_bar

        iterator = progress_bar(iterator, desc="walk-forward", unit="fold")
    for k in iterator:
        cut, stop = int(cuts[k]), int(cuts[k + 1])
        trained = train_model(candles.iloc[:cut], fold_options, symbol=symbol, timeframe=timeframe,
                              features=feats.iloc[:cut])
        predict = trained.model.predict if options.model == "xgb" else TorchPredictor(trained.model).predict
        forecaster = Forecaster(predict, trained.meta, trained.dataset.scaler, backend="torch")
        lo = max(cut - warmup - options.seq_len, 0)
        window = candles.iloc[lo:stop]
        preds = forecaster.predict_frame(window, features=feats.iloc[lo:stop])
        # a test window must start at or after the cut: its first input row is after every training label
        preds.iloc[: cut - lo + options.seq_len - 1] = np.nan
        frame = pd.concat([preds, targets.iloc[lo:stop]], axis=1).iloc[cut - lo:]
        m = prediction_metrics(frame.pred_ret, frame.pred_vol, frame.target_ret, frame.target_vol)
        row: dict[str, Any] = {"fold": k + 1, "train_end": candles.index[cut - 1], "test_start": candles.index[cut],
                               "test_end": candles.index[stop - 1], **m}
        if backtest:
            bt = backtest_forecaster(window, forecaster, threshold=threshold, symbol=symbol or "BTC/USDT",
                                     timeframe=timeframe, predictions=preds)
            row.update({f"bt_{key}": v for key, v in _scalar_stats(bt).items()})
        rows.append(row)
        pooled.append(frame)
    all_preds = pd.concat(pooled)
    summary = prediction_metrics(all_preds.pred_ret, all_preds.pred_vol, all_preds.target_ret,
                                 all_preds.target_vol)
    pooled_rows = candles.index.get_indexer(all_preds.index)
    past = targets["target_ret"].shift(options.horizon).reindex(all_preds.index).to_numpy()
    baselines = compare_to_baselines(all_preds.pred_ret.to_numpy(), all_preds.target_ret.to_numpy(), past,
                                     horizon=options.horizon, rows=pooled_rows)
    summary.update(_non_overlapping_metrics(all_preds, pooled_rows, options.horizon))
    return WalkForwardResult(folds=pd.DataFrame(rows), summary=summary, predictions=all_preds, baselines=baselines)
