"""Walk-forward window arithmetic: in-sample never overlaps out-of-sample, OOS tiles the recent data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thunes.core.errors import ConfigError, InsufficientData
from thunes.optimize.walk_forward import Fold, walk_forward_folds


def test_rolling_folds_golden() -> None:
    # 1000 bars, 4 folds, IS = 3 × OOS: OOS = 1000 // 7 = 142, IS = 426, 6 surplus bars dropped at the start.
    folds = walk_forward_folds(1000, n_folds=4, scheme="rolling")

    assert [f.as_dict() for f in folds] == [
        {"fold": 0, "is_start": 6, "is_end": 432, "oos_start": 432, "oos_end": 574},
        {"fold": 1, "is_start": 148, "is_end": 574, "oos_start": 574, "oos_end": 716},
        {"fold": 2, "is_start": 290, "is_end": 716, "oos_start": 716, "oos_end": 858},
        {"fold": 3, "is_start": 432, "is_end": 858, "oos_start": 858, "oos_end": 1000},
    ]


def test_anchored_folds_start_at_first_bar_and_grow() -> None:
    folds = walk_forward_folds(1000, n_folds=4, scheme="anchored")

    assert [(f.is_start, f.is_end) for f in folds] == [(6, 432), (6, 574), (6, 716), (6, 858)]
    assert [f.oos_bars for f in folds] == [142] * 4


def test_explicit_lengths_with_purge_gap() -> None:
    folds = walk_forward_folds(100, n_folds=2, is_bars=40, oos_bars=20, gap_bars=5)

    assert folds == [
        Fold(index=0, is_start=15, is_end=55, oos_start=60, oos_end=80),
        Fold(index=1, is_start=35, is_end=75, oos_start=80, oos_end=100),
    ]


def test_too_little_data_is_refused_with_the_arithmetic() -> None:
    with pytest.raises(InsufficientData, match=r"needs 130 bars .* has 100"):
        walk_forward_folds(100, n_folds=3, is_bars=40, oos_bars=30)
    with pytest.raises(InsufficientData, match="at least 2 each"):
        walk_forward_folds(5, n_folds=4)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="scheme"):
        walk_forward_folds(1000, scheme="expanding")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="both is_bars and oos_bars"):
        walk_forward_folds(1000, is_bars=100)


@settings(max_examples=300, deadline=None)
@given(
    n_bars=st.integers(50, 50_000),
    n_folds=st.integers(1, 12),
    ratio=st.floats(0.5, 8.0),
    gap=st.integers(0, 10),
    scheme=st.sampled_from(["rolling", "anchored"]),
)
def test_in_sample_never_overlaps_out_of_sample(n_bars: int, n_folds: int, ratio: float, gap: int, scheme: str) -> None:
    try:
        folds = walk_forward_folds(n_bars, n_folds=n_folds, scheme=scheme, is_oos_ratio=ratio, gap_bars=gap)
    except InsufficientData:
        return

    assert len(folds) == n_folds
    assert folds[-1].oos_end == n_bars  # the newest bar is always tested out-of-sample
    for k, f in enumerate(folds):
        assert 0 <= f.is_start < f.is_end <= f.oos_start < f.oos_end <= n_bars
        assert f.oos_start - f.is_end == gap
        if k:  # OOS windows are contiguous and disjoint, and no fold's IS reaches into its own OOS
            assert f.oos_start == folds[k - 1].oos_end
        if scheme == "anchored":
            assert f.is_start == folds[0].is_start
        else:
            assert f.is_bars == folds[0].is_bars
    oos_bars = [i for f in folds for i in range(f.oos_start, f.oos_end)]
    assert len(oos_bars) == len(set(oos_bars))
