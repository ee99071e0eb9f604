"""Out-of-sample evaluation: prediction quality, volatility calibration, a backtest, walk-forward folds.

* :func:`prediction_metrics` — directional accuracy, information coefficient (Spearman rank correlation
  of predicted and realised returns, plus Pearson), RMSE, and the calibration of the volatility head:
  the share of realised returns within 1 and 2 predicted sigmas of the predicted mean (0.683 / 0.954 for
  a calibrated Gaussian), the standard deviation of the z-scores (1 when calibrated), the mean realised /
  predicted volatility ratio and the correlation of predicted and realised volatility.
* :func:`evaluate_model` — those metrics on the rows a saved model never saw (windows starting at or
  after its test range, and anything after its last training candle), plus a backtest of
  :class:`~thunes.strategies.model_signal.ModelSignalStrategy` through the standard backtester.
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

__all__ = ["prediction_metrics", "evaluate_model", "EvaluationResult", "walk_forward", "WalkForwardResult",
           "backtest_forecaster"]


def _rank(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank(method="average").to_numpy()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def prediction_metrics(pred_ret: np.ndarray, pred_vol: np.ndarray, true_ret: np.ndarray,
                       true_vol: np.ndarray | None = None) -> dict[str, float]:
    """Quality of ``(return, volatility)`` predictions against realised values; NaN pairs are ignored."""
    pr, pv, tr = (np.asarray(a, dtype="float64") for a in (pred_ret, pred_vol, true_ret))
    tv = np.asarray(true_vol, dtype="float64") if true_vol is not None else np.full_like(tr, np.nan)
    ok = np.isfinite(pr) & np.isfinite(pv) & np.isfinite(tr)
    pr, pv, tr, tv = pr[ok], pv[ok], tr[ok], tv[ok]
    n = int(pr.size)
    if n == 0:
        return {"n": 0}
    moved = tr != 0
    err = tr - pr
    z = err / np.maximum(pv, 1e-12)
    tv_ok = np.isfinite(tv)
    return {
        "n": n,
        "directional_accuracy": float(np.mean(np.sign(pr[moved]) == np.sign(tr[moved]))) if moved.any() else
        float("nan"),
        "ic": _corr(_rank(pr), _rank(tr)),
        "ic_pearson": _corr(pr, tr),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "rmse_zero": float(np.sqrt(np.mean(tr ** 2))),  # RMSE of always predicting 0, for reference
        "coverage_1sigma": float(np.mean(np.abs(z) <= 1.0)),
        "coverage_2sigma": float(np.mean(np.abs(z) <= 2.0)),
        "z_std": float(np.std(z)),
        "vol_ratio": float(np.mean(tv[tv_ok]) / np.mean(pv[tv_ok])) if tv_ok.any() else float("nan"),
        "vol_corr": _corr(pv[tv_ok], tv[tv_ok]) if tv_ok.sum() > 1 else float("nan"),
        "nll": float(np.mean(0.5 * (np.log(2 * np.pi * pv ** 2) + z ** 2))),
    }


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
    result = None
    if backtest:
        pos = max(int(candles.index.searchsorted(begin)) - forecaster.warmup, 0)
        window = candles.iloc[pos:]
        wpreds = preds.iloc[pos:].copy()
        wpreds.loc[wpreds.index < begin] = np.nan  # trade only on out-of-sample predictions
        result = backtest_forecaster(window, forecaster, threshold=threshold, exit_threshold=exit_threshold,
                                     symbol=symbol or meta.symbol or "BTC/USDT",
                                     timeframe=timeframe or meta.timeframe, predictions=wpreds)
        metrics.update({f"bt_{k}": v for k, v in _scalar_stats(result).items()})
    return EvaluationResult(metrics=metrics, predictions=frame, backtest=result, start=begin)


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
    return WalkForwardResult(folds=pd.DataFrame(rows), summary=summary, predictions=all_preds)
