"""No secret reaches an output: every ``thunes`` command, run with recognisable secrets set through the
environment, a config file and ``--set``, prints, logs and writes none of them (stdout, stderr, log
files, audit trail, state, artifacts, databases).

The command list comes from the click tree, so a new command fails
:func:`test_every_command_is_run_or_listed_as_help_only` until it is given a real run here (or a reason
why ``--help`` is all this test can afford). Real runs are offline and small; the PostgreSQL variant
stores candles and Optuna studies on the harness's real server through a URL that carries a password.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import NamedTuple

import click
import pytest
from click.testing import CliRunner

from thunes.cli import main, root
from thunes.data.samples import load_sample_candles
from thunes.exchange.sim import LocalExchange, SimOptions

SECRETS = {
    "api_key": "SEKRETAPIKEY123",  # exchange.api_key, from the environment
    "api_secret": "SEKRETAPISECRET456",  # exchange.api_secret, from the config file (and --set once)
    "token": "SEKRETTGTOKEN789",  # telegram.token, from --set
    "db_password": "PGPASSWORD987",  # in data.url (config file) and a --db URL
    "optuna_password": "OPTPASSWORD654",  # in optimize.storage (--set) and a --storage URL
}
UNREACHABLE = "127.0.0.1:1"  # connection refused at once

# Commands this test runs only with --help, and why.
HELP_ONLY = {
    "train": "trains a model (torch): minutes",
    "forecast": "needs a trained model (torch)",
    "ml evaluate": "trains walk-forward models (torch)",
    "ml export-onnx": "needs a trained checkpoint (torch)",
    "audit leakage": "needs a feature dataset and fits scalers; covered by tests/ml",
    "api serve": "a long-running server; its responses are checked for secrets in tests/api",
    "telegram serve": "polls a Telegram server; covered against the fake Bot API in tests/ops",
    "stream broker": "a long-running Kafka broker; covered in tests/stream",
    "stream run": "a long-running ingestion; covered in tests/stream",
    "stream sink": "a long-running consumer; covered in tests/stream",
}


class Setup(NamedTuple):
    work: Path  # the cwd: logs, audit, state, artifacts all land below it
    bad_config: Path  # a config file whose secret has the wrong type
    storage: str  # the Optuna storage URL, with its password
    rest: str  # the local exchange (which knows none of the keys): REST base,
    ws: str  # websocket base
    first: str  # and the date of its first candle


def _runs(at: Setup) -> dict[str, list[list[str]]]:
    """Real runs, per command (argv after the global options). Small, offline, quick."""
    day = ["--symbol", "BTC/USDT", "--timeframe", "1d"]
    why = ["--reason", "secrets test", "--operator", "tester"]
    work = at.work
    remote = ["--set", f"exchange.base_url={at.rest}", "--set", f"exchange.ws_url={at.ws}"]
    bot = work / "bot"
    at_bot = ["--state-dir", str(bot)]
    return {
        "config show": [["config", "show"], ["config", "show", "--json"]],
        "config check": [["config", "check"], ["config", "check", str(at.bad_config)]],
        "strategies list": [["strategies", "list"], ["strategies", "list", "--json"]],
        "strategies new": [["strategies", "new", "secrets_probe", "--folder", str(work / "strategies")]],
        "plot": [["plot", "--sample", "--strategy", "sma_cross", "--last", "50", "--out", str(work / "chart.html")]],
        "features list": [["features", "list"]],
        "data import": [["data", "import", "--sample", "BTC/USDT", "--timeframe", "1d"]],
        "data list": [["data", "list"], ["data", "list", "--json"],
                      ["data", "list", "--db", f"postgresql://thunes:{SECRETS['db_password']}"
                                               f"@{UNREACHABLE}/candles"]],
        "data check": [["data", "check", *day, "--json"]],
        "data export": [["data", "export", *day, "--out", str(work / "export.csv")]],
        "data download": [["data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h",
                           "--since", at.first, "--base-url", at.rest]],
        "features compute": [["features", "compute", *day, "--since", "2024-01-01",
                              "--out", str(work / "features.csv")]],
        "backtest": [["backtest", *day, "--since", "2023-01-01", "--out", str(work / "bt"), "--report"]],
        "backtest sweep": [["backtest", "sweep", "--sample", *day, "--since", "2023-01-01", "-g", "fast=5,10",
                            "-g", "slow=40", "--out", str(work / "sweep")]],
        "backtest portfolio": [["backtest", "portfolio", "--sample", "--timeframe", "1d",
                                "--since", "2023-01-01",
                                "--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--out", str(work / "pf")]],
        "optimize": [["optimize", *day, "--trials", "2", "--source", "sample", "--no-progress"]],
        "optimize studies": [["optimize", "studies"]],
        "optimize decay": [["optimize", "decay", *day, "--source", "sample", "--param", "fast=5",
                            "--param", "slow=20"]],
        "optimize worker": [["optimize", "worker", "--storage", at.storage, "--study", "no-such-study",
                             "--trials", "1"]],
        "ml info": [["ml", "info", str(work)]],
        "risk status": [["risk", "status"], ["risk", "status", "--json"]],
        "risk orders": [["risk", "orders", "--all"]],
        "risk kill-switch": [["risk", "kill-switch", "on", *why]],
        "risk reduce-only": [["risk", "reduce-only", "on", *why]],
        "audit verify": [["audit", "verify", str(work / "audit" / "audit.jsonl")]],
        "audit lookahead": [["audit", "lookahead", "sma_cross", "--sample", *day, "--prefixes", "2",
                             "--rows", "200"]],
        "exchange serve": [["exchange", "serve", "--port", "0", "--duration", "0.5"]],
        "exchange clock": [["exchange", "clock", "--url", f"http://{UNREACHABLE}"]],
        "exchange faults": [["exchange", "faults", "--clear", "--url", f"http://{UNREACHABLE}"]],
        "paper": [["paper", "--timeframe", "1d", "--bars", "2", "--replay-speed", "1000000",
                   "--out", str(work / "paper")],
                  # the remote modes sign requests with the configured keys, which the exchange refuses
                  [*remote, "paper", "--testnet", "--bars", "1", "--duration", "2"]],
        "parity": [["parity", "--timeframe", "1d", "--bars", "30", "--out", str(work / "parity")]],
        "live": [["live"], [*remote, "live", "--live", "--i-understand-the-risks", "--duration", "1"]],
        "bot run": [["bot", "run", "--synthetic", "--pairs", "BTC/USDT,ETH/USDT", "--timeframe", "1h", "--bars", "40",
                     "--state-dir", str(bot), "--quiet"]],
        "bot status": [["bot", "status", *at_bot]],
        "bot jobs": [["bot", "jobs", *at_bot]],
        "bot trades": [["bot", "trades", *at_bot]],
        "bot profit": [["bot", "profit", *at_bot, "--daily", "2"]],
        "bot pause": [["bot", "pause", *at_bot]],
        "bot resume": [["bot", "resume", *at_bot]],
        "bot reload": [["bot", "reload", *at_bot]],
        "bot force-exit": [["bot", "force-exit", "BTC/USDT", *at_bot]],
        "bot kill-switch": [["bot", "kill-switch", "on", *why, *at_bot]],
        "bot reduce-only": [["bot", "reduce-only", "on", *why, *at_bot]],
        "bot stop": [["bot", "stop", *at_bot]],
        "api secret": [["api", "secret"]],
        "api user add": [["api", "user", "add", "alice", "--role", "trader", "--password-stdin"]],
        "api user list": [["api", "user", "list"]],
        "api user remove": [["api", "user", "remove", "alice"]],
        "api token create": [["api", "token", "create", "--name", "ci", "--role", "read"]],
        "api token list": [["api", "token", "list"]],
        "api token revoke": [["api", "token", "revoke", "nope"]],
    }


def _commands(group: click.Group = root, path: tuple[str, ...] = ()) -> list[str]:
    """Every command a user can run: leaves, and groups that run without a subcommand."""
    out = []
    for name, command in group.commands.items():
        here = (*path, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                out.append(" ".join(here))
            out += _commands(command, here)
        else:
            out.append(" ".join(here))
    return out


def _invoke(argv: list[str]) -> tuple[int, str]:
    """Run ``thunes ARGV`` in-process through :func:`thunes.cli.main` (the real error printing)."""
    with CliRunner().isolation() as (out, err, _):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - a traceback is output too, and must not hold a secret
            sys.stderr.write(traceback.format_exc())
            code = -1
        finally:
            _reset_logging()  # as a new process would start: the handlers hold this run's streams
        return code, out.getvalue().decode(errors="replace") + err.getvalue().decode(errors="replace")


def _reset_logging() -> None:
    logger = logging.getLogger("thunes")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def workspace(request, tmp_path, monkeypatch):
    """A working folder (the cwd, the logs, every default path), the global options that set secrets
    and a running local exchange."""
    work, inputs = tmp_path / "work", tmp_path / "inputs"
    work.mkdir()
    inputs.mkdir()
    optuna_pw, data_pw = SECRETS["optuna_password"], SECRETS["db_password"]
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        data_db, optuna_db = server.create_database("sec"), server.create_database("secopt")
        data_url = data_db.replace("postgres@", f"postgres:{data_pw}@")
        storage = optuna_db.replace("postgres@", f"postgres:{optuna_pw}@")
    else:
        data_url = f"sqlite:///{work / 'candles.sqlite'}"
        storage = f"postgresql://optuna:{optuna_pw}@{UNREACHABLE}/optuna"
    bad_config = inputs / "bad.json"
    bad_config.write_text(json.dumps({
        "exchange": {"api_key": [SECRETS["api_key"]], "api_secret": {"value": SECRETS["api_secret"]}},
        "telegram": {"token": 7}}))
    config = inputs / "thunes.json"
    config.write_text(json.dumps({
        "data": {"url": data_url},
        "exchange": {"api_secret": SECRETS["api_secret"]},
        "audit": {"path": str(work / "audit" / "audit.jsonl")},
    }))
    for name in list(os.environ):
        if name.startswith("THUNES_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("THUNES_LOGGING__DIR", str(work / "logs"))
    monkeypatch.setenv("THUNES_LOGGING__LEVEL", "DEBUG")
    monkeypatch.setenv("THUNES_EXCHANGE__API_KEY", SECRETS["api_key"])
    monkeypatch.chdir(work)
    options = ["--config", str(config), "--set", f"telegram.token={SECRETS['token']}",
               "--set", f"optimize.storage={storage}"]
    frame = load_sample_candles("BTC/USDT", "1h", limit=200).frame
    with LocalExchange(SimOptions(history_bars=100), candles={"BTC/USDT": frame}) as sim:
        yield request.param, options, Setup(work, bad_config, storage, f"{sim.base_url}/api/v3", sim.ws_url,
                                            frame.index[0].strftime("%Y-%m-%d %H:%M"))
    _reset_logging()


def test_every_command_is_run_or_listed_as_help_only(tmp_path):
    """A new command must get a real run in this test, or a reason why it cannot have one."""
    runs = _runs(Setup(tmp_path, tmp_path, "", "", "", ""))
    commands = set(_commands())
    assert not set(runs) & set(HELP_ONLY)
    assert commands - set(runs) - set(HELP_ONLY) == set(), "add the new command to _runs (or HELP_ONLY)"
    assert set(runs) | set(HELP_ONLY) <= commands, "a listed command no longer exists"


def test_no_secret_reaches_output_logs_or_files(workspace, capfd):
    kind, options, at = workspace
    work = at.work
    outputs: dict[str, str] = {}
    for command in _commands():
        outputs[f"{command} --help"] = _invoke([*command.split(), "--help"])[1]
    codes = {}
    for command, argvs in _runs(at).items():
        for argv in argvs:
            label = " ".join(argv)
            codes[label], outputs[label] = _invoke([*options, *argv])
    # The same through a real process: the logged command line holds the --set values.
    proc = subprocess.run([sys.executable, "-m", "thunes", *options, "--set",
                           f"exchange.api_secret={SECRETS['api_secret']}", "config", "show"],
                          capture_output=True, text=True, cwd=work, timeout=60, env=os.environ.copy())
    outputs["subprocess config show"] = proc.stdout + proc.stderr
    captured = capfd.readouterr()
    outputs["written to the process's own stdout/stderr"] = captured.out + captured.err

    # The secrets were in effect (else the test proves nothing) and the commands did run.
    shown = outputs["config show"]
    for key in ("exchange.api_key", "exchange.api_secret", "telegram.token"):
        assert any(line.startswith(key) and "**********" in line for line in shown.splitlines()), key
    assert any(line.startswith("optimize.storage") and "postgresql://" in line for line in shown.splitlines())
    assert [label for label, text in outputs.items() if "Traceback" in text] == []
    assert codes["data import --sample BTC/USDT --timeframe 1d"] == 0, outputs
    assert codes["risk kill-switch on --reason secrets test --operator tester"] == 0
    assert codes[f"audit verify {work / 'audit' / 'audit.jsonl'}"] == 0
    assert codes["optimize studies"] == (0 if kind == "postgresql" else 2)
    files = [p for p in work.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" and p.parent.name == "logs" for p in files)

    leaks = [f"{what} in output of `thunes {label}`"
             for label, text in outputs.items() for what, secret in SECRETS.items() if secret in text]
    for path in files:
        data = path.read_bytes()
        leaks += [f"{what} in {path.relative_to(work)}" for what, secret in SECRETS.items()
                  if secret.encode() in data or secret.encode("utf-16-le") in data]
    assert not leaks, "\n".join(leaks)
