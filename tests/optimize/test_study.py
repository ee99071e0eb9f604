"""Studies: the search space comes from the strategy, trials are backtests, studies resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.trial import TrialState

from thunes.core.errors import ConfigError, StrategyError
from thunes.optimize.study import (
    Objective,
    StudySpec,
    TrialEvaluator,
    parse_objectives,
    recommend,
    run_study,
    search_space,
    trial_result,
)
from thunes.strategies import get_strategy


def test_search_space_is_read_from_the_strategy_params() -> None:
    space = search_space(get_strategy("sma_cross"))

    assert set(space) == {"fast", "slow"}  # the boolean 'short' keeps its default
    assert (space["fast"].kind, space["fast"].low, space["fast"].high) == ("int", 2, 200)
    assert (space["slow"].low, space["slow"].high) == (5, 500)


def test_search_space_can_be_narrowed_and_fixed_but_not_widened() -> None:
    cls = get_strategy("sma_cross")

    space = search_space(cls, fixed={"fast": 10}, ranges={"slow": (20, 60)})

    assert list(space) == ["slow"] and (space["slow"].low, space["slow"].high) == (20, 60)
    with pytest.raises(StrategyError, match="above its range"):
        search_space(cls, ranges={"slow": (20, 900)})
    with pytest.raises(StrategyError, match="did you mean 'slow'"):
        search_space(cls, fixed={"slwo": 3})


def test_objectives_know_their_direction() -> None:
    assert parse_objectives("sharpe,max_drawdown") == (
        Objective(metric="sharpe", direction="maximize"), Objective(metric="max_drawdown", direction="minimize"))
    assert parse_objectives(["turnover:max"])[0].direction == "maximize"
    with pytest.raises(ConfigError, match="no known direction"):
        parse_objectives("alpha")


def test_a_study_runs_backtests_and_reports_dsr_and_pbo(tmp_path, candles, btc_1h) -> None:  # noqa: ANN001
    """A seeded 6-trial study is reproducible: its DSR and PBO are golden values of each data source (the
    real sample file, or the synthetic fallback without ../shared/data)."""
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")

    out = run_study(spec, candles, n_trials=6, storage_url=f"sqlite:///{tmp_path}/s.sqlite", study_name="t",
                    progress=False)

    complete = out.study.get_trials(states=(TrialState.COMPLETE,))
    assert out.n_complete == len(complete) == 6
    assert out.best_values[0] == max(t.value for t in complete)
    # The summary re-runs the best parameters: same Sharpe as the trial recorded.
    assert out.best_stats["sharpe"] == pytest.approx(out.best_values[0], rel=1e-12)
    assert out.dsr is not None and out.dsr.n_trials == out.n_distinct == 6
    assert out.dsr.dsr == pytest.approx(0.7827088058 if btc_1h.real else 0.0619313502, rel=1e-6)
    assert out.dsr.n_obs == len(candles)
    # The per-bar Sharpe stored for the DSR is the annualised one over sqrt(bars per year).
    best = max(complete, key=lambda t: t.value)
    assert trial_result(best)["sr_period"] * math.sqrt(365 * 24) == pytest.approx(best.value, rel=1e-6)
    assert out.pbo is not None and out.pbo.n_splits == math.comb(16, 8)
    # The share of the 12 870 splits whose in-sample best ranks below the median out of sample.
    assert out.pbo.pbo == pytest.approx((2248 if btc_1h.real else 2205) / 12_870, rel=1e-12)


def test_an_interrupted_study_resumes_where_it_stopped(tmp_path, candles) -> None:  # noqa: ANN001
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")
    url = f"sqlite:///{tmp_path}/resume.sqlite"
    seen = []

    def interrupt_after_three(study, trial) -> None:  # noqa: ANN001
        if trial.state == TrialState.COMPLETE:
            seen.append(trial.number)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(spec, candles, n_trials=7, storage_url=url, study_name="r", progress=False,
                  callbacks=[interrupt_after_three])
    first = run_study(spec, candles, n_trials=3, storage_url=url, study_name="r", progress=False)
    before = {t.number: t.params for t in first.study.get_trials(states=(TrialState.COMPLETE,))}

    out = run_study(spec, candles, n_trials=7, storage_url=url, study_name="r", progress=False)

    after = {t.number: t.params for t in out.study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(before) == 3 and out.n_complete == 7
    assert {n: after[n] for n in before} == before  # the first trials are kept, not re-run
    assert min(set(after) - set(before)) > max(before)
    # The resumed sampler is re-seeded: it does not replay the first run's start-up trials.
    assert out.n_distinct == 7


def test_a_study_refuses_to_resume_with_other_settings(tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/x.sqlite"
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")
    run_study(spec, candles, n_trials=1, storage_url=url, study_name="x", progress=False)
    other = StudySpec(strategy="sma_cross", ranges={"fast": (3, 40), "slow": (20, 120)}).for_window(candles, "sample")

    with pytest.raises(ConfigError, match=r"different settings \(ranges"):
        run_study(other, candles, n_trials=2, storage_url=url, study_name="x", progress=False)
    with pytest.raises(ConfigError, match=r"different settings \(end_ms: .*fingerprint"):  # newer candles
        run_study(spec.for_window(candles.iloc[:-1], "sample"), candles.iloc[:-1], n_trials=2, storage_url=url,
                  study_name="x", progress=False)


def test_the_same_candles_from_the_store_continue_a_study_begun_on_the_samples(
        tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/x.sqlite"
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)})
    run_study(spec.for_window(candles, "sample"), candles, n_trials=1, storage_url=url, study_name="x",
              progress=False)

    out = run_study(spec.for_window(candles, "store:sqlite:///data/thunes.sqlite"), candles, n_trials=2,
                    storage_url=url, study_name="x", progress=False)

    assert out.n_complete == 2 and out.spec.data_source == "store:sqlite:///data/thunes.sqlite"
    assert StudySpec.from_json(out.study.user_attrs["thunes_spec"]).data_source == "sample"  # kept for workers


def test_repeated_parameters_are_not_backtested_twice(tmp_path, candles) -> None:  # noqa: ANN001
    # 2 × 2 = 4 possible parameter sets, 8 trials: at least 4 repeats reuse earlier values. The seeded
    # sampler draws 3 distinct sets, so 5 trials are repeats, on either data source.
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (5, 6), "slow": (20, 21)}).for_window(candles, "sample")

    out = run_study(spec, candles, n_trials=8, storage_url=f"sqlite:///{tmp_path}/d.sqlite", study_name="d",
                    progress=False)

    trials = out.study.get_trials(states=(TrialState.COMPLETE,))
    dupes = [t for t in trials if "duplicate_of" in trial_result(t)]
    assert out.n_distinct == len(trials) - len(dupes) == 3
    for t in dupes:
        assert t.value == out.study.trials[trial_result(t)["duplicate_of"]].value


def test_nsga2_returns_a_pareto_front(tmp_path, candles, btc_1h) -> None:  # noqa: ANN001
    spec = StudySpec(strategy="sma_cross", sampler="nsga2", objectives=parse_objectives("sharpe,max_drawdown"),
                     ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")

    out = run_study(spec, candles, n_trials=6, storage_url=f"sqlite:///{tmp_path}/m.sqlite", study_name="m",
                    progress=False)

    values = np.array([t.values for t in out.study.get_trials(states=(TrialState.COMPLETE,))])
    front = np.array([t.values for t in out.pareto])
    assert len(front) == (2 if btc_1h.real else 1)  # golden size of the seeded study's front per data source
    for sharpe, dd in front:  # nobody has a higher Sharpe AND a smaller drawdown
        assert not np.any((values[:, 0] > sharpe) & (values[:, 1] < dd))
    assert out.best_values[0] == front[:, 0].max()


def test_workers_need_a_server_database(tmp_path, candles) -> None:  # noqa: ANN001
    spec = StudySpec(strategy="sma_cross").for_window(candles, "sample")
    with pytest.raises(ConfigError, match="SQLite allows one writer"):
        run_study(spec, candles, n_trials=2, storage_url=f"sqlite:///{tmp_path}/w.sqlite", study_name="w",
                  workers=2, progress=False)
    with pytest.raises(ConfigError, match="a 'memory' study lives in one process"):
        run_study(spec, candles, n_trials=2, storage_url="memory", study_name="w", workers=2, progress=False)


def test_a_memory_study_runs_without_any_file(tmp_path, candles, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")

    out = run_study(spec, candles, n_trials=3, storage_url="memory", study_name="m", progress=False)
    again = run_study(spec, candles, n_trials=3, storage_url="memory", study_name="m", progress=False)

    assert out.n_complete == 3 and out.dsr is not None and out.pbo is not None
    assert again.study is not out.study and again.n_complete == 3  # a new study each time: nothing resumes
    assert list(tmp_path.iterdir()) == []


def test_evaluator_returns_the_backtest_metrics(candles) -> None:  # noqa: ANN001
    spec = StudySpec(strategy="sma_cross").for_window(candles, "sample")
    ev = TrialEvaluator(spec, candles).evaluate({"fast": 10, "slow": 50})
    # Returns follow the metrics convention (first bar against the initial cash): they rebuild the equity.
    np.testing.assert_allclose(10_000.0 * np.cumprod(1.0 + ev.returns.to_numpy()), ev.equity.to_numpy(), rtol=1e-9)
    assert ev.params == {"fast": 10, "slow": 50, "short": False}


def test_deploy_needs_both_thresholds() -> None:
    assert recommend(oos_sharpe=1.8, dsr=0.97, min_sharpe=1.5, min_dsr=0.95).deploy
    no = recommend(oos_sharpe=1.2, dsr=0.97, min_sharpe=1.5, min_dsr=0.95)
    assert not no.deploy and "out-of-sample Sharpe 1.20 <= 1.5" in str(no)
    assert not recommend(oos_sharpe=2.0, dsr=0.5, min_sharpe=1.5, min_dsr=0.95).deploy
    assert not recommend(oos_sharpe=None, dsr=0.99, min_sharpe=1.5, min_dsr=0.95).deploy


def test_trials_run_with_the_settings_fees_slippage_and_risk_limits(candles, btc_1h) -> None:  # noqa: ANN001
    from thunes.backtest import BacktestOptions, run_backtest
    from thunes.config import BacktestSettings, RiskSettings
    from thunes.optimize import _evaluate

    options = BacktestOptions.from_settings(BacktestSettings(taker_fee_bps=10, slippage_bps=5),
                                            RiskSettings(max_position_quote=500))
    costly = StudySpec(strategy="sma_cross", backtest=_evaluate.options_to_json(options)).for_window(candles, "s")
    free = StudySpec(strategy="sma_cross", backtest=_evaluate.options_to_json(
        options.replace(taker_fee_bps=0.0, maker_fee_bps=0.0, slippage=type(options.slippage)(bps=0.0)))
    ).for_window(candles, "s")

    ev = TrialEvaluator(costly, candles).evaluate({"fast": 10, "slow": 50})
    ev_free = TrialEvaluator(free, candles).evaluate({"fast": 10, "slow": 50})

    # The options survive the JSON round trip a study stores, and a trial is exactly `thunes backtest`.
    assert _evaluate.make_options(costly.backtest) == options
    direct = run_backtest(candles, get_strategy("sma_cross")(fast=10, slow=50), options=options,
                          symbol="BTC/USDT", timeframe="1h")
    assert ev.stats["sharpe"] == direct.stats["sharpe"] and ev.stats["fees_paid"] == direct.stats["fees_paid"]
    # Golden fees of SmaCross(10, 50) at 10 bps: 53 round trips on the real file, 55 on synthetic candles.
    assert ev.stats["fees_paid"] == pytest.approx(52.6241521644 if btc_1h.real else 54.729564182, rel=1e-9)
    assert ev_free.stats["fees_paid"] == 0
    assert ev.stats["total_return"] < ev_free.stats["total_return"]  # costs are charged
    # The risk limit caps every position at 500 quote (plus the entry's slippage and rounding).
    assert (ev.trades.entry_price * ev.trades.qty).max() <= 500 * 1.001


def test_a_repeat_of_another_workers_trial_is_found_and_the_storage_is_asked_only_after_a_gap(
        tmp_path, candles) -> None:  # noqa: ANN001
    import optuna

    from thunes.optimize.spec import make_sampler
    from thunes.optimize.storage import open_storage
    from thunes.optimize.study import optimize_quota

    # Two parameter sets only (fast 5, slow 20 or 21); two evaluators stand for two workers on one study.
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (5, 5), "slow": (20, 21)}).for_window(candles, "s")
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/g.sqlite"), study_name="g",
                                sampler=make_sampler(spec))
    first, second = TrialEvaluator(spec, candles, worker_id="a"), TrialEvaluator(spec, candles, worker_id="b")

    optimize_quota(study, first, 3)
    optimize_quota(study, second, 3)

    trials = study.get_trials(states=(TrialState.COMPLETE,))
    originals = {}
    for t in trials:
        key = (t.params["fast"], t.params["slow"])
        originals.setdefault(key, t.number)
        dup = trial_result(t).get("duplicate_of")
        assert dup == (None if originals[key] == t.number else originals[key])
        if dup is not None:
            assert t.value == study.trials[dup].value
    assert len(originals) == len(trials) - sum("duplicate_of" in trial_result(t) for t in trials) == 2
    # Worker a never needed the storage (it saw every earlier trial itself); b read it once, at its first trial.
    assert first._seen.refreshes == 0 and second._seen.refreshes == 1
