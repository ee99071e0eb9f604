"""`thunes optimize`: the table, DSR, PBO and verdict on the terminal, CSV/JSON/HTML on disk."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import InsufficientData


def _recent(btc_1h) -> str:  # noqa: ANN001
    """A start date leaving the last 5000 bars (real or synthetic sample), to keep the runs short."""
    return str(btc_1h.frame.index[-5000])


def _invoke(tmp_path, *args: str, settings: tuple[str, ...] = ()):  # noqa: ANN001, ANN202
    base = ["--set", f"optimize.storage=sqlite:///{tmp_path}/studies.sqlite",
            "--set", f"optimize.artifacts_dir={tmp_path}/art", "--set", f"data.url=sqlite:///{tmp_path}/none.sqlite"]
    return CliRunner().invoke(root, [*base, *settings, "optimize", *args], catch_exceptions=False)


def test_optimize_deploys_past_configured_thresholds_and_decay_reads_the_deployed_parameters(
        tmp_path, btc_1h) -> None:  # noqa: ANN001
    # Thresholds any run passes (OOS Sharpe > -1000, DSR >= 0): the verdict is DEPLOY and the parameters
    # are written where `thunes optimize decay` reads them. Fees/slippage/risk come from the settings.
    thresholds = ("--set", "optimize.deploy_min_sharpe=-1000", "--set", "optimize.deploy_min_dsr=0",
                  "--set", "backtest.taker_fee_bps=12", "--set", "risk.max_position_quote=250")

    result = _invoke(tmp_path, "--sample", "--since", _recent(btc_1h), "--strategy", "sma_cross", "--trials", "3",
                     "--folds", "2",
                     "--study", "cli", "--range", "fast=5:30", "--range", "slow=40:150", "--no-progress",
                     "--gap-bars", "24", settings=thresholds)

    assert result.exit_code == 0, result.output
    # The first line on stderr says where the candles came from: the sample (real, else SYNTHETIC).
    assert "from sample /" in result.stderr or "SYNTHETIC candles" in result.stderr
    for text in ("top 3 of 3 distinct trials", "Deflated Sharpe Ratio:", "Probability of Backtest Overfitting",
                 "walk-forward (rolling, 2 folds) out-of-sample", "recommendation: DEPLOY: out-of-sample Sharpe",
                 "> -1000; DSR"):
        assert text in result.output
    out = tmp_path / "art" / "cli"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["complete"] == 3 and len(summary["walk_forward"]["folds"]) == 2
    real = "synthetic" not in summary["data"].lower()  # the loader labels generated candles, never real ones
    # Golden DSR and PBO of the seeded 3-trial study, per data source.
    assert summary["dsr"]["dsr"] == pytest.approx(0.9562734918 if real else 0.0154242981, rel=1e-6)
    assert summary["pbo"]["pbo"] == pytest.approx(0.8206682207 if real else 0.4135198135, rel=1e-9)
    assert summary["recommendation"]["deploy"] is True
    assert summary["data"].startswith("sample") and ("(real)" in summary["data"] or "SYNTHETIC" in summary["data"])
    assert summary["spec"]["backtest"]["taker_fee_bps"] == 12.0
    assert summary["spec"]["backtest"]["slippage"] == {"kind": "fixed", "bps": 5.0}
    assert summary["spec"]["backtest"]["risk"]["max_position_quote"] == 250.0
    trials = pd.read_csv(out / "trials.csv")
    assert {"number", "state", "value", "param_fast", "param_slow", "worker", "sr_period", "fees_paid"} <= set(
        trials.columns)
    assert (trials.loc[trials.state == "COMPLETE", "fees_paid"] > 0).all()
    folds = pd.read_csv(out / "folds.csv", parse_dates=["is_end", "oos_start"])
    assert len(folds) == 2 and len(pd.read_csv(out / "oos_equity.csv")) == 1990  # both folds' test bars
    # 24 bars purged between the last in-sample bar and the first out-of-sample bar of each fold.
    assert ((folds.oos_start - folds.is_end) == pd.Timedelta(hours=25)).all()
    page = (out / "report.html").read_text()
    assert page.count("plotly.js v") == 1 and "<script src=" not in page  # plotly.js embedded: works offline
    for title in ("Optimisation history", "Parameter importance", "out-of-sample equity"):
        assert title in page
    deployed = json.loads((tmp_path / "art" / "deployed" / "sma_cross_BTCUSDT_1h.json").read_text())
    assert deployed["params"] == summary["best"]["params"] and deployed["study"] == "cli"

    decay = _invoke(tmp_path, "decay", "--sample", "--window", "200", "--lookback", "600")

    assert decay.exit_code == 0, decay.output
    assert f"(from {tmp_path}/art/deployed/sma_cross_BTCUSDT_1h.json)" in decay.output
    assert json.loads((tmp_path / "art" / "decay" / "sma_cross_BTCUSDT_1h.json").read_text())["params"] == \
        deployed["params"]


def test_nsga2_prints_and_writes_the_pareto_front(tmp_path, btc_1h) -> None:  # noqa: ANN001
    result = _invoke(tmp_path, "--sample", "--since", _recent(btc_1h), "--sampler", "nsga2", "--objectives",
                     "sharpe,max_drawdown",
                     "--trials", "4", "--walk-forward", "none", "--study", "mo", "--range", "fast=5:30",
                     "--range", "slow=40:150")

    assert result.exit_code == 0, result.output
    # Progress bars draw only on a terminal (tests/cli/test_progress.py): none in captured output.
    assert "full sample: " not in result.stderr and "full sample: " not in result.stdout
    assert "recommendation: DO NOT DEPLOY: no out-of-sample Sharpe" in result.output
    front = pd.read_csv(tmp_path / "art" / "mo" / "pareto.csv")
    # The seeded 4-trial study's front has one trial on either data source.
    assert list(front.columns) == ["number", "sharpe", "max_drawdown", "fast", "slow"] and len(front) == 1
    assert f"Pareto front (sharpe:max, max_drawdown:min): {len(front)} trial(s)," in result.output
    assert front.sharpe.is_monotonic_decreasing  # best Sharpe first
    assert "Pareto front" in (tmp_path / "art" / "mo" / "report.html").read_text()

    # Another process joins the study by name (it reloads the same candles from the study's description).
    joined = _invoke(tmp_path, "worker", "--storage", f"sqlite:///{tmp_path}/studies.sqlite", "--study", "mo",
                     "--trials", "1", "--index", "7")
    listed = _invoke(tmp_path, "studies")

    assert joined.exit_code == 0, joined.output
    assert joined.output.strip().endswith("completed 1 trial(s) of mo")
    assert ":7: completed" in joined.output  # the worker id ends with its index
    line = next(row for row in listed.output.splitlines() if row.startswith("mo "))
    assert line.split()[1:] == ["5", "trials", "maximize,minimize"]
    assert len({row.index(" trials") for row in listed.output.splitlines()}) == 1  # aligned columns


def test_an_empty_store_with_source_store_says_which_command_fills_it(tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(root, ["--set", f"data.url=sqlite:///{tmp_path}/none.sqlite", "optimize",
                                       "--source", "store", "--no-progress"])

    # `thunes` prints a ThunesError as "error: <message>" and exits 2; the runner hands back the error.
    assert isinstance(result.exception, InsufficientData)
    assert "has no BTC/USDT 1h candles" in str(result.exception)
    assert "thunes data download --symbol BTC/USDT --timeframe 1h" in str(result.exception)
    assert not (tmp_path / "none.sqlite").exists()  # looking did not create an empty store


def test_decay_command_writes_the_flag(tmp_path) -> None:  # noqa: ANN001
    result = _invoke(tmp_path, "decay", "--sample", "--param", "fast=10", "--param", "slow=50", "--window", "200",
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


def test_a_run_that_fails_while_writing_its_report_leaves_the_previous_artifacts_untouched(
        tmp_path, btc_1h, monkeypatch) -> None:  # noqa: ANN001
    """The report is rendered before anything is replaced: a failure keeps the earlier run's files."""
    import thunes.optimize.report as report

    args = ("--sample", "--since", _recent(btc_1h), "--strategy", "sma_cross", "--trials", "3", "--walk-forward", "none",
            "--study", "keep", "--range", "fast=5:30", "--range", "slow=40:150", "--no-progress",
            "--storage", "memory")
    first = _invoke(tmp_path, *args)
    assert first.exit_code == 0, first.output
    folder = tmp_path / "art" / "keep"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {"trials.csv", "summary.json", "report.html"} <= before.keys()

    def broken(*_a, **_k):  # the report cannot be drawn (as with a missing optional dependency)
        raise ImportError("Tried to import 'sklearn' but failed")

    monkeypatch.setattr(report, "html_report", broken)
    second = CliRunner().invoke(root, ["--set", f"optimize.artifacts_dir={tmp_path}/art",
                                       "--set", f"data.url=sqlite:///{tmp_path}/none.sqlite", "optimize",
                                       *args[:-2], "--storage", "memory", "--trials", "4"])
    assert second.exit_code != 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
