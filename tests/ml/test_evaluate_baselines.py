"""The evaluation says when a model is no better than a baseline: non-overlapping periods, bootstrap errors."""

from __future__ import annotations

import numpy as np

from thunes.ml.evaluate import compare_to_baselines, non_overlapping


def _returns(n: int = 3000, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0005, 0.01, n)  # a drifting market: always-long is right more than half the time
    past = np.concatenate([[np.nan], y[:-1]])
    return rng, y, past


def test_a_noise_model_is_not_better_than_always_long():
    rng, y, past = _returns()
    out = compare_to_baselines(rng.normal(0, 0.01, y.size), y, past, horizon=1)
    by = {(r["metric"], r["baseline"]): r for r in out["rows"]}
    hit = by[("directional accuracy", "always-long")]
    assert not hit["better"] and hit["verdict"].startswith("not better than always-long at 95 %")
    assert not by[("mean squared error", "zero-return forecast")]["better"]
    assert out["n_periods"] == y.size - 1


def test_a_model_that_knows_something_is_better_than_every_baseline_on_direction():
    rng, y, past = _returns()
    out = compare_to_baselines(y + rng.normal(0, 0.01, y.size), y, past, horizon=1)
    direction = [r for r in out["rows"] if r["metric"] == "directional accuracy"]
    assert all(r["better"] and r["ci_low"] > 0 for r in direction)
    assert all(v.startswith("better than") for v in out["verdicts"][:2])


def test_overlapping_targets_count_once_per_horizon():
    """Targets over h bars taken every bar share returns: only one period every h rows is used."""
    assert list(non_overlapping(np.array([0, 1, 2, 3, 4, 5, 9, 10, 11, 14]), 3)) == [0, 3, 6, 9]
    rng, y, past = _returns(4000)
    out = compare_to_baselines(rng.normal(0, 0.01, y.size), y, past, horizon=8)
    assert out["n_periods"] == len(range(1, 4000, 8))


def test_the_bootstrap_error_matches_the_textbook_one_on_independent_periods():
    rng, y, past = _returns(5000, seed=3)
    out = compare_to_baselines(rng.normal(0, 0.01, y.size), y, past, horizon=1, n_boot=4000)
    row = next(r for r in out["rows"] if r["baseline"] == "always-long" and r["metric"] == "directional accuracy")
    # difference of two hit indicators: per-period variance about 0.5 -> se about sqrt(0.5 / n)
    assert abs(row["se"] / np.sqrt(0.5 / 4999) - 1) < 0.2
