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

from dataclasses import dataclass
from typing import Literal

from thunes.core.errors import ConfigError, InsufficientData

__all__ = ["Fold", "WalkForwardScheme", "walk_forward_folds"]

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
            f"out-of-sample {oos_bars} bars per fold; need at least {min_bars} each (use fewer folds or more data)"
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
