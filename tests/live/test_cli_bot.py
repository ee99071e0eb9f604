"""``thunes bot``: parsing and printing only (the services behind it have their own tests)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import ConfigError


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(root, list(args), env=env)


def test_bot_run_trades_several_pairs_offline_and_prints_a_table_per_pair(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts/bot/LATEST is written here
    env = {"THUNES_DATA__URL": f"sqlite:///{tmp_path / 'c.sqlite'}", "THUNES_AUDIT__FSYNC": "never"}
    state = tmp_path / "bot"
    result = invoke("bot", "run", "--synthetic", "--bars", "60", "--param", "fast=5", "--param", "slow=20",
                    "--pairs", "BTC/USDT,ETH/USDT,SOL/USDT", "--state-dir", str(state), env=env)
    assert result.exit_code == 0, result.output
    for sym in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        assert sym in result.output
    assert "candles 180, orders" in result.output and "stopped: replay finished" in result.output
    assert (tmp_path / "artifacts/bot/LATEST").read_text().strip() == str(state)

    status = invoke("bot", "status", env=env)  # the last run's folder by default
    assert status.exit_code == 0 and "not running, state stopped" in status.output
    assert "BTC/USDT" in status.output and "kill-switch off" in status.output
    jobs = invoke("bot", "jobs", "--state-dir", str(state))
    assert "reconcile" in jobs.output and "backup" in jobs.output
    trades = invoke("bot", "trades", "--state-dir", str(state), "--per-page", "2")
    assert trades.exit_code == 0 and trades.output.startswith("page 1/")
    profit = invoke("bot", "profit", "--state-dir", str(state), "--daily", "2")
    assert profit.exit_code == 0 and "win rate" in profit.output


def test_bot_run_live_without_the_confirmations_is_refused():
    result = invoke("bot", "run", "--exchange", "live")
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "--live and --i-understand-the-risks" in str(result.exception)


def test_steering_a_bot_that_is_not_running_says_so(tmp_path):
    result = invoke("bot", "stop", "--state-dir", str(tmp_path))
    assert result.exit_code != 0 and "no bot is running" in str(result.exception)


@pytest.mark.parametrize("sub", ["run", "status", "pause", "resume", "stop", "force-exit", "reload", "jobs",
                                 "kill-switch", "reduce-only", "trades", "profit"])
def test_every_bot_command_explains_itself(sub):
    result = invoke("bot", sub, "--help")
    assert result.exit_code == 0 and "Usage" in result.output
