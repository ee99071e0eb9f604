"""The model-driven strategy through the standard backtester, evaluation and walk-forward retraining."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from thunes.backtest import run_backtest  # noqa: E402
from thunes.core.errors import StrategyError  # noqa: E402
from thunes.ml.evaluate import evaluate_model, prediction_metrics, walk_forward  # noqa: E402
from thunes.ml.serving import Forecaster  # noqa: E402
from thunes.strategies import get_strategy  # noqa: E402
from thunes.strategies.model_signal import ModelSignalStrategy  # noqa: E402

pytestmark = pytest.mark.ml


def test_model_strategy_is_registered_and_validates_its_parameters():
    cls = get_strategy("model")

    assert cls is ModelSignalStrategy
    with pytest.raises(StrategyError, match="exit_threshold <= threshold"):
        cls(model="x", threshold=0.2, exit_threshold=0.5)
    with pytest.raises(StrategyError, match="needs a model folder"):
        cls().signals(pd.DataFrame())


def test_model_strategy_enters_only_when_return_clears_the_vol_scaled_threshold(tiny_model, ml_candles):
    _, folder = tiny_model
    strategy = ModelSignalStrategy(model=str(folder), threshold=0.05, exit_threshold=-0.05)
    preds = strategy.forecaster.predict_frame(ml_candles)

    signals = strategy.signals(ml_candles)
    result = run_backtest(ml_candles, strategy, symbol="BTC/USDT", timeframe="1h")

    score = preds.pred_ret / preds.pred_vol
    np.testing.assert_array_equal(signals.entries.to_numpy(), (score > 0.05).to_numpy())
    np.testing.assert_array_equal(signals.exits.to_numpy(), (score < -0.05).to_numpy())
    assert not signals.entries.iloc[: strategy.warmup - 1].any()  # no prediction before the warm-up
    # A bound: the predictions depend on the thread count training ran with (resolve_threads picks it
    # from the machine's load), so the exact trade count may differ between machines.
    assert len(result.trades) > 0
    # every entry fills at the open of the bar after a bar whose prediction cleared the threshold
    positions = ml_candles.index.get_indexer(pd.DatetimeIndex(result.trades.entry_ts))
    assert (score.to_numpy()[positions - 1] > 0.05).all()


def test_model_strategy_signals_are_causal(tiny_model, ml_candles):
    _, folder = tiny_model
    strategy = ModelSignalStrategy(model=str(folder), threshold=0.05)

    full = strategy.signals(ml_candles)
    prefix = strategy.signals(ml_candles.iloc[:800])

    pd.testing.assert_series_equal(prefix.entries, full.entries.iloc[:800])


def test_evaluate_model_scores_only_unseen_rows_and_backtests(tiny_model, ml_candles):
    result, folder = tiny_model
    fc = Forecaster.load(folder)

    ev = evaluate_model(fc, ml_candles, threshold=0.05, exit_threshold=-0.05)

    assert ev.start >= pd.Timestamp(result.meta.test_range[0])
    assert ev.metrics["n"] == result.meta.metrics["test"]["n"]  # same rows as the training-time test block
    assert ev.metrics["ic"] == pytest.approx(result.meta.metrics["test"]["ic"], abs=1e-6)
    assert ev.backtest is not None and "bt_total_return" in ev.metrics
    # Buy-and-hold over the same bars and costs, and the baselines on non-overlapping periods.
    assert ev.buy_and_hold is not None and ev.buy_and_hold.options == ev.backtest.options
    assert ev.metrics["bh_n_trades"] == 1 and "bh_sharpe" in ev.metrics
    h = int(result.meta.horizon)
    assert ev.metrics["n_non_overlapping"] == pytest.approx(np.ceil(ev.metrics["n"] / h), abs=1)
    assert ev.baselines["n_periods"] > 0 and len(ev.baselines["verdicts"]) >= 1
    if len(ev.backtest.trades):
        assert pd.Timestamp(ev.backtest.trades.entry_ts.min()) > ev.start


def test_prediction_metrics_golden_numbers():
    pred_ret = np.array([0.01, -0.02, 0.03, 0.00])
    pred_vol = np.array([0.01, 0.01, 0.02, 0.01])
    true_ret = np.array([0.02, -0.01, -0.01, 0.005])
    true_vol = np.array([0.02, 0.01, 0.02, 0.01])

    m = prediction_metrics(pred_ret, pred_vol, true_ret, true_vol)

    assert m["n"] == 4
    assert m["directional_accuracy"] == pytest.approx(0.5)  # + and - right, 0.03 vs -0.01 and 0 vs + wrong
    assert m["coverage_1sigma"] == pytest.approx(0.75)  # |z| = 1, 1, 2, 0.5
    assert m["coverage_2sigma"] == pytest.approx(1.0)
    assert m["vol_ratio"] == pytest.approx(0.06 / 0.05)
    # Spearman: Pearson of ranks (3, 1, 4, 2) and (4, 1.5, 1.5, 3) (a tie) = 0.5 / sqrt(5 * 4.5)
    assert m["ic"] == pytest.approx(0.5 / np.sqrt(22.5))


def test_walk_forward_retrains_per_fold_with_a_purged_gap(ml_candles, tiny_options):
    options = replace(tiny_options, epochs=1)

    wf = walk_forward(ml_candles, options, folds=2, min_train_frac=0.6, timeframe="1h", symbol="BTC/USDT",
                      threshold=0.05)

    assert list(wf.folds.fold) == [1, 2]
    assert (wf.folds.test_start > wf.folds.train_end).all()
    assert (wf.folds.n > 50).all()
    first_pred = wf.predictions.pred_ret.first_valid_index()
    cut = ml_candles.index.get_loc(wf.folds.test_start.iloc[0])
    # the first scored window starts at the cut: seq_len - 1 bars after it
    assert ml_candles.index.get_loc(first_pred) == cut + options.seq_len - 1
    assert wf.summary["n"] == int(wf.folds.n.sum())
    assert "bt_total_return" in wf.folds.columns
    assert wf.baselines is not None and wf.summary["n_non_overlapping"] < wf.summary["n"]


def _count_frame_calls(strategy: ModelSignalStrategy) -> list[int]:
    """Count how often the strategy falls back to predicting every bar (a spy on our own Forecaster)."""
    fc = strategy.forecaster
    calls = [0]
    full = fc.predict_frame

    def counting(*args, **kwargs):
        calls[0] += 1
        return full(*args, **kwargs)

    fc.predict_frame = counting
    return calls


def test_a_window_sliding_by_one_bar_predicts_only_the_new_bar(tiny_model, ml_candles):
    _, folder = tiny_model
    strategy = ModelSignalStrategy(model=str(folder), threshold=0.05)
    calls = _count_frame_calls(strategy)
    first, second = ml_candles.iloc[400:900], ml_candles.iloc[401:901]  # the trader's trailing window

    before = strategy.predictions(first).copy()
    after = strategy.predictions(second)

    assert calls[0] == 1  # the second call did not recompute the 499 bars it already had
    pd.testing.assert_frame_equal(after.iloc[:-1], before.iloc[1:])
    latest = strategy.forecaster.predict_latest(second)
    assert (after.pred_ret.iloc[-1], after.pred_vol.iloc[-1]) == (latest.ret, latest.vol)
    full = Forecaster.load(folder).predict_frame(second)  # what a backtest on this window would predict
    assert after.pred_ret.iloc[-1] == pytest.approx(full.pred_ret.iloc[-1], rel=1e-3, abs=1e-6)
    strategy.predictions(second)  # the same candles again (a threshold sweep): reused as well
    assert calls[0] == 1


def test_other_candles_with_the_same_timestamps_are_predicted_afresh(tiny_model, ml_candles):
    _, folder = tiny_model
    strategy = ModelSignalStrategy(model=str(folder), threshold=0.05)
    calls = _count_frame_calls(strategy)
    window = ml_candles.iloc[400:900]
    other = window.copy()
    other.iloc[-50:, :4] *= 1.02  # same index, different prices (another symbol, a corrected candle)

    strategy.predictions(window)
    preds = strategy.predictions(other)

    assert calls[0] == 2
    pd.testing.assert_frame_equal(preds, Forecaster.load(folder).predict_frame(other))
