"""The trading commands refuse what they must refuse before touching any exchange."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import ConfigError


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(root, list(args), env=env)


def test_live_needs_both_confirmations():
    result = invoke("live", "--live")
    assert result.exit_code == 2
    assert "--live and --i-understand-the-risks" in result.output


def test_live_without_keys_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("live", "--live", "--i-understand-the-risks",
                    env={"THUNES_EXCHANGE__API_KEY": None, "THUNES_EXCHANGE__API_SECRET": None})
    assert isinstance(result.exception, ConfigError)
    assert "THUNES_EXCHANGE__API_KEY" in str(result.exception)


@pytest.mark.parametrize("command", ["paper", "live", "parity"])
def test_every_trading_command_explains_itself(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Example" in result.output
