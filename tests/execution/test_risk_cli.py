"""The operator's risk commands take no safety decision without its audit record."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import StoreError


@pytest.mark.parametrize("command", [("kill-switch", "on"), ("kill-switch", "off"), ("reduce-only", "on")])
def test_risk_commands_refuse_an_audit_trail_that_keeps_nothing(tmp_path, command):
    env = {"THUNES_TRADER__STATE_DIR": str(tmp_path / "state"), "THUNES_AUDIT__PATH": os.devnull,
           "THUNES_CONFIG": None}
    result = CliRunner().invoke(root, ["risk", *command, "--reason", "incident", "--operator", "alice"], env=env)
    assert isinstance(result.exception, StoreError)
    assert f"audit file {os.devnull} is not a regular file" in str(result.exception)
    assert not (tmp_path / "state" / "local" / "risk_state.json").exists()


def test_risk_status_shows_the_days_loss_from_the_database_and_writes_nothing(tmp_path):
    """A loss past the limit (a trader killed before it saved the trip) reads HALTED; status, being read-only
    and unaudited, does not save the trip: the next trader's start does, with its audit record."""
    import json
    from decimal import Decimal

    from thunes.core.enums import Side
    from thunes.execution.db import Database
    from thunes.execution.positions import PositionTracker

    folder = tmp_path / "state" / "local"
    with Database.connect(f"sqlite:///{folder / 'execution.sqlite'}") as db:
        tracker = PositionTracker(db)
        tracker.apply_fill("A/USDT", Side.BUY, Decimal(1), Decimal(100), client_order_id="b")
        tracker.apply_fill("A/USDT", Side.SELL, Decimal(1), Decimal(40), client_order_id="s")
    env = {"THUNES_TRADER__STATE_DIR": str(tmp_path / "state"), "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"),
           "THUNES_CONFIG": None}
    result = CliRunner().invoke(root, ["risk", "status", "--json"], env=env, catch_exceptions=False)
    out = json.loads(result.output)
    assert out["mode"] == "HALTED" and Decimal(out["realised_today"]) == Decimal(-60) and out["day_rule"] == "UTC"
    assert not (folder / "risk_state.json").exists() and not (tmp_path / "audit.jsonl").exists()
