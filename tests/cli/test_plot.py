"""``thunes plot`` (issue 14, item 11): candlesticks with volume, the strategy's indicators and its trade
markers, in one HTML page that embeds plotly.js (opens offline, like the backtest report)."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from thunes.cli import root


def _traces(page: str) -> list[dict]:
    """The plotly traces of the page (the JSON array passed to Plotly.newPlot)."""
    match = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\])\s*,\s*\{", page, re.S)
    assert match, "no Plotly.newPlot call"
    return json.loads(match.group(1))


def test_plot_draws_candles_volume_indicators_and_trades_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(root, ["strategies", "new", "trend_plot"]).exit_code == 0
    out = tmp_path / "chart.html"
    result = CliRunner().invoke(root, ["--set", f"backtest.artifacts_dir={tmp_path}", "plot", "--sample",
                                       "--strategy", "trend_plot", "--param", "period=20", "--param", "momentum=5",
                                       "--last", "400", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<script src=" not in page and len(page) > 1_000_000  # plotly.js is embedded, nothing fetched
    traces = _traces(page)
    by_name = {t.get("name"): t for t in traces}
    assert by_name["candles"]["type"] == "candlestick" and len(by_name["candles"]["x"]) == 400
    assert by_name["volume"]["type"] == "bar"
    assert {"sma", "momentum"} <= set(by_name)
    assert by_name["sma"]["yaxis"] == "y" and by_name["momentum"]["yaxis"] == "y2"  # own pane
    assert "long entry" in by_name and "exit" in by_name
    assert "trade(s) shown" in result.stderr


def test_plot_of_a_strategy_without_indicators_shows_candles_and_trades(tmp_path):
    """``Strategy.indicators`` defaults to none: such a strategy still charts its candles and trades."""
    (tmp_path / "bare.py").write_text(
        "from thunes.strategies import Signals, Strategy\n\n\n"
        "class Bare(Strategy):\n"
        "    name = 'bare'\n\n"
        "    def signals(self, candles):\n"
        "        up = candles['close'] > candles['open']\n"
        "        return Signals(entries=up, exits=~up)\n")
    out = tmp_path / "bare.html"
    result = CliRunner().invoke(root, ["plot", "--sample", "--strategy", f"{tmp_path}/bare.py:Bare", "--last", "300",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {t.get("name") for t in _traces(out.read_text())}
    assert {"candles", "volume", "long entry"} <= names and "0 indicator(s)" in result.stderr


def test_built_in_strategies_draw_their_indicators(tmp_path):
    """sma_cross draws its two moving averages over the candles; rsi_bollinger its bands over the candles
    and its RSI in a pane of its own."""
    sma = tmp_path / "sma.html"
    result = CliRunner().invoke(root, ["plot", "--sample", "--strategy", "sma_cross", "--param", "fast=10",
                                       "--param", "slow=50", "--last", "300", "--out", str(sma)])
    assert result.exit_code == 0, result.output
    by_name = {t.get("name"): t for t in _traces(sma.read_text())}
    assert by_name["sma_10"]["yaxis"] == by_name["sma_50"]["yaxis"] == by_name["candles"].get("yaxis", "y")
    assert len(by_name["sma_50"]["x"]) == 300

    bb = tmp_path / "bb.html"
    result = CliRunner().invoke(root, ["plot", "--sample", "--strategy", "rsi_bollinger", "--last", "300",
                                       "--out", str(bb)])
    assert result.exit_code == 0, result.output
    by_name = {t.get("name"): t for t in _traces(bb.read_text())}
    assert {by_name[k]["yaxis"] for k in ("bb_upper", "bb_middle", "bb_lower")} == {"y"}
    assert by_name["rsi"]["yaxis"] == "y2"
