"""The audit service: a trail verified under the settings' key and the account's anchors, saying what it checked."""

from __future__ import annotations

import json

import pytest

from thunes.config import AuditSettings, Settings, TraderSettings
from thunes.core.errors import ConfigError
from thunes.execution.audit import AuditAnchors, AuditTrail
from thunes.execution.db import Database
from thunes.services.audit import verify_trail


def _settings(tmp_path) -> Settings:
    return Settings(trader=TraderSettings(state_dir=tmp_path / "state"),
                    audit=AuditSettings(path=tmp_path / "audit.jsonl", fsync="never"))


def _trader_run(tmp_path, n: int) -> None:
    """A trader's trail: anchors in <state dir>/local/execution.sqlite, closed (so its head is anchored)."""
    with Database.connect(f"sqlite:///{tmp_path / 'state' / 'local' / 'execution.sqlite'}") as db:
        with AuditTrail(tmp_path / "audit.jsonl", fsync="never", anchors=AuditAnchors(db)) as trail:
            for i in range(n):
                trail.append("order_intent", {"i": i})


def test_an_intact_trail_passes_every_check_and_names_them(tmp_path):
    _trader_run(tmp_path, 3)
    checked = verify_trail(_settings(tmp_path), mode="local")
    assert checked.ok and checked.verdict == "ok" and checked.result.records == 3
    assert checked.checks[0].startswith("hmac-sha256 (3 records") and "keys/audit.key" in checked.checks[0]
    assert checked.checks[1] == "head file (seq 2)" and checked.checks[2].startswith("anchors: 1 (sqlite:///")


def test_a_trail_cut_with_its_head_is_tampered_through_the_database_anchor(tmp_path):
    _trader_run(tmp_path, 5)
    path = tmp_path / "audit.jsonl"
    lines = path.read_text().splitlines(keepends=True)[:3]
    path.write_text("".join(lines))
    last = json.loads(lines[-1])
    path.with_name(path.name + ".head").write_text(f"{last['seq']} {last['hash']}\n")
    checked = verify_trail(_settings(tmp_path), mode="local")
    assert not checked.ok and checked.verdict == "TAMPERED" and "anchor records seq 4" in checked.result.error


def test_without_a_database_the_anchors_are_said_unchecked_and_a_missing_file_is_refused(tmp_path):
    _trader_run(tmp_path, 2)
    checked = verify_trail(_settings(tmp_path), mode="live")  # no execution database in state/live
    assert checked.ok and "anchors from the database: not checked" in checked.checks[2]
    with pytest.raises(ConfigError, match="does not exist"):
        verify_trail(_settings(tmp_path), path=tmp_path / "nothing.jsonl")
