"""Every backtest command line the docs show, and every flag of the three backtest commands, runs.

The documented lines are read from README.md, docs/backtest.md and the commands' ``--help`` examples,
so a new example is tested the day it is written. Every option the commands declare must appear in
:data:`FLAG_ARGS` (a new flag without a test fails here), and each one is run on each command.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.cli.backtest import backtest_group, portfolio_cmd, sweep_cmd
from thunes.data.io import write_candle_file
from thunes.data.samples import load_sample_candles

REPO = Path(__file__).resolve().parents[2]
# Short spans keep each run well under a second on the sample data (1h ends 2024-04, 5m starts 2024-01).
SPAN = ["--since", "2024-02-01", "--until", "2024-03-01"]

# One value per option of the three commands (options that are not flags take this argument).
FLAG_ARGS: dict[str, list[str]] = {
    "--strategy": ["--strategy", "rsi_bollinger"],
    "--symbol": ["--symbol", "ETH/USDT"],
    "--param": ["--param", "fast=5"],
    "--grid": ["--grid", "fast=5,10"],
    "--timeframe": ["--timeframe", "5m"],
    "--since": ["--since", "2024-02-10"],
    "--until": ["--until", "2024-02-20"],
    "--csv": ["--csv", "candles.csv"],
    "--sample": ["--sample"],
    "--db": ["--db", "sqlite:///other.sqlite"],  # with --sample: the store is not read (nor created)
    "--source": ["--source", "sample"],
    "--stop-loss": ["--stop-loss", "0.03"],
    "--take-profit": ["--take-profit", "0.05"],
    "--trailing-stop": ["--trailing-stop", "0.04"],
    "--allow-short": ["--allow-short"],
    "--no-risk": ["--no-risk"],
    "--no-filters": ["--no-filters"],
    "--sizing": ["--sizing", "quote:500"],
    "--slippage": ["--slippage", "vol:2,0.1"],
    "--out": [],  # every run passes --out
    "--report": ["--report"],
    "--json": ["--json"],
    "--top": ["--top", "3"],
    "--sort": ["--sort", "total_return"],
}
COMMANDS = {"backtest": backtest_group, "sweep": sweep_cmd, "portfolio": portfolio_cmd}
BASE = {"backtest": ["backtest"], "sweep": ["backtest", "sweep", "--grid", "slow=30,40"],
        "portfolio": ["backtest", "portfolio", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT"]}


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """An empty folder holding candles.csv (the file the --csv examples name)."""
    monkeypatch.chdir(tmp_path)
    frame = load_sample_candles("BTC/USDT", "1h").frame
    write_candle_file(frame.loc["2024-01-01":"2024-03-01"], tmp_path / "candles.csv")
    return tmp_path


def _run(args: list[str], out: Path):
    result = CliRunner().invoke(root, [*args, "--out", str(out)])
    assert result.exit_code == 0, f"thunes {shlex.join(args)} failed:\n{result.output}\n{result.exception!r}"
    return result


def documented_lines() -> list[str]:
    """``thunes backtest ...`` lines of the README, docs/backtest.md and the --help texts."""
    texts = [(REPO / "README.md").read_text(), (REPO / "docs" / "backtest.md").read_text()]
    for name in ("backtest", "backtest sweep", "backtest portfolio"):
        texts.append(CliRunner().invoke(root, [*name.split(), "--help"]).output)
    lines = []
    for text in texts:
        joined = re.sub(r"\\\n\s*", " ", text)
        for line in joined.splitlines():
            m = re.search(r"(?:^|\$ |`)thunes (backtest[^`#\n]*)", line.strip())
            if m and "[options]" not in m.group(1) and "..." not in m.group(1):
                lines.append(m.group(1).strip())
    return sorted(set(lines))


def test_the_docs_show_backtest_lines():
    lines = documented_lines()
    # A bound: the docs gain examples over time; every one found is checked by the tests below.
    assert len(lines) >= 6 and any("--no-risk" in ln for ln in lines), lines


# Lines the docs show as examples of an error, with the message they document.
DOCUMENTED_ERRORS = {"backtest --sample --param fsat=3": "did you mean 'fast'"}


@pytest.mark.parametrize("line", documented_lines())
def test_every_documented_command_line_runs(line, workdir):
    """Each documented line, on the sample data (``--sample`` added when it reads the store)."""
    args = shlex.split(line)
    if line in DOCUMENTED_ERRORS:
        result = CliRunner().invoke(root, args)
        assert result.exit_code != 0 and DOCUMENTED_ERRORS[line] in str(result.exception)
        return
    if "--sample" not in args and "--csv" not in args:
        args.append("--sample")
    if "--since" not in args:
        args += ["--since", "2024-01-01"]
    _run(args, workdir / "out")


def test_every_option_has_a_test_value():
    declared = set().union(*(_declared(c) for c in COMMANDS))
    assert declared - set(FLAG_ARGS) == set(), "add the new option(s) to FLAG_ARGS"


def _declared(command: str) -> set[str]:
    return {opt for p in COMMANDS[command].params for opt in p.opts if opt.startswith("--")}


@pytest.mark.parametrize(("command", "flag"), [(c, f) for c in sorted(COMMANDS) for f in sorted(_declared(c))
                                               if FLAG_ARGS.get(f)])
def test_each_flag_on_each_command(command, flag, workdir):
    """The flag alone on top of the command's minimal line, on the sample data."""
    if command == "portfolio" and flag == "--csv":  # refused with a clear error: one file holds one symbol
        result = CliRunner().invoke(root, [*BASE[command], *FLAG_ARGS[flag]])
        assert result.exit_code != 0 and "--csv holds one symbol" in str(result.exception)
        return
    args = [*BASE[command], *FLAG_ARGS[flag]]
    if command == "sweep" and flag == "--strategy":
        args = ["backtest", "sweep", "--grid", "rsi_period=10,14", *FLAG_ARGS[flag]]
    if flag != "--csv":
        args.append("--sample")
    if flag not in ("--since", "--until"):
        args += SPAN
    _run(args, workdir / "out")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_all_risk_and_execution_flags_together(command, workdir):
    """--no-risk with stops, shorts, sizing, slippage and no filters at once (the research set-up)."""
    args = [*BASE[command], "--sample", *SPAN, "--no-risk", "--no-filters", "--allow-short", "--stop-loss", "0.02",
            "--take-profit", "0.04", "--trailing-stop", "0.03", "--sizing", "fraction:0.5", "--slippage", "fixed:3"]
    _run(args, workdir / "out")
