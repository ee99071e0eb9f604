"""Forecast scores: prediction quality, volatility calibration, and the comparison with naive baselines.

* :func:`prediction_metrics` — directional accuracy, information coefficient (Spearman rank correlation
  of predicted and realised returns, plus Pearson), RMSE, and the calibration of the volatility head.
* :func:`compare_to_baselines` — the model against always-long, the sign of the last return and the
  zero-return forecast, on non-overlapping horizons, with block-bootstrap intervals and a plain verdict.

Array code: training (:mod:`thunes.ml.train`) and evaluation (:mod:`thunes.ml.evaluate`) both score with
these, so neither imports the other for them. The details are in :mod:`thunes.ml.evaluate`'s docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["compare_to_baselines", "format_comparison", "non_overlapping", "prediction_metrics"]


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


def _block_bootstrap(values: np.ndarray, n_boot: int, rng: np.random.Generator
                     ) -> tuple[float, float, float, int]:
    """Circular block bootstrap of the mean of each column: (standard error, 2.5 %, 97.5 %) per column
    and the block length (about n^(1/3), so that serial dependence inside a block is kept)."""
    n = values.shape[0]
    block = max(1, int(round(n ** (1.0 / 3.0))))
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n] % n
    means = values[idx].mean(axis=1)
    low, high = np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)
    return means.std(ddof=1, axis=0), low, high, block


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
        ("directional accuracy", "sign of the last return", hit,
         (np.sign(l_m) == np.sign(y_m)).astype(float), True),
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
    lines = [f"baselines on {comparison.get('n_periods', 0)} non-overlapping "
             f"{comparison.get('horizon', '?')}-bar periods "
             f"(block bootstrap, block {comparison.get('block', '-')}):"]
    for r in comparison.get("rows", []):
        lines.append(f"  {r['metric']:<48} model {r['model']:<10.4g} {r['baseline']:<24} "
                     f"{r['baseline_value']:<10.4g} diff {r['diff']:+.4g} ± {r['se']:.2g}")
    lines += [f"  verdict: {v}" for v in comparison.get("verdicts", [])]
    return lines
