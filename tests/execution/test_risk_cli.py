"""The operator's risk commands take no safety decision without its audit record."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import ConfigError


@pytest.mark.parametrize("command", [("kill-switch", "on"), ("kill-switch", "off"), ("reduce-only", "on")])
def test_risk_commands_refuse_an_audit_trail_that_keeps_nothing(tmp_path, command):
    env = {"THUNES_TRADER__STATE_DIR": str(tmp_path / "state"), "THUNES_AUDIT__PATH": os.devnull,
           "THUNES_CONFIG": None}
    result = CliRunner().invoke(root, ["risk", *command, "--reason", "incident", "--operator", "alice"], env=env)
    assert isinstance(result.exception, ConfigError)
    assert "keeps no record" in str(result.exception) and "THUNES_AUDIT__PATH" in str(result.exception)
    assert not (tmp_path / "state" / "local" / "risk_state.json").exists()
