"""``thunes audit verify`` as an operator runs it: the key from settings, the anchors from the trader's
execution database, and a line saying which checks ran."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from click.testing import CliRunner

from thunes.execution.audit import AuditAnchors, AuditTrail
from thunes.execution.db import Database


def _thunes(tmp_path: Path, *args: str, **env: str):
    from thunes.cli import root

    base = {"THUNES_TRADER__STATE_DIR": str(tmp_path / "state"), "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"),
            "THUNES_AUDIT__FSYNC": "never", "THUNES_CONFIG": None}
    old = Path.cwd()
    os.chdir(tmp_path)  # no stray .env from the repository
    try:
        return CliRunner().invoke(root, list(args), env={**base, **env}, catch_exceptions=False)
    finally:
        os.chdir(old)


def _trader_run(tmp_path: Path, n: int, **trail_options) -> AuditAnchors:
    """A trader's trail: anchors in <state dir>/local/execution.sqlite, closed (so its head is anchored)."""
    db = Database.connect(f"sqlite:///{tmp_path / 'state' / 'local' / 'execution.sqlite'}")
    anchors = AuditAnchors(db)
    with AuditTrail(tmp_path / "audit.jsonl", fsync="never", anchors=anchors, **trail_options) as trail:
        for i in range(n):
            trail.append("order_intent", {"i": i})
    return anchors


def _cut(path: Path, keep: int) -> None:
    lines = path.read_text().splitlines(keepends=True)[:keep]
    path.write_text("".join(lines))
    last = json.loads(lines[-1])
    path.with_name(path.name + ".head").write_text(f"{last['seq']} {last['hash']}\n")


def test_verify_uses_the_key_and_the_trader_database_and_says_what_it_checked(tmp_path):
    anchors = _trader_run(tmp_path, 3)
    anchors.db.close()
    res = _thunes(tmp_path, "audit", "verify")
    assert res.exit_code == 0, res.stderr
    assert "ok: 3 records" in res.stdout
    assert "hmac-sha256 (3 records" in res.stdout and "keys/audit.key" in res.stdout
    assert "head file (seq 2)" in res.stdout and "anchors: 1 (sqlite:///" in res.stdout


def test_verify_fails_a_file_cut_with_its_head_through_the_database_anchor(tmp_path):
    anchors = _trader_run(tmp_path, 5)
    anchors.db.close()
    _cut(tmp_path / "audit.jsonl", 3)
    res = _thunes(tmp_path, "audit", "verify")
    assert res.exit_code == 1 and "TAMPERED" in res.stderr and "anchor records seq 4" in res.stderr


def test_verify_says_when_no_database_was_found_and_checks_an_anchor_from_the_alert(tmp_path):
    anchors = _trader_run(tmp_path, 5)
    alert = anchors.summary(tmp_path / "audit.jsonl").split(" @ ")[0]
    anchors.db.close()
    (tmp_path / "state" / "local" / "execution.sqlite").unlink()
    _cut(tmp_path / "audit.jsonl", 3)
    res = _thunes(tmp_path, "audit", "verify")
    assert res.exit_code == 0 and "not checked (no execution database; pass --db)" in res.stdout
    res = _thunes(tmp_path, "audit", "verify", "--anchor", alert)
    assert res.exit_code == 1 and "removed from the end" in res.stderr


def test_verify_with_a_key_from_the_environment(tmp_path):
    key = "a-secret-from-the-vault"
    anchors = _trader_run(tmp_path, 2, key=key)
    anchors.db.close()
    res = _thunes(tmp_path, "audit", "verify", THUNES_AUDIT__KEY=key)
    assert res.exit_code == 0 and "from audit.key" in res.stdout and key not in res.stdout
    res = _thunes(tmp_path, "audit", "verify")
    assert res.exit_code == 1 and "no key" in res.stderr


def test_verify_refuses_a_legacy_file_unless_allowed(tmp_path):
    path = tmp_path / "audit.jsonl"
    rec = {"seq": 0, "ts": 1, "kind": "fill", "payload": {}, "prev": "0" * 64}
    rec["hash"] = hashlib.sha256(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text(json.dumps(rec) + "\n")
    path.with_name(path.name + ".head").write_text(f"0 {rec['hash']}\n")
    res = _thunes(tmp_path, "audit", "verify")
    assert res.exit_code == 1 and "UNVERIFIABLE: unkeyed (legacy)" in res.stderr
    res = _thunes(tmp_path, "audit", "verify", "--allow-legacy")
    assert res.exit_code == 0 and "warning: unkeyed (legacy)" in res.stderr
