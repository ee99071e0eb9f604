"""Every command that reads candles takes the same candle-source flags and follows the same rule.

The flags: ``--since``, ``--until``, ``--db``, ``--csv``, ``--sample``, ``--source`` (one decorator,
:func:`thunes.cli._common.candle_source_options`). The rule (:mod:`thunes.data.sources`): on an empty store
and without sample files, the default source stops with one error line naming what to run (never synthetic
candles); ``--source synthetic`` runs on generated candles and says so.
"""

from __future__ import annotations

import click
import pytest

from thunes.cli import main, root

FLAGS = ("since", "until", "db", "csv_file", "sample", "source")

# Every candle-reading command, run cheaply. Commands that first need a trained model (forecast, ml evaluate)
# are covered by the flag check only.
COMMANDS: dict[str, list[str]] = {
    "backtest": ["backtest", "--out", "{tmp}/bt"],
    "backtest sweep": ["backtest", "sweep", "--grid", "fast=5,10", "--grid", "slow=30", "--out",
                       "{tmp}/sweep"],
    "backtest portfolio": ["backtest", "portfolio", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--out",
                           "{tmp}/portfolio"],
    "features compute": ["features", "compute"],
    "audit lookahead": ["audit", "lookahead", "sma_cross", "--rows", "300", "--prefixes", "2"],
    "plot": ["plot", "--out", "{tmp}/chart.html"],
    "parity": ["parity", "--bars", "30", "--out", "{tmp}/parity"],
    "optimize": ["optimize", "--trials", "2", "--walk-forward", "none", "--storage", "sqlite:///{tmp}/o.sqlite"],
    "optimize decay": ["optimize", "decay", "--param", "fast=10", "--param", "slow=50", "--window", "100",
                       "--lookback", "300"],
    "paper": ["paper", "--bars", "2", "--replay-speed", "360000", "--out", "{tmp}/paper"],
    "train": ["train", "--model", "xgb", "--out", "{tmp}/model"],
}
# Cheap enough to run end to end on synthetic candles here (paper: tests/trader/test_json_summaries.py).
SYNTHETIC_RUNS = ("backtest", "backtest sweep", "backtest portfolio", "features compute", "audit lookahead",
                  "plot", "parity", "optimize decay")


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        out[path] = cmd
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, f"{path} "))
    return out


@pytest.fixture()
def fresh_clone(tmp_path, monkeypatch):
    """An empty working folder (its default store does not exist) and no sample file anywhere."""
    empty = tmp_path / "no-samples"
    empty.mkdir()
    monkeypatch.setenv("THUNES_SAMPLE_DIR", str(empty))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(argv: list[str], capfd) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capfd.readouterr()
    return int(code), out, err


def test_every_candle_reading_command_takes_the_same_candle_source_flags():
    """A command with any of the flags has all of them, with the same option names and help."""
    commands = _commands(root)
    readers = {path: cmd for path, cmd in commands.items()
               if not path.startswith("data ") and {p.name for p in cmd.params} & {"source", "csv_file"}}
    assert set(COMMANDS) | {"forecast", "ml evaluate"} == set(readers)
    reference = {p.name: (p.opts, p.help) for p in commands["backtest"].params if p.name in FLAGS}
    assert set(reference) == set(FLAGS)
    for path, cmd in readers.items():
        flags = {p.name: (p.opts, p.help) for p in cmd.params if p.name in FLAGS}
        assert flags == reference, path


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_data_the_default_source_stops_with_one_line_naming_what_to_run(command, fresh_clone, capfd):
    argv = [a.format(tmp=fresh_clone) for a in COMMANDS[command]]

    code, out, err = _run(argv, capfd)

    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: no BTC/USDT 1h candles")
    for hint in ("thunes data download", "thunes data import", "--sample", "--source synthetic"):
        assert hint in lines[0]
    assert not (fresh_clone / "data").exists()  # looking did not create the default store


@pytest.mark.parametrize("command", SYNTHETIC_RUNS)
def test_source_synthetic_runs_every_command_and_says_so(command, fresh_clone, capfd):
    argv = [a.format(tmp=fresh_clone) for a in COMMANDS[command]]

    code, _, err = _run([*argv, "--source", "synthetic", "--until", "2024-03-01"], capfd)

    assert code in (0, 1), err  # parity and the audit exit 1 on a finding: the command ran
    assert "from SYNTHETIC candles (--source synthetic" in err
    assert "warning: these are SYNTHETIC candles, not market data" in err


def test_sample_is_source_sample_and_conflicts_are_usage_errors(fresh_clone, capfd):
    code, _, err = _run(["backtest", "--sample", "--source", "store"], capfd)
    assert code == 2 and "--sample means --source sample; it cannot go with --source store" in err
    candles = fresh_clone / "c.csv"
    candles.write_text("ts,open,high,low,close,volume\n")
    code, _, err = _run(["backtest", "--csv", str(candles), "--sample"], capfd)
    assert code == 2 and "--csv FILE reads that file; it cannot go with --sample or --source" in err
    code, _, err = _run(["features", "compute", "--sample", "--until", "2024-02-01"], capfd)
    assert code == 0 and "from sample: no real sample file, SYNTHETIC candles" in err


def test_source_store_refuses_an_empty_store(fresh_clone, capfd):
    code, _, err = _run(["plot", "--source", "store", "--db", f"sqlite:///{fresh_clone}/none.sqlite"], capfd)

    assert code == 2
    assert f"error: the candle store sqlite:///{fresh_clone}/none.sqlite has no BTC/USDT 1h candles" in err
