"""What the three backtest commands accept, and what they refuse with one line.

* ``--strategy`` takes what every other command takes: a built-in name, a strategy of the strategies
  folder (trader.strategies_dir) by name, ``module:Class`` and ``file.py:Class``;
* nonsense sizing, slippage and grid ranges are refused at parse time with one line naming the flag
  (exit status 2), and the engine's option classes refuse the same values from the Python API.
"""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from thunes.backtest import (
    FixedQuote,
    FixedSlippage,
    FractionOfEquity,
    VolatilitySlippage,
    VolTarget,
    VolumeSlippage,
)
from thunes.cli import root
from thunes.core.errors import ConfigError

SPAN = ["--sample", "--since", "2024-02-01", "--until", "2024-03-01"]

USER_STRATEGY = '''
from thunes.strategies import Param, Signals, Strategy, crossed_above, crossed_below


class Breakout(Strategy):
    """Long when the close crosses above its rolling high of the previous bars."""

    name = "breakout"
    window = Param(int, default=20, low=2, high=200)

    @property
    def warmup(self) -> int:
        return self.window + 1

    def signals(self, candles):
        close = candles["close"]
        high = close.rolling(self.window).max().shift(1)
        low = close.rolling(self.window).min().shift(1)
        return Signals(entries=crossed_above(close, high), exits=crossed_below(close, low))
'''

COMMANDS = {
    "backtest": ["backtest", "--json"],
    "sweep": ["backtest", "sweep", "--grid", "window=10,20", "--json"],
    "portfolio": ["backtest", "portfolio", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--json"],
}


def _invoke(args: list[str], out):
    return CliRunner().invoke(root, [*args, *SPAN, "--out", str(out)])


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project folder whose strategies/ holds breakout.py and whose mystrats.py is importable."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "breakout.py").write_text(USER_STRATEGY)
    (tmp_path / "mystrats.py").write_text(USER_STRATEGY)
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("spec", ["breakout", "strategies/breakout.py:Breakout", "mystrats:Breakout"])
def test_backtest_commands_run_user_strategies(project, command, spec):
    """A strategy of the strategies folder (by name), a file.py:Class and a module:Class all run."""
    result = _invoke([*COMMANDS[command], "--strategy", spec], project / "art")
    assert result.exit_code == 0, f"{shlex.join(COMMANDS[command])} --strategy {spec}: {result.output}"
    doc = json.loads(result.stdout)
    if command == "sweep":
        assert doc["strategy"] == "breakout" and {row["window"] for row in doc["top"]} == {10, 20}
    else:
        stats = doc if command == "backtest" else doc["stats"]
        assert stats["bars"] == 696  # the hours of February 2024 (SPAN), real or synthetic candles


def test_unknown_strategy_names_the_folder_strategies(project):
    result = _invoke(["backtest", "--strategy", "breakuot"], project / "art")
    assert result.exit_code != 0
    assert "breakout" in str(result.exception) and "module:Class" in str(result.exception)


@pytest.mark.parametrize("flag,value,says", [
    ("--sizing", "quote:-5", "must be > 0"),
    ("--sizing", "quote:0", "must be > 0"),
    ("--sizing", "fraction:0", "(0, 1]"),
    ("--sizing", "fraction:1.5", "(0, 1]"),
    ("--sizing", "vol:-0.2", "must be > 0"),
    ("--sizing", "fraction:nan", "(0, 1]"),
    ("--sizing", "kelly:0.5", "kind must be"),
    ("--slippage", "fixed:-5", "must be >= 0"),
    ("--slippage", "vol:2,-0.1", "k must be >= 0"),
    ("--slippage", "volume:-1,0.1", "bps must be >= 0"),
    ("--slippage", "fixed:abc", "expected fixed:BPS"),
])
@pytest.mark.parametrize("command", COMMANDS)
def test_nonsense_sizing_and_slippage_are_refused_at_parse_time(tmp_path, command, flag, value, says):
    """Exit status 2 (a usage error) and one line naming the flag, before any candle is loaded."""
    result = _invoke([*COMMANDS[command], flag, value], tmp_path)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}:" in result.stderr and says in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("flag,value", [("--sizing", "fraction:1"), ("--sizing", "quote:500"),
                                        ("--sizing", "vol:0.3"), ("--slippage", "fixed:0"),
                                        ("--slippage", "volume:2,0.1")])
def test_sensible_sizing_and_slippage_are_accepted(tmp_path, flag, value):
    assert _invoke(["backtest", flag, value], tmp_path).exit_code == 0


def test_empty_grid_range_blames_the_range(tmp_path):
    result = _invoke(["backtest", "sweep", "--grid", "fast=50:5:5"], tmp_path)
    assert result.exit_code == 2
    assert "--grid fast=50:5:5: empty range (START > STOP)" in result.stderr


@pytest.mark.parametrize("make", [
    lambda: FixedQuote(amount=-5), lambda: FixedQuote(amount=0), lambda: FractionOfEquity(fraction=0),
    lambda: FractionOfEquity(fraction=1.01), lambda: FractionOfEquity(fraction=float("nan")),
    lambda: VolTarget(annual_vol=0), lambda: VolTarget(window=1), lambda: FixedSlippage(bps=-5),
    lambda: VolatilitySlippage(bps=-1), lambda: VolatilitySlippage(k=-0.1), lambda: VolumeSlippage(bps=-1),
    lambda: VolumeSlippage(k=-0.1),
])
def test_option_classes_refuse_nonsense_from_python(make):
    with pytest.raises(ConfigError):
        make()
