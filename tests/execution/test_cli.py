"""``thunes risk`` and ``thunes audit verify`` as an operator runs them (click's runner, real files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from thunes.execution.audit import AuditTrail, verify_audit


def _thunes(tmp_path: Path, *args: str):
    from thunes.cli import root

    env = {"THUNES_TRADER__STATE_DIR": str(tmp_path / "state"), "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"),
           "THUNES_AUDIT__FSYNC": "never", "THUNES_CONFIG": None}
    old = Path.cwd()
    os.chdir(tmp_path)  # no stray .env from the repository
    try:
        return CliRunner().invoke(root, list(args), env=env, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_kill_switch_on_off_is_persisted_shown_and_audited(tmp_path):
    on = _thunes(tmp_path, "risk", "kill-switch", "on", "--reason", "exchange incident", "--operator", "alice")
    assert on.exit_code == 0, on.stderr
    state = json.loads((tmp_path / "state" / "local" / "risk_state.json").read_text())
    assert state["kill_switch"] is True and state["operator"] == "alice"
    status = _thunes(tmp_path, "risk", "status", "--json")
    snap = json.loads(status.stdout)
    assert snap["mode"] == "HALTED" and snap["kill_reason"] == "exchange incident"
    off = _thunes(tmp_path, "risk", "kill-switch", "off", "--reason", "reviewed", "--operator", "alice")
    assert off.exit_code == 0
    assert json.loads(_thunes(tmp_path, "risk", "status", "--json").stdout)["mode"] == "ACTIVE"
    records = AuditTrail.read(tmp_path / "audit.jsonl")
    assert [(r.kind, r.payload["on"], r.payload["operator"]) for r in records] == [
        ("kill_switch", True, "alice"), ("kill_switch", False, "alice")]


def test_kill_switch_requires_reason_and_operator(tmp_path):
    res = _thunes(tmp_path, "risk", "kill-switch", "on", "--operator", "alice")
    assert res.exit_code != 0 and "--reason" in res.stderr


def test_audit_verify_passes_then_fails_after_an_edit(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path, fsync="never") as trail:
        for i in range(3):
            trail.append("order_intent", {"i": i, "qty": "0.001"})
    ok = _thunes(tmp_path, "audit", "verify", str(path))
    assert ok.exit_code == 0 and "ok: 3 records" in ok.stdout
    path.write_text(path.read_text().replace('"qty":"0.001"', '"qty":"0.002"', 1))
    bad = _thunes(tmp_path, "audit", "verify", str(path))
    assert bad.exit_code == 1 and "line 1" in bad.stderr
    assert not verify_audit(path).ok


def test_help_lists_the_commands(tmp_path):
    res = _thunes(tmp_path, "risk", "--help")
    assert res.exit_code == 0
    for name in ("status", "kill-switch", "reduce-only"):
        assert name in res.stdout


def test_orders_lists_the_journal(tmp_path):
    from decimal import Decimal

    from thunes.core.enums import OrderStatus, OrderType, Side
    from thunes.execution.db import Database
    from thunes.execution.filters import PreparedOrder
    from thunes.execution.journal import OrderJournal

    folder = tmp_path / "state" / "local"
    folder.mkdir(parents=True)
    with Database.connect(f"sqlite:///{folder / 'execution.sqlite'}") as db:
        journal = OrderJournal(db)
        order = PreparedOrder(symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.001"),
                              price=None, ref_price=Decimal("40000"), notional=Decimal("40"))
        journal.record_pending("th-done", order)
        journal.apply_update("th-done", OrderStatus.FILLED, filled_qty=Decimal("0.001"), cum_quote=Decimal("40"))
        journal.record_pending("th-open", order)
        journal.mark_sent("th-open")
    open_only = _thunes(tmp_path, "risk", "orders")
    assert open_only.exit_code == 0 and "th-open" in open_only.output and "th-done" not in open_only.output
    everything = _thunes(tmp_path, "risk", "orders", "--all")
    assert "th-done" in everything.output and "@ 40000.00000000" in everything.output
