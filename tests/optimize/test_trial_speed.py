"""Trials spend their time in the backtest: the prepared path and the SQLite write-behind.

Both are shortcuts, so these tests pin that they change nothing a user can see: the prepared path gives
``run_backtest``'s metrics bit for bit, and a SQLite study written in batches holds exactly the trials
the run made, under the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from thunes.backtest import (
    BacktestOptions,
    FixedQuote,
    PreparedBacktest,
    RiskLimits,
    VolatilitySlippage,
    VolTarget,
    run_backtest,
)
from thunes.core.errors import StoreError
from thunes.optimize.spec import make_sampler
from thunes.optimize.storage import open_storage
from thunes.optimize.study import StudySpec, TrialEvaluator, optimize_quota, trial_result
from thunes.strategies import get_strategy

OPTIONS = {
    "settings defaults (risk limits on)": BacktestOptions(),
    "research (no risk limits: lean kernel)": BacktestOptions(risk=None),
    "shorts with stop, take profit, trailing": BacktestOptions(
        allow_short=True, stop_loss=0.03, take_profit=0.05, trailing_stop=0.04,
        risk=RiskLimits(max_position_quote=2_000.0, max_daily_loss=200.0, max_loss_per_trade=60.0)),
    "fixed quote, vol target slippage": BacktestOptions(sizing=FixedQuote(amount=250.0), risk=None,
                                                        slippage=VolatilitySlippage(bps=3.0, k=0.2, window=50)),
    "vol target sizing": BacktestOptions(sizing=VolTarget(annual_vol=0.3, window=72), risk=None),
}

# (real, synthetic) trade counts of SmaCross 5/20, 12/60 and 40/200 under each option set.
GOLDEN_TRADES = {
    "settings defaults (risk limits on)": ((139, 40, 12), (122, 45, 13)),
    "research (no risk limits: lean kernel)": ((139, 40, 12), (122, 45, 13)),
    "shorts with stop, take profit, trailing": ((166, 57, 20), (154, 69, 25)),
    "fixed quote, vol target slippage": ((139, 40, 12), (122, 45, 13)),
    "vol target sizing": ((138, 40, 12), (120, 45, 13)),
}


@pytest.mark.parametrize("label", list(OPTIONS))
def test_the_prepared_path_gives_run_backtests_metrics_bit_for_bit(candles, btc_1h, label) -> None:  # noqa: ANN001
    options = OPTIONS[label]
    # A hole in the data (12 bars removed): the gap-refusal rule must act on both paths alike.
    holed = candles.drop(candles.index[1500:1512])
    short = label.startswith("shorts")
    prepared = PreparedBacktest.from_candles(holed, options, symbol="BTC/USDT", timeframe="1h")

    # Golden trade counts of the three crosses under these options, on the real file or the synthetic
    # fallback: every comparison covers trades.
    n_trades = dict(zip((5, 12, 40), GOLDEN_TRADES[label][0 if btc_1h.real else 1], strict=True))
    for fast, slow in ((5, 20), (12, 60), (40, 200)):
        strategy = get_strategy("sma_cross")(fast=fast, slow=slow, short=short)
        quick = prepared.quick(strategy)
        full = run_backtest(holed, strategy, options=options, symbol="BTC/USDT", timeframe="1h")

        numeric = {k: v for k, v in full.stats.items() if k not in ("start", "end")}
        assert quick.stats.keys() == numeric.keys()
        for key, value in numeric.items():  # equal, not approximately equal (NaN where both are NaN)
            assert quick.stats[key] == value or (math.isnan(value) and math.isnan(quick.stats[key])), (key, fast)
        np.testing.assert_array_equal(quick.equity, full.equity.to_numpy())
        assert quick.n_trades == len(full.trades) == n_trades[fast]


def test_a_trial_stores_the_metrics_of_a_full_backtest(candles) -> None:  # noqa: ANN001
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "s")
    evaluator = TrialEvaluator(spec, candles)
    study = optuna.create_study(sampler=make_sampler(spec), direction="maximize")

    optimize_quota(study, evaluator, 3)

    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        full = evaluator.evaluate(t.params)
        stored = trial_result(t)
        assert t.value == full.stats["sharpe"]
        assert stored["stats"] == {k: float(v) for k, v in full.stats.items()
                                   if isinstance(v, (int, float)) and math.isfinite(v)}
        assert stored["n_trades"] == len(full.trades) and stored["n_obs"] == len(candles)


def test_a_sqlite_study_runs_in_memory_and_lands_in_the_file_under_the_same_numbers(
        tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/wb.sqlite"
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "s")
    study = optuna.create_study(storage=open_storage(url), study_name="wb", sampler=make_sampler(spec))
    seen: dict[int, tuple[str, dict, float | None]] = {}

    def record(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seen[trial.number] = (trial.state.name, trial.params, trial.value)

    optimize_quota(study, TrialEvaluator(spec, candles), 5, callbacks=[record], flush_every_s=3600.0)

    # flush_every_s=3600: nothing was written during the run, everything at its end.
    in_file = optuna.load_study(study_name="wb", storage=open_storage(url)).get_trials()
    assert {t.number: (t.state.name, t.params, t.value) for t in in_file} == seen
    assert sum(s == "COMPLETE" for s, _, _ in seen.values()) == 5
    assert not [t for t in in_file if t.state == TrialState.RUNNING]


def test_a_second_writer_on_the_sqlite_study_is_detected_not_mixed_in(tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/two.sqlite"
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "s")
    study = optuna.create_study(storage=open_storage(url), study_name="two", sampler=make_sampler(spec))
    other = optuna.load_study(study_name="two", storage=open_storage(url))  # as another process would

    def intrude(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.number == 0:
            other.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))

    with pytest.raises(StoreError, match="another process added 1 trial"):
        optimize_quota(study, TrialEvaluator(spec, candles), 4, callbacks=[intrude], flush_every_s=0.0)

    in_file = optuna.load_study(study_name="two", storage=open_storage(url)).get_trials()
    assert [t.number for t in in_file] == [0, 1]  # this run's first trial, then the intruder's
    assert in_file[1].state == TrialState.FAIL and in_file[0].params
