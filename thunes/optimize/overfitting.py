"""Overfitting statistics for a parameter search: the Deflated Sharpe Ratio and the Probability of
Backtest Overfitting.

Why: after N trials the best Sharpe ratio is high by construction, even on noise. Two standard
corrections are reported with every study:

* **Deflated Sharpe Ratio** (Bailey & López de Prado, 2014, "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality"). The probability that the true Sharpe ratio
  exceeds the Sharpe ratio one would *expect as the maximum of N unskilled trials*::

      SR0 = sqrt(V[SR_n]) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))        γ = Euler–Mascheroni
      DSR = Φ( (SR - SR0) sqrt(T - 1) / sqrt(1 - γ3 SR + (γ4 - 1)/4 SR²) )

  with SR the per-period (not annualised) Sharpe ratio of the chosen strategy over T returns, γ3 its
  skewness and γ4 its (non-excess) kurtosis, and V[SR_n] the variance of the per-period Sharpe ratios
  across the N trials. With N = 1 this is the Probabilistic Sharpe Ratio against 0.

* **Probability of Backtest Overfitting** by combinatorially symmetric cross-validation (Bailey,
  Borwein, López de Prado & Zhu, 2015). The T × N matrix of per-period returns (T periods, N trials) is
  cut into S blocks; for every way of choosing S/2 blocks as in-sample (the rest out-of-sample) the
  in-sample best trial is located and its out-of-sample relative rank ω ∈ (0, 1) is turned into the
  logit λ = ln(ω / (1 - ω)). PBO is the share of splits with λ ≤ 0: how often the in-sample winner is
  at or below the out-of-sample median.

PBO is computed from per-block moments (count, Σr, Σr²), which is exact for the Sharpe ratio and lets a
study store 3·S numbers per trial instead of its whole return series (see ``BlockMoments``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
from scipy import stats

from thunes.core.errors import ConfigError, InsufficientData

__all__ = [
    "EULER_GAMMA",
    "BlockMoments",
    "DeflatedSharpe",
    "PBOResult",
    "block_moments",
    "deflated_sharpe",
    "deflated_sharpe_from_returns",
    "expected_max_sharpe",
    "pbo_from_block_moments",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "sharpe_per_period",
]

EULER_GAMMA = 0.5772156649015329

PBOMetric = Literal["sharpe", "mean"]


def sharpe_per_period(returns: np.ndarray) -> float:
    """Mean over sample standard deviation (ddof=1) of one return series; 0.0 when it is flat."""
    r = np.asarray(returns, dtype="float64")
    finite = np.isfinite(r)
    if not finite.all():  # the copy only when needed: this runs once per trial, on every bar
        r = r[finite]
    if r.size < 2:
        return 0.0
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else 0.0


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum per-period Sharpe ratio of ``n_trials`` unskilled trials."""
    if n_trials < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1 or sharpe_variance <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(sharpe_variance) * (
        (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n)
        + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n * math.e))
    )


def probabilistic_sharpe_ratio(
    sharpe: float, *, benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> tuple[float, float]:
    """(PSR, z): the probability that the true per-period Sharpe exceeds ``benchmark``, and its z-score."""
    if n_obs < 2:
        raise InsufficientData(f"the Sharpe ratio test needs at least 2 returns, got {n_obs}")
    denom_sq = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    # A strongly skewed series can make the variance estimate non-positive; floor it to stay finite.
    denom = math.sqrt(max(denom_sq, 1e-12))
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / denom
    return float(stats.norm.cdf(z)), float(z)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeflatedSharpe:
    """The Deflated Sharpe Ratio of one selected strategy (all Sharpe ratios per period)."""

    dsr: float
    sharpe: float
    sharpe_benchmark: float
    z: float
    n_obs: int
    n_trials: int
    trials_sharpe_variance: float
    skew: float
    kurtosis: float

    def passes(self, threshold: float) -> bool:
        return bool(self.dsr >= threshold)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "dsr": self.dsr, "sharpe_per_period": self.sharpe, "sharpe_benchmark": self.sharpe_benchmark,
            "z": self.z, "n_obs": self.n_obs, "n_trials": self.n_trials,
            "trials_sharpe_variance": self.trials_sharpe_variance, "skew": self.skew,
            "kurtosis": self.kurtosis,
        }


def deflated_sharpe(
    *,
    sharpe: float,
    n_obs: int,
    n_trials: int,
    trials_sharpe_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> DeflatedSharpe:
    """DSR from summary statistics (per-period Sharpe, non-excess kurtosis; normal returns: 0 and 3)."""
    sr0 = expected_max_sharpe(n_trials, trials_sharpe_variance)
    dsr, z = probabilistic_sharpe_ratio(sharpe, benchmark=sr0, n_obs=n_obs, skew=skew, kurtosis=kurtosis)
    return DeflatedSharpe(
        dsr=dsr, sharpe=float(sharpe), sharpe_benchmark=float(sr0), z=z, n_obs=int(n_obs),
        n_trials=int(n_trials),
        trials_sharpe_variance=float(trials_sharpe_variance), skew=float(skew), kurtosis=float(kurtosis),
    )


def deflated_sharpe_from_returns(
    returns: np.ndarray, *, n_trials: int, trials_sharpe_variance: float
) -> DeflatedSharpe:
    """DSR of a per-period return series selected among ``n_trials`` trials."""
    r = np.asarray(returns, dtype="float64")
    r = r[np.isfinite(r)]
    if r.size < 3:
        raise InsufficientData(f"the Deflated Sharpe Ratio needs at least 3 returns, got {r.size}")
    flat = r.std() == 0
    skew = 0.0 if flat else float(stats.skew(r, bias=False))
    kurt = 3.0 if flat else float(stats.kurtosis(r, fisher=False, bias=False))
    return deflated_sharpe(
        sharpe=sharpe_per_period(r), n_obs=int(r.size), n_trials=n_trials,
        trials_sharpe_variance=trials_sharpe_variance, skew=skew, kurtosis=kurt,
    )


@dataclass(frozen=True, slots=True)
class BlockMoments:
    """Per-block sufficient statistics of N return series cut into S consecutive blocks.

    ``count`` has shape (S,), ``total`` and ``total_sq`` shape (S, N): Σr and Σr² per block and series.
    """

    count: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray

    @property
    def n_blocks(self) -> int:
        return int(self.count.shape[0])

    @property
    def n_series(self) -> int:
        return int(self.total.shape[1])

    def column(self, j: int) -> dict[str, list[float]]:
        """The moments of series ``j`` as JSON-ready lists (how a study stores them per trial)."""
        return {"count": self.count.tolist(), "sum": self.total[:, j].tolist(),
                "sum_sq": self.total_sq[:, j].tolist()}

    @classmethod
    def from_columns(cls, columns: list[dict[str, list[float]]]) -> BlockMoments:
        """Inverse of :meth:`column` over several series (all must share the block counts)."""
        if not columns:
            raise InsufficientData("no series to assemble block moments from")
        count = np.asarray(columns[0]["count"], dtype="float64")
        for i, col in enumerate(columns):
            if not np.array_equal(np.asarray(col["count"], dtype="float64"), count):
                raise ConfigError(f"series {i} was cut into different blocks than series 0")
        total = np.column_stack([np.asarray(c["sum"], dtype="float64") for c in columns])
        total_sq = np.column_stack([np.asarray(c["sum_sq"], dtype="float64") for c in columns])
        return cls(count, total, total_sq)


def block_moments(returns: np.ndarray, n_blocks: int) -> BlockMoments:
    """Cut the rows of a (T,) or (T, N) return array into ``n_blocks`` consecutive blocks (sizes differ by
    at most one) and sum each block. Non-finite returns count as 0."""
    r = np.asarray(returns, dtype="float64")
    if r.ndim == 1:
        r = r[:, None]
    if n_blocks < 2:
        raise ConfigError(f"n_blocks must be >= 2, got {n_blocks}")
    if r.shape[0] < n_blocks:
        raise InsufficientData(f"{r.shape[0]} returns cannot be cut into {n_blocks} blocks")
    finite = np.isfinite(r)
    if not finite.all():
        r = np.where(finite, r, 0.0)
    edges = np.linspace(0, r.shape[0], n_blocks + 1).astype(np.int64)
    count = np.diff(edges).astype("float64")
    total = np.add.reduceat(r, edges[:-1], axis=0)
    total_sq = np.add.reduceat(r * r, edges[:-1], axis=0)
    return BlockMoments(count, total, total_sq)


@dataclass(frozen=True, slots=True, kw_only=True)
class PBOResult:
    """Outcome of CSCV: ``pbo`` and the logit of every split (``logits``)."""

    pbo: float
    logits: np.ndarray
    n_splits: int
    n_blocks: int
    n_trials: int
    metric: str

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "pbo": self.pbo, "n_splits": self.n_splits, "n_blocks": self.n_blocks, "n_trials": self.n_trials,
            "metric": self.metric, "median_logit": float(np.median(self.logits)),
        }


def _performance(count: np.ndarray, total: np.ndarray, total_sq: np.ndarray, metric: PBOMetric) -> np.ndarray:
    mean = total / count[:, None]
    if metric == "mean":
        return mean
    var = np.maximum(total_sq / count[:, None] - mean * mean, 0.0)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A flat series has no Sharpe ratio; rank it by the sign of its mean (0 when it never traded).
        flat = np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0))
        return np.where(sd > 1e-15, mean / np.where(sd > 1e-15, sd, 1.0), flat)


def pbo_from_block_moments(moments: BlockMoments, *, metric: PBOMetric = "sharpe") -> PBOResult:
    """PBO by CSCV over every choice of half the blocks as in-sample."""
    s, n = moments.n_blocks, moments.n_series
    if s < 2 or s % 2:
        raise ConfigError(f"CSCV needs an even number of blocks >= 2, got {s}")
    if n < 2:
        raise InsufficientData(f"PBO needs at least 2 trials to compare, got {n}")
    if metric not in ("sharpe", "mean"):
        raise ConfigError(f"PBO metric must be 'sharpe' or 'mean', not {metric!r}")
    picks = np.array(list(combinations(range(s), s // 2)), dtype=np.int64)
    mask = np.zeros((picks.shape[0], s), dtype="float64")
    np.put_along_axis(mask, picks, 1.0, axis=1)
    # Each split's in-sample / out-of-sample moments are sums of block moments: one matrix product.
    perf_is = _performance(mask @ moments.count, mask @ moments.total, mask @ moments.total_sq, metric)
    inv = 1.0 - mask
    perf_oos = _performance(inv @ moments.count, inv @ moments.total, inv @ moments.total_sq, metric)
    perf_is = np.where(np.isnan(perf_is), -np.inf, perf_is)
    perf_oos = np.where(np.isnan(perf_oos), -np.inf, perf_oos)
    best = np.argmax(perf_is, axis=1)
    ranks = stats.rankdata(perf_oos, axis=1, method="average")  # 1 = worst, N = best
    omega = ranks[np.arange(best.size), best] / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(pbo=float(np.mean(logits <= 0.0)), logits=logits, n_splits=int(best.size), n_blocks=s,
                     n_trials=n, metric=metric)


def probability_of_backtest_overfitting(
    returns: np.ndarray, *, n_blocks: int = 16, metric: PBOMetric = "sharpe"
) -> PBOResult:
    """PBO of a (T, N) matrix of per-period returns: T periods (rows) of N trials (columns)."""
    r = np.asarray(returns, dtype="float64")
    if r.ndim != 2:
        raise ConfigError(f"returns must be a (periods, trials) matrix, got shape {r.shape}")
    return pbo_from_block_moments(block_moments(r, n_blocks), metric=metric)
