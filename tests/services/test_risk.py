"""The risk services: the state of an account's safety core, and the operator's audited switches."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from thunes.config import AuditSettings, RiskSettings, Settings, TraderSettings
from thunes.core.enums import OrderType, Side
from thunes.core.errors import ConfigError, StoreError
from thunes.execution.db import Database
from thunes.execution.filters import PreparedOrder
from thunes.execution.journal import OrderJournal
from thunes.execution.positions import PositionTracker
from thunes.services.risk import list_orders, risk_status, set_kill_switch, set_reduce_only


def _settings(tmp_path, audit_path=None) -> Settings:
    return Settings(trader=TraderSettings(state_dir=tmp_path / "state"),
                    audit=AuditSettings(path=audit_path or tmp_path / "audit.jsonl", fsync="never"),
                    risk=RiskSettings(max_daily_loss=Decimal(50)))


def _losing_day(tmp_path, loss: int = 60) -> None:
    with Database.connect(f"sqlite:///{tmp_path / 'state' / 'local' / 'execution.sqlite'}") as db:
        tracker = PositionTracker(db)
        tracker.apply_fill("A/USDT", Side.BUY, Decimal(1), Decimal(100), client_order_id="b")
        tracker.apply_fill("A/USDT", Side.SELL, Decimal(1), Decimal(100 - loss), client_order_id="s")
        tracker.apply_fill("B/USDT", Side.BUY, Decimal(2), Decimal(20), client_order_id="b2")


def test_status_restores_the_days_loss_and_positions_and_writes_nothing(tmp_path):
    _losing_day(tmp_path)
    st = risk_status(_settings(tmp_path), mode="local")
    assert str(st.snapshot.mode) == "HALTED" and st.snapshot.realised_today == Decimal(-60)
    assert [p.symbol for p in st.positions] == ["B/USDT"] and st.journal.startswith("sqlite:///")
    out = st.to_json()
    assert out["positions"] == [{"symbol": "B/USDT", "qty": "2", "cost": "20"}] and out["day_rule"] == "UTC"
    assert json.dumps(out)  # what an API returns as it is
    assert not (tmp_path / "state" / "local" / "risk_state.json").exists() and not (tmp_path / "audit.jsonl").exists()


def test_status_of_an_account_that_never_traded_is_active_with_no_database(tmp_path):
    st = risk_status(_settings(tmp_path), mode="live")
    assert str(st.snapshot.mode) == "ACTIVE" and st.journal is None and st.positions == ()
    assert st.state_dir == tmp_path / "state" / "live"


def test_switching_the_kill_switch_off_resets_the_days_loss_and_is_audited(tmp_path):
    _losing_day(tmp_path)
    settings = _settings(tmp_path)
    on = set_kill_switch(settings, True, reason="incident", operator="alice", mode="local")
    off = set_kill_switch(settings, False, reason="reviewed", operator="alice", mode="local")
    assert on.snapshot.kill_switch and str(on.snapshot.mode) == "HALTED"
    # Restored like a trader: the -60 of the day becomes the baseline, so the switch does not trip again.
    assert not off.snapshot.kill_switch and str(off.snapshot.mode) == "ACTIVE"
    assert off.state_path == tmp_path / "state" / "local" / "risk_state.json" and off.state_path.exists()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    # The restore itself trips the switch (the day lost more than the limit), then alice's two changes.
    assert [(r["kind"], r["payload"]["on"], r["payload"]["operator"]) for r in records] == [
        ("kill_switch", True, "risk-manager"), ("kill_switch", True, "alice"), ("kill_switch", False, "alice")]
    assert str(risk_status(settings, mode="local").snapshot.mode) == "ACTIVE"


def test_reduce_only_needs_a_reason_and_a_real_audit_file(tmp_path):
    """A blank reason is no reason (as for the kill-switch); a trail that keeps nothing changes nothing."""
    with pytest.raises(ConfigError, match="reason and an operator"):
        set_reduce_only(_settings(tmp_path), True, reason=" ", operator="bob", mode="local")
    with pytest.raises(StoreError, match="is not a regular file"):
        set_reduce_only(_settings(tmp_path, audit_path=os.devnull), True, reason="eom", operator="bob", mode="local")
    assert not (tmp_path / "state" / "local" / "risk_state.json").exists()
    done = set_reduce_only(_settings(tmp_path), True, reason="eom", operator="bob", mode="local")
    assert done.snapshot.reduce_only and str(done.snapshot.mode) == "REDUCING"


def test_orders_lists_unfinished_ones_or_all_newest_last(tmp_path):
    settings = _settings(tmp_path)
    assert list_orders(settings, mode="local").has_db is False
    order = PreparedOrder(symbol="A/USDT", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal(1), price=None,
                          ref_price=Decimal(10), notional=Decimal(10))
    with Database.connect(f"sqlite:///{tmp_path / 'state' / 'local' / 'execution.sqlite'}") as db:
        journal = OrderJournal(db)
        for i in range(3):
            journal.record_pending(f"c{i}", order, reason="entry", bar_ts=i)
    listed = list_orders(settings, mode="local", limit=2)
    assert listed.has_db and listed.total == 3 and [e.client_order_id for e in listed.entries] == ["c1", "c2"]
    assert list_orders(settings, mode="local", show_all=True, limit=0).total == 3
