"""Walk-forward validation: split a history into in-sample / out-of-sample folds, optimise on each
in-sample window, evaluate the chosen parameters on the following out-of-sample window, and stitch the
out-of-sample returns into one equity curve.

Why: a study's best in-sample Sharpe is biased upwards by the search itself. Walk-forward measures the
*procedure* (optimise, then trade what you picked) on data the choice never saw. The window arithmetic
lives here as plain integer ranges so it can be tested on its own: the in-sample range of a fold always
ends before its out-of-sample range starts (plus an optional purge gap), and the out-of-sample ranges
tile the most recent part of the history without overlapping.

Two schemes:

* ``rolling``: every in-sample window has the same length and slides forward by one out-of-sample
  length per fold (old data is forgotten).
* ``anchored``: every in-sample window starts at the first bar and grows (old data is kept).

Ranges are half-open ``[start, end)`` bar positions. Bars that do not divide evenly are dropped at the
*start* of the history, so the last out-of-sample window always ends on the most recent bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from thunes.core.errors import ConfigError, InsufficientData

__all__ = [
    "Fold",
    "FoldResult",
    "WalkForwardResult",
    "WalkForwardScheme",
    "run_walk_forward",
    "trading_from",
    "walk_forward_folds",
]

WalkForwardScheme = Literal["rolling", "anchored"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fold:
    """One walk-forward fold: in-sample ``[is_start, is_end)``, out-of-sample ``[oos_start, oos_end)``."""

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int

    @property
    def is_bars(self) -> int:
        return self.is_end - self.is_start

    @property
    def oos_bars(self) -> int:
        return self.oos_end - self.oos_start

    def as_dict(self) -> dict[str, int]:
        return {
            "fold": self.index, "is_start": self.is_start, "is_end": self.is_end,
            "oos_start": self.oos_start, "oos_end": self.oos_end,
        }


def walk_forward_folds(
    n_bars: int,
    *,
    n_folds: int = 4,
    scheme: WalkForwardScheme = "rolling",
    is_oos_ratio: float = 3.0,
    is_bars: int | None = None,
    oos_bars: int | None = None,
    gap_bars: int = 0,
    min_bars: int = 2,
) -> list[Fold]:
    """The folds of a walk-forward over ``n_bars`` bars.

    By default the history is cut so that ``n_folds`` out-of-sample windows of equal length follow a
    first in-sample window ``is_oos_ratio`` times as long (so ``n_bars ≈ (is_oos_ratio + n_folds) ×
    oos_bars``). Give ``is_bars`` and ``oos_bars`` to fix the lengths instead; then the ``n_folds`` most
    recent folds are returned. ``gap_bars`` leaves a purge gap between each in-sample and
    out-of-sample window. In the anchored scheme every in-sample window starts at the first used bar.
    """
    if scheme not in ("rolling", "anchored"):
        raise ConfigError(f"walk-forward scheme must be 'rolling' or 'anchored', not {scheme!r}")
    if n_folds < 1:
        raise ConfigError(f"walk-forward n_folds must be >= 1, got {n_folds}")
    if gap_bars < 0:
        raise ConfigError(f"walk-forward gap_bars must be >= 0, got {gap_bars}")
    if (is_bars is None) != (oos_bars is None):
        raise ConfigError("walk-forward: give both is_bars and oos_bars, or neither")
    if is_bars is None or oos_bars is None:
        if is_oos_ratio <= 0:
            raise ConfigError(f"walk-forward is_oos_ratio must be > 0, got {is_oos_ratio}")
        oos_bars = int((n_bars - gap_bars) // (is_oos_ratio + n_folds))
        is_bars = int(oos_bars * is_oos_ratio)
    if is_bars < min_bars or oos_bars < min_bars:
        raise InsufficientData(
            f"walk-forward over {n_bars} bars with {n_folds} folds gives in-sample {is_bars} and "
            f"out-of-sample {oos_bars} bars per fold; need at least {min_bars} each "
            "(use fewer folds or more data)"
        )
    needed = is_bars + gap_bars + n_folds * oos_bars
    if needed > n_bars:
        raise InsufficientData(
            f"walk-forward needs {needed} bars (in-sample {is_bars} + gap {gap_bars} + {n_folds} × "
            f"out-of-sample {oos_bars}) but the data has {n_bars}"
        )
    first = n_bars - needed  # surplus bars dropped at the start: the last fold ends on the newest bar
    folds = []
    for k in range(n_folds):
        oos_start = first + is_bars + gap_bars + k * oos_bars
        is_end = oos_start - gap_bars
        is_start = first if scheme == "anchored" else is_end - is_bars
        folds.append(Fold(index=k, is_start=is_start, is_end=is_end, oos_start=oos_start,
                          oos_end=oos_start + oos_bars))
    return folds


# ------------------------------------------------------------------------------------ running a walk-forward


def trading_from(strategy: Any, start: pd.Timestamp) -> Any:
    """A copy of ``strategy`` that opens no position before ``start`` (bars before it are history only).

    Why: an out-of-sample backtest needs the preceding bars to warm its indicators up, but a position
    opened on those bars would carry in-sample time into the out-of-sample result.
    """
    cls = type(strategy)

    class _TradingFrom(cls):  # type: ignore[misc, valid-type]
        name = cls.name

        def signals(self, candles: pd.DataFrame):  # noqa: ANN202 - Signals
            from dataclasses import replace

            sig = super().signals(candles)
            before = candles.index < start
            if sig.target is not None:
                return replace(sig, target=sig.target.where(~before, 0.0))
            changes = {}
            for attr in ("entries", "short_entries"):
                s = getattr(sig, attr)
                if s is not None:
                    changes[attr] = s & ~before
            return replace(sig, **changes)

    _TradingFrom.__name__ = _TradingFrom.__qualname__ = f"{cls.__name__}TradingFrom"
    return _TradingFrom(**strategy.params)


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldResult:
    """One fold: the parameters chosen in-sample and what they did out-of-sample."""

    fold: Fold
    study_name: str
    params: dict[str, Any]
    is_values: list[float]
    is_stats: dict[str, float]
    oos_stats: dict[str, float]
    oos_returns: pd.Series = field(repr=False)
    oos_trades: pd.DataFrame = field(repr=False)
    is_period: tuple[pd.Timestamp, pd.Timestamp]
    oos_period: tuple[pd.Timestamp, pd.Timestamp]
    n_trials: int
    is_dsr: float = math.nan  # the fold study's Deflated Sharpe Ratio and PBO (in-sample selection)
    is_pbo: float = math.nan

    def row(self) -> dict[str, Any]:
        return {
            "fold": self.fold.index,
            "is_start": self.is_period[0], "is_end": self.is_period[1],
            "oos_start": self.oos_period[0], "oos_end": self.oos_period[1],
            **{f"param_{k}": v for k, v in self.params.items()},
            "is_sharpe": self.is_stats.get("sharpe", math.nan),
            "is_dsr": self.is_dsr,
            "is_pbo": self.is_pbo,
            "oos_sharpe": self.oos_stats.get("sharpe", math.nan),
            "oos_total_return": self.oos_stats.get("total_return", math.nan),
            "oos_max_drawdown": self.oos_stats.get("max_drawdown", math.nan),
            "oos_trades": self.oos_stats.get("n_trades", 0),
            "trials": self.n_trials,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkForwardResult:
    """All folds plus the stitched out-of-sample equity and its metrics."""

    scheme: str
    folds: list[FoldResult]
    oos_returns: pd.Series = field(repr=False)
    oos_equity: pd.Series = field(repr=False)
    oos_stats: dict[str, float]
    searched: tuple[str, ...] = ()  # the parameters the fold studies searched (the rest were fixed)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([f.row() for f in self.folds])

    @property
    def oos_sharpe(self) -> float:
        return float(self.oos_stats.get("sharpe", math.nan))


def run_walk_forward(
    spec: Any,
    candles: pd.DataFrame,
    *,
    data_source: str,
    scheme: WalkForwardScheme = "rolling",
    n_folds: int = 4,
    is_oos_ratio: float = 3.0,
    gap_bars: int = 0,
    n_trials: int,
    storage_url: str,
    study_name: str,
    workers: int = 1,
    progress: bool = True,
    storage_options: Any = None,
    store_url: str | None = None,
    sample_dir: Any = None,
) -> WalkForwardResult:
    """Optimise each fold's in-sample window (one resumable study per fold, named after the scheme and its
    arguments, e.g. ``<study>.wf-rolling-4folds-ratio3-gap0-<k>``, so another fold layout starts new studies),
    backtest the chosen parameters on the fold's out-of-sample window, and stitch those windows.

    Parameters are chosen from in-sample data only: the out-of-sample backtest starts
    ``strategy.warmup`` bars early for its indicators but opens no position before the window.
    """
    from thunes.optimize import _evaluate
    from thunes.optimize.evaluator import TrialEvaluator
    from thunes.optimize.study import run_study

    folds = walk_forward_folds(len(candles), n_folds=n_folds, scheme=scheme, is_oos_ratio=is_oos_ratio,
                               gap_bars=gap_bars)
    results: list[FoldResult] = []
    for fold in folds:
        is_frame = candles.iloc[fold.is_start:fold.is_end]
        fold_spec = spec.for_window(is_frame, data_source)
        name = f"{study_name}.wf-{scheme}-{n_folds}folds-ratio{is_oos_ratio:g}-gap{gap_bars}-{fold.index}"
        outcome = run_study(fold_spec, is_frame, n_trials=n_trials, storage_url=storage_url, study_name=name,
                            workers=workers, progress=progress, storage_options=storage_options,
                            desc=f"fold {fold.index + 1}/{len(folds)}", store_url=store_url,
                            sample_dir=sample_dir)
        strategy = spec.strategy_class()(**{**dict(spec.fixed_params), **outcome.best_params})
        warm_from = max(0, fold.oos_start - int(strategy.warmup))
        oos_frame = candles.iloc[warm_from:fold.oos_end]
        oos_start_ts = candles.index[fold.oos_start]
        evaluator = TrialEvaluator(spec, oos_frame)
        stats, equity, trades = _evaluate.run(oos_frame, trading_from(strategy, oos_start_ts),
                                              evaluator.options, spec.symbol, spec.timeframe)
        returns = _evaluate.bar_returns(equity, float(stats["initial_cash"])).loc[oos_start_ts:]
        oos_equity = equity.loc[oos_start_ts:]
        oos_trades = trades
        oos_stats = _evaluate.metrics(oos_equity, oos_trades, float(stats["initial_cash"]), spec.timeframe)
        results.append(FoldResult(
            fold=fold, study_name=name, params=outcome.best_params, is_values=outcome.best_values,
            is_stats=outcome.best_stats, oos_stats=oos_stats, oos_returns=returns, oos_trades=oos_trades,
            is_period=(candles.index[fold.is_start], candles.index[fold.is_end - 1]),
            oos_period=(oos_start_ts, candles.index[fold.oos_end - 1]), n_trials=outcome.n_complete,
            is_dsr=outcome.dsr.dsr if outcome.dsr else math.nan,
            is_pbo=outcome.pbo.pbo if outcome.pbo else math.nan,
        ))
    stitched = pd.concat([r.oos_returns for r in results])
    initial = float(results[0].oos_stats.get("initial_cash", 10_000.0)) if results else 10_000.0
    equity = initial * (1.0 + stitched).cumprod()
    trades = pd.concat([r.oos_trades for r in results if len(r.oos_trades)] or [results[0].oos_trades],
                       ignore_index=True)
    stats = _evaluate.metrics(equity, trades, initial, spec.timeframe)
    from thunes.optimize.spec import search_space

    searched = tuple(search_space(spec.strategy_class(), fixed=spec.fixed_params, ranges=spec.ranges))
    return WalkForwardResult(scheme=scheme, folds=results, oos_returns=stitched, oos_equity=equity,
                             oos_stats=stats, searched=searched)
