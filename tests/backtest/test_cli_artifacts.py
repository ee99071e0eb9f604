"""The command line, the artifacts and the offline report."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from thunes.backtest import run_backtest
from thunes.backtest.artifacts import params_hash, write_artifacts
from thunes.backtest.report import monthly_returns, render_report
from thunes.cli import root
from thunes.strategies import get_strategy


def test_backtest_command_writes_artifacts_and_report(tmp_path, btc_1h):
    out = tmp_path / "art"
    result = CliRunner().invoke(root, [
        "backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1h", "--sample",
        "--since", "2023-01-01", "--param", "fast=10", "--param", "slow=50", "--out", str(out), "--report", "--json",
    ])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["n_trades"] == (159 if btc_1h.real else 268)  # golden count per data source
    stem = f"BTCUSDT_1h_sma_cross_{params_hash({'fast': 10, 'slow': 50, 'short': False})}"
    assert {p.name for p in out.iterdir()} == {
        f"stats_{stem}.csv", f"trades_{stem}.csv", f"equity_{stem}.csv", f"run_{stem}.json", f"report_{stem}.html"}
    assert f"wrote report: {out / f'report_{stem}.html'}" in result.stderr  # the path the demo prints
    run = json.loads((out / f"run_{stem}.json").read_text())
    assert run["params"] == {"fast": 10, "slow": 50, "short": False} and len(run["settings_hash"]) == 16
    table = pd.read_csv(out / f"stats_{stem}.csv")
    assert table.loc[0, "settings_hash"] == run["settings_hash"]


def test_runs_of_other_strategies_or_parameters_do_not_overwrite_each_other(tmp_path):
    """Artifacts are named by symbol, timeframe, strategy and a hash of the sorted parameters: three
    different runs leave three sets of files; the same run again replaces its own."""
    span = ["--sample", "--since", "2024-02-01", "--until", "2024-03-01", "--out", str(tmp_path)]
    runs = [["-s", "sma_cross", "-p", "fast=5", "-p", "slow=30"], ["-s", "sma_cross", "-p", "slow=30", "-p", "fast=8"],
            ["-s", "rsi_bollinger"], ["-s", "sma_cross", "-p", "slow=30", "-p", "fast=5"]]
    for args in runs:
        assert CliRunner().invoke(root, ["backtest", *args, *span]).exit_code == 0
    names = sorted(p.name for p in tmp_path.glob("run_*.json"))
    assert len(names) == 3 and sum("rsi_bollinger" in n for n in names) == 1
    params = {tuple(sorted(json.loads((tmp_path / n).read_text())["params"].items())) for n in names}
    assert len(params) == 3
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1}) != params_hash({"a": 1, "b": 3})


def test_bad_parameter_is_a_clear_error():
    result = CliRunner().invoke(root, ["backtest", "--sample", "--param", "fsat=3"])
    assert result.exit_code != 0
    assert "did you mean 'fast'" in str(result.exception)


def test_sweep_command_prints_the_top_table(tmp_path):
    result = CliRunner().invoke(root, [
        "backtest", "sweep", "-s", "sma_cross", "--sample", "--since", "2023-06-01", "-g", "fast=5:15:5",
        "-g", "slow=40,80", "--top", "3", "--out", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert lines[0].split()[:3] == ["symbol", "fast", "slow"] and len(lines) == 4
    assert len(pd.read_csv(tmp_path / "sweep_BTCUSDT_1h_sma_cross.csv")) == 6


def test_strategies_list_shows_parameters():
    result = CliRunner().invoke(root, ["strategies", "list"])
    assert result.exit_code == 0 and "sma_cross" in result.stdout and "fast" in result.stdout


def test_report_is_offline_html_with_all_panels(btc_1h, tmp_path):
    candles = btc_1h.frame.tail(3000)
    result = run_backtest(candles, get_strategy("sma_cross")())
    text = render_report(result)
    assert "<script src=\"https://cdn" not in text  # plotly.js is embedded
    for title in ("price and trades", "equity", "drawdown", "monthly returns"):
        assert title in text
    paths = write_artifacts(result, tmp_path)
    trades = pd.read_csv(paths["trades"])
    assert list(trades.columns[:4]) == ["symbol", "entry_ts", "exit_ts", "side"]


def test_monthly_returns_chain_to_total():
    idx = pd.date_range("2024-01-01", periods=90, freq="1D", tz="UTC")
    equity = pd.Series([100.0 + i for i in range(90)], index=idx)
    table = monthly_returns(equity, 100.0)
    total = (1 + table.stack()).prod() - 1
    assert abs(total - (equity.iloc[-1] / 100.0 - 1)) < 1e-12


def test_portfolio_command_prints_stats_and_per_symbol_trades(tmp_path):
    result = CliRunner().invoke(root, [
        "backtest", "portfolio", "--sample", "-t", "1h", "--since", "2024-01-01", "--symbol", "BTC/USDT",
        "--symbol", "ETH/USDT", "--sizing", "fraction:0.3", "--out", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    assert "final_equity" in result.stdout and "BTC/USDT" in result.stdout and "ETH/USDT" in result.stdout
    (run_file,) = tmp_path.glob("run_PORTFOLIO_1h_sma_cross_*.json")
    run = json.loads(run_file.read_text())
    assert set(run["params"]) == {"BTC/USDT", "ETH/USDT"} and len(run["settings_hash"]) == 16
