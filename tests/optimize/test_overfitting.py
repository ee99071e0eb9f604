"""Deflated Sharpe Ratio and PBO on cases that can be checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from thunes.core.errors import InsufficientData
from thunes.optimize.overfitting import (
    EULER_GAMMA,
    BlockMoments,
    block_moments,
    deflated_sharpe,
    deflated_sharpe_from_returns,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
    sharpe_per_period,
)


def test_dsr_matches_the_worked_example_of_bailey_and_lopez_de_prado() -> None:
    # The paper's example: annualised SR 2.5 over 5 years of daily returns (T = 1250), N = 100 trials whose
    # annualised Sharpe ratios have variance 0.5, skewness -3, kurtosis 10. The paper reports DSR ≈ 0.9004.
    result = deflated_sharpe(
        sharpe=2.5 / math.sqrt(250), n_obs=1250, n_trials=100, trials_sharpe_variance=0.5 / 250,
        skew=-3.0, kurtosis=10.0,
    )

    # Annualised SR0 = sqrt(0.5) × (0.42278 × 2.32635 + 0.57722 × 2.67987) = 0.70711 × 2.53058.
    assert result.sharpe_benchmark * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)
    assert result.dsr == pytest.approx(0.9004, abs=1e-4)
    assert result.passes(0.90) and not result.passes(0.95)


def test_expected_max_sharpe_by_hand() -> None:
    # SR0 = sqrt(V) * ((1-γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e))), N = 10, V = 0.04.
    by_hand = 0.2 * ((1 - 0.5772156649) * 1.2815515655 + 0.5772156649 * stats.norm.ppf(1 - 1 / (10 * math.e)))

    assert expected_max_sharpe(10, 0.04) == pytest.approx(by_hand, rel=1e-9)
    assert by_hand == pytest.approx(0.2 * (0.4227843 * 1.2815516 + 0.5772157 * 1.7892), rel=1e-4)
    assert expected_max_sharpe(1, 0.04) == 0.0  # a single trial has no selection bias
    assert EULER_GAMMA == pytest.approx(0.5772156649)


def test_dsr_from_returns_is_the_formula_on_the_sample_moments() -> None:
    rng = np.random.default_rng(3)
    r = rng.standard_t(df=5, size=500) * 0.01 + 0.001

    result = deflated_sharpe_from_returns(r, n_trials=20, trials_sharpe_variance=0.002)

    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r, bias=False), stats.kurtosis(r, fisher=False, bias=False)
    sr0 = math.sqrt(0.002) * ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / 20)
                              + EULER_GAMMA * stats.norm.ppf(1 - 1 / (20 * math.e)))
    z = (sr - sr0) * math.sqrt(499) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert result.sharpe == pytest.approx(sr)
    assert result.sharpe_benchmark == pytest.approx(sr0)
    assert result.dsr == pytest.approx(stats.norm.cdf(z), rel=1e-12)


def test_more_trials_deflate_more() -> None:
    common = {"sharpe": 0.1, "n_obs": 1000, "trials_sharpe_variance": 0.001}

    dsr = [deflated_sharpe(n_trials=n, **common).dsr for n in (1, 10, 100, 1000)]

    assert dsr == sorted(dsr, reverse=True)
    assert dsr[0] == pytest.approx(stats.norm.cdf(0.1 * math.sqrt(999) / math.sqrt(1 + 2 / 4 * 0.01)))


def test_dsr_needs_returns() -> None:
    with pytest.raises(InsufficientData, match="at least 3 returns"):
        deflated_sharpe_from_returns(np.array([0.01, np.nan]), n_trials=5, trials_sharpe_variance=0.1)


def test_block_moments_reproduce_the_whole_series_sharpe() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, size=(1003, 3))

    m = block_moments(r, 16)
    again = BlockMoments.from_columns([m.column(j) for j in range(3)])

    assert m.count.sum() == 1003 and set(m.count) == {62.0, 63.0}
    mean = m.total.sum(0) / 1003
    sd = np.sqrt(m.total_sq.sum(0) / 1003 - mean**2)
    np.testing.assert_allclose(mean / sd, r.mean(0) / r.std(0), rtol=1e-10)
    np.testing.assert_array_equal(again.total, m.total)
    assert sharpe_per_period(r[:, 0]) == pytest.approx(r[:, 0].mean() / r[:, 0].std(ddof=1))


def test_pbo_is_zero_for_a_dominating_strategy() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.01, size=(800, 10))
    noise[:, 4] = np.abs(noise[:, 4]) + 0.02  # trial 4 wins in every block, in and out of sample

    result = probability_of_backtest_overfitting(noise, n_blocks=8)

    assert result.n_splits == math.comb(8, 4) == 70
    assert result.pbo == 0.0
    # Its OOS rank is always N = 10 of 10: logit(10/11) = ln 10.
    np.testing.assert_allclose(result.logits, math.log(10.0))


def test_pbo_is_one_for_an_anti_persistent_set() -> None:
    # Every trial earns the same total, so whichever is best in-sample is worst out-of-sample (by mean).
    rng = np.random.default_rng(2)
    r = rng.normal(0.0, 0.01, size=(640, 6))
    r = r - r.mean(axis=0) + 0.0005

    by_mean = probability_of_backtest_overfitting(r, n_blocks=10, metric="mean")
    by_sharpe = probability_of_backtest_overfitting(r, n_blocks=10)

    assert by_mean.pbo == 1.0
    np.testing.assert_allclose(by_mean.logits, math.log(1 / 6))  # OOS rank 1 of 6: logit(1/7)
    assert by_sharpe.pbo == 1.0 and by_sharpe.n_splits == 252  # C(10, 5) splits, every one overfit


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(0.0, 0.01, size=(2000, 40))

    result = probability_of_backtest_overfitting(r, n_blocks=12)

    assert result.n_splits == math.comb(12, 6)
    assert 0.3 < result.pbo < 0.7


def test_pbo_counts_a_never_trading_trial_as_flat() -> None:
    r = np.zeros((100, 3))
    r[:, 0] = np.tile([0.01, -0.005], 50)  # positive every block pair
    result = probability_of_backtest_overfitting(r, n_blocks=4)
    assert result.pbo == 0.0


def test_pbo_by_hand_two_trials_four_blocks() -> None:
    # One return per block, ranked by the mean. Trial A earns 2 % in every block; B alternates 3 %, 0 %.
    # The C(4, 2) = 6 in-sample choices, in itertools order, with the in-sample winner and its OOS rank:
    #   {0,1}: A 2.0 vs B 1.5 -> A; OOS {2,3}: A 2.0 > B 1.5 -> rank 2 of 2, ω = 2/3, λ = ln 2
    #   {0,2}: A 2.0 vs B 3.0 -> B; OOS {1,3}: B 0.0 < A 2.0 -> rank 1 of 2, ω = 1/3, λ = -ln 2
    #   {0,3}, {1,2}, {2,3}: A wins in and out of sample -> λ = ln 2;  {1,3}: A 2.0 vs B 0.0 -> A, but
    #   OOS {0,2}: A 2.0 < B 3.0 -> λ = -ln 2.  Two of six splits overfit: PBO = 1/3.
    r = np.array([[0.02, 0.03], [0.02, 0.0], [0.02, 0.03], [0.02, 0.0]])

    result = probability_of_backtest_overfitting(r, n_blocks=4, metric="mean")

    ln2 = math.log(2.0)
    np.testing.assert_allclose(result.logits, [ln2, -ln2, ln2, ln2, -ln2, ln2])
    assert result.pbo == pytest.approx(1 / 3)
    assert (result.n_splits, result.n_blocks, result.n_trials) == (6, 4, 2)
