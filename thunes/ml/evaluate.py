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

__all__ = ["prediction_metrics", "evaluate_model", "EvaluationResult", "walk_forward", "WalkForwardResult",
           "backtest_forecaster", "compare_to_baselines", "non_overlapping", "format_comparison"]


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


def non_overlapping(rows: np.ndarray, horizon: int) -> np.ndarray:
    """Positions into ``rows`` (sorted row numbers) keeping one period every ``horizon`` rows, greedily
    from the first: the kept targets share no bar."""
    keep = []
    nxt = -np.inf
    for k, r in enumerate(np.asarray(rows)):
        if r >= nxt:
            keep.append(k)
            nxt = r + horizon
    return np.asarray(keep, dtype=np.int64)


def _block_bootstrap(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float, float, int]:
    """Circular block bootstrap of the mean of each column: (standard error, 2.5 %, 97.5 %) per column
    and the block length (about n^(1/3), so that serial dependence inside a block is kept)."""
    n = values.shape[0]
    block = max(1, int(round(n ** (1.0 / 3.0))))
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n] % n
    means = values[idx].mean(axis=1)
    return means.std(ddof=1, axis=0), np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0), block


def compare_to_baselines(pred_ret: np.ndarray, true_ret: np.ndarray, past_ret: np.ndarray, *, horizon: int,
                         rows: np.ndarray | None = None, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The model against always-long, the sign of the last return and the zero-return forecast.

    ``pred_ret``/``true_ret`` are the predicted and realised log returns over ``horizon`` bars,
    ``past_ret`` the realised return over the ``horizon`` bars before (its sign is a baseline), ``rows``
    the row numbers of the samples (default: consecutive). Only non-overlapping periods are used.
    Returns ``{"n_periods", "block", "rows": [...], "verdicts": [...]}``; each row gives the metric, the
    baseline, both values, the difference (positive = the model is better), its block-bootstrap
    standard error and 95 % interval, and the verdict.
    """
    p, y, last = (np.asarray(a, dtype="float64") for a in (pred_ret, true_ret, past_ret))
    rows = np.arange(p.size) if rows is None else np.asarray(rows)
    ok = np.isfinite(p) & np.isfinite(y) & np.isfinite(last)
    p, y, last, rows = p[ok], y[ok], last[ok], rows[ok]
    keep = non_overlapping(rows, int(horizon))
    p, y, last = p[keep], y[keep], last[keep]
    moved = y != 0
    p_m, y_m, l_m = p[moved], y[moved], last[moved]
    n = int(p.size)
    out: dict[str, Any] = {"n_periods": n, "horizon": int(horizon), "rows": [], "verdicts": []}
    if n < 20 or p_m.size < 20:
        out["verdicts"].append(f"too few non-overlapping periods ({n}) to compare with the baselines")
        return out
    hit = (np.sign(p_m) == np.sign(y_m)).astype(float)
    comparisons = [
        # metric, baseline, model values per period, baseline values per period, higher is better
        ("directional accuracy", "always-long", hit, (y_m > 0).astype(float), True),
        ("directional accuracy", "sign of the last return", hit, (np.sign(l_m) == np.sign(y_m)).astype(float), True),
        ("mean squared error", "zero-return forecast", (y - p) ** 2, y ** 2, False),
        ("return per period, long when the forecast is > 0", "always-long", np.where(p > 0, y, 0.0), y, True),
    ]
    rng = np.random.default_rng(seed)
    for metric, baseline, model, base, higher in comparisons:
        d = model - base if higher else base - model  # positive: the model is better
        se, lo, hi, block = _block_bootstrap(d[:, None], n_boot, rng)
        se, lo, hi = float(se[0]), float(lo[0]), float(hi[0])
        better = lo > 0
        verdict = (f"{'better' if better else 'not better'} than {baseline} at 95 % on {metric} "
                   f"(model {model.mean():.4g}, {baseline} {base.mean():.4g}; difference {d.mean():+.4g}, "
                   f"95 % interval [{lo:+.4g}, {hi:+.4g}], {d.size} periods)")
        out["rows"].append({"metric": metric, "baseline": baseline, "model": float(model.mean()),
                            "baseline_value": float(base.mean()), "diff": float(d.mean()), "se": se,
                            "ci_low": lo, "ci_high": hi, "better": bool(better), "periods": int(d.size),
                            "verdict": verdict})
        out["verdicts"].append(verdict)
        out["block"] = block
    return out


def format_comparison(comparison: dict[str, Any]) -> list[str]:
    """Printable lines: the baseline table (non-overlapping periods, block-bootstrap errors) and verdicts."""
    lines = [f"baselines on {comparison.get('n_periods', 0)} non-overlapping {comparison.get('horizon', '?')}-bar "
             f"periods (block bootstrap, block {comparison.get('block', '-')}):"]
    for r in comparison.get("rows", []):
        lines.append(f"  {r['metric']:<48} model {r['model']:<10.4g} {r['baseline']:<24} {r['baseline_value']:<10.4g}"
                     f" diff {r['diff']:+.4g} ± {r['se']:.2g}")
    lines += [f"  verdict: {v}" for v in comparison.get("verdicts", [])]
    return lines


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
