"""Walk-forward runs: parameters from in-sample only, out-of-sample windows stitched without overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.optimize import _evaluate
from thunes.optimize.study import StudySpec, load_study
from thunes.optimize.walk_forward import run_walk_forward, trading_from
from thunes.strategies import get_strategy


def test_trading_from_opens_nothing_before_the_start(candles) -> None:  # noqa: ANN001
    start = candles.index[2000]
    strategy = get_strategy("sma_cross")(fast=5, slow=20)

    _, _, everywhere = _evaluate.run(candles, strategy, _evaluate.make_options({}), "BTC/USDT", "1h")
    _, _, late = _evaluate.run(candles, trading_from(strategy, start), _evaluate.make_options({}), "BTC/USDT", "1h")

    assert (everywhere.entry_ts < start).any()
    assert len(late) and (late.entry_ts >= start).all()
    assert trading_from(strategy, start).params == strategy.params


def test_walk_forward_chooses_in_sample_and_stitches_out_of_sample(tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/wf.sqlite"
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)})

    wf = run_walk_forward(spec, candles, data_source="sample", scheme="rolling", n_folds=2, n_trials=4,
                          storage_url=url, study_name="wf", progress=False)

    # 4000 bars, 2 folds, IS = 3 × OOS: OOS = 800, IS = 2400.
    assert [(f.fold.is_start, f.fold.is_end, f.fold.oos_start, f.fold.oos_end) for f in wf.folds] == [
        (0, 2400, 2400, 3200), (800, 3200, 3200, 4000)]
    for f in wf.folds:
        study, fold_spec = load_study(url, f.study_name)
        # The fold's study saw only its in-sample bars, and the fold kept that study's best parameters.
        assert pd.Timestamp(fold_spec.start_ms, unit="ms", tz="UTC") == candles.index[f.fold.is_start]
        assert pd.Timestamp(fold_spec.end_ms - 1, unit="ms", tz="UTC") == candles.index[f.fold.is_end - 1]
        assert {k: f.params[k] for k in study.best_params} == study.best_params
        assert (f.oos_trades.entry_ts >= f.oos_period[0]).all()
        assert f.oos_returns.index[0] == candles.index[f.fold.oos_start]
        assert len(f.oos_returns) == f.fold.oos_bars
    assert wf.oos_returns.index.equals(candles.index[2400:])
    np.testing.assert_allclose(wf.oos_equity.iloc[-1], 10_000.0 * np.prod(1.0 + wf.oos_returns.to_numpy()))
    assert wf.oos_stats["bars"] == 1600
    table = wf.table()
    assert table["fold"].tolist() == [0, 1]
    # Each fold reports the overfitting statistics of its own in-sample search.
    assert table["is_dsr"].between(0, 1).all() and table["is_pbo"].between(0, 1).all()


def test_walk_forward_resumes_its_fold_studies(tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/wf.sqlite"
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)})
    args = dict(data_source="sample", scheme="anchored", n_folds=2, storage_url=url, study_name="a", progress=False)

    first = run_walk_forward(spec, candles, n_trials=3, **args)
    again = run_walk_forward(spec, candles, n_trials=3, **args)

    assert [f.params for f in again.folds] == [f.params for f in first.folds]
    assert [f.n_trials for f in again.folds] == [3, 3]
    assert again.oos_sharpe == pytest.approx(first.oos_sharpe)
