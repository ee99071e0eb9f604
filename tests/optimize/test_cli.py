"""`thunes optimize`: the table, DSR, PBO and verdict on the terminal, CSV/JSON/HTML on disk."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from thunes.cli import root


def _recent(btc_1h) -> str:  # noqa: ANN001
    """A start date leaving the last 5000 bars (real or synthetic sample), to keep the runs short."""
    return str(btc_1h.frame.index[-5000])


def _invoke(tmp_path, *args: str):  # noqa: ANN001, ANN202
    settings = ["--set", f"optimize.storage=sqlite:///{tmp_path}/studies.sqlite",
                "--set", f"optimize.artifacts_dir={tmp_path}/art", "--set", f"data.url=sqlite:///{tmp_path}/none.sqlite"]
    return CliRunner().invoke(root, [*settings, "optimize", *args], catch_exceptions=False)


def test_optimize_prints_the_verdict_and_writes_artifacts(tmp_path, btc_1h) -> None:  # noqa: ANN001
    result = _invoke(tmp_path, "--since", _recent(btc_1h), "--strategy", "sma_cross", "--trials", "3", "--folds", "2", "--study", "cli",
                     "--range", "fast=5:30", "--range", "slow=40:150", "--no-progress")

    assert result.exit_code == 0, result.output
    for text in ("top 3 of 3 distinct trials", "Deflated Sharpe Ratio:", "Probability of Backtest Overfitting",
                 "walk-forward (rolling, 2 folds) out-of-sample", "recommendation: "):
        assert text in result.output
    out = tmp_path / "art" / "cli"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["complete"] == 3 and len(summary["walk_forward"]["folds"]) == 2
    assert 0 <= summary["dsr"]["dsr"] <= 1 and 0 <= summary["pbo"]["pbo"] <= 1
    assert summary["recommendation"]["deploy"] == ("recommendation: DEPLOY:" in result.output)
    trials = pd.read_csv(out / "trials.csv")
    assert {"number", "state", "value", "param_fast", "param_slow", "worker", "sr_period"} <= set(trials.columns)
    page = (out / "report.html").read_text()
    assert page.count("plotly.js v") == 1 and "Optimisation history" in page and "out-of-sample equity" in page


def test_nsga2_writes_the_pareto_front(tmp_path, btc_1h) -> None:  # noqa: ANN001
    result = _invoke(tmp_path, "--since", _recent(btc_1h), "--sampler", "nsga2", "--objectives", "sharpe,max_drawdown", "--trials", "4",
                     "--walk-forward", "none", "--study", "mo", "--range", "fast=5:30", "--range", "slow=40:150",
                     "--no-progress")

    assert result.exit_code == 0, result.output
    assert "no out-of-sample Sharpe" in result.output
    front = pd.read_csv(tmp_path / "art" / "mo" / "pareto.csv")
    assert {"sharpe", "max_drawdown", "fast", "slow"} <= set(front.columns) and len(front) >= 1


def test_decay_command_writes_the_flag(tmp_path) -> None:  # noqa: ANN001
    result = _invoke(tmp_path, "decay", "--param", "fast=10", "--param", "slow=50", "--window", "200",
                     "--lookback", "600", "--min-sharpe", "1000", "--fail-on-decay")

    assert result.exit_code == 1, result.output
    assert "DECAYED" in result.output
    flag = json.loads((tmp_path / "art" / "decay" / "sma_cross_BTCUSDT_1h.json").read_text())
    assert flag["decayed"] is True and flag["params"]["slow"] == 50 and flag["window_bars"] == 200


def test_decay_without_deployed_parameters_says_what_to_do(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    result = runner.invoke(root, ["--set", f"optimize.artifacts_dir={tmp_path}", "optimize", "decay"])
    assert result.exit_code != 0
    assert "no deployed parameters" in str(result.exception)
