"""Risk manager rules, one test per rule, plus the 32-thread concurrency specification."""

from __future__ import annotations

import json
import random
import threading
from decimal import Decimal

import pytest

from thunes.config import RiskSettings
from thunes.core.clock import SimulatedClock
from thunes.core.enums import Side
from thunes.core.errors import ConfigError, ExchangeUnavailable
from thunes.execution.audit import AuditTrail, verify_audit
from thunes.execution.circuit_breaker import BreakerRegistry
from thunes.execution.risk import Approved, Denied, RiskManager, RiskMode, TradeIntent

D = Decimal
T0 = 1_700_000_000_000


def _settings(**kw) -> RiskSettings:
    base = dict(max_daily_loss=D("50"), max_loss_per_trade=D("10"), max_positions=3, max_position_quote=D("1000"),
                cool_down_minutes=30, default_stop_pct=D("0.02"))
    base.update(kw)
    return RiskSettings(**base)


def _rm(**kw) -> RiskManager:
    return RiskManager(_settings(**kw), clock=SimulatedClock(T0))


def buy(symbol: str = "BTC/USDT", quote: str = "100", price: str = "100", stop: str | None = None) -> TradeIntent:
    return TradeIntent(symbol=symbol, side=Side.BUY, quote_qty=D(quote), price=D(price),
                       stop_price=None if stop is None else D(stop), strategy="t")


def sell(symbol: str = "BTC/USDT", price: str = "100") -> TradeIntent:
    return TradeIntent(symbol=symbol, side=Side.SELL, price=D(price), is_exit=True, strategy="t")


def _round_trip(rm: RiskManager, symbol: str, entry: str, exit_: str, qty: str = "1") -> None:
    assert isinstance(rm.check(buy(symbol, quote=str(D(qty) * D(entry)), price=entry, stop="1")), Approved)
    rm.record_fill(symbol, Side.BUY, D(qty), D(qty) * D(entry))
    rm.record_fill(symbol, Side.SELL, D(qty), D(qty) * D(exit_))


def test_sizing_caps_the_loss_at_the_stop_to_max_loss_per_trade():
    rm = _rm()
    d = rm.check(buy(quote="1000", price="100", stop="95"))  # 5 per unit at risk -> at most 2 units
    assert isinstance(d, Approved)
    assert d.qty == D(2) and d.quote_qty == D(200) and d.stop_price == D(95)
    assert d.qty * (D(100) - d.stop_price) <= D(10)


def test_default_stop_is_used_when_none_is_given():
    d = _rm().check(buy(quote="1000", price="100"))  # stop 98 -> 10 / 2 = 5 units
    assert isinstance(d, Approved) and d.stop_price == D("98.00") and d.qty == D(5)


def test_max_position_quote_caps_the_size():
    d = _rm(max_position_quote=D("150")).check(buy(quote="1000", price="100", stop="99.9"))
    assert isinstance(d, Approved) and d.quote_qty == D(150)


def test_max_positions_counts_reserved_slots():
    rm = _rm(max_positions=2)
    assert rm.check(buy("A/USDT"))
    assert rm.check(buy("B/USDT"))
    d = rm.check(buy("C/USDT"))
    assert isinstance(d, Denied) and d.rule == "max_positions"
    assert rm.release("A/USDT")
    assert rm.check(buy("C/USDT"))


def test_no_second_position_in_the_same_symbol():
    rm = _rm()
    assert rm.check(buy())
    d = rm.check(buy())
    assert isinstance(d, Denied) and d.rule == "duplicate_symbol"


def test_cool_down_follows_a_losing_trade_for_cool_down_minutes():
    rm = _rm(cool_down_minutes=30)
    _round_trip(rm, "A/USDT", "100", "95")
    d = rm.check(buy("B/USDT"))
    assert isinstance(d, Denied) and d.rule == "cool_down"
    rm.clock.advance(30 * 60 - 1)
    assert rm.check(buy("B/USDT")).rule == "cool_down"
    rm.clock.advance(1)
    assert rm.check(buy("B/USDT"))


def test_a_winning_trade_clears_the_cool_down():
    rm = _rm(cool_down_minutes=30)
    rm.record_fill("Z/USDT", Side.BUY, D(1), D(100))  # a position opened before the loss
    _round_trip(rm, "A/USDT", "100", "95")
    assert rm.check(buy("C/USDT")).rule == "cool_down"
    rm.record_fill("Z/USDT", Side.SELL, D(1), D(101))  # closes with a profit
    assert rm.state.cool_down_until_ms == 0
    assert rm.check(buy("C/USDT"))


def test_kill_switch_trips_on_daily_loss_including_unrealised_and_stays_on():
    rm = _rm(max_daily_loss=D("50"), cool_down_minutes=0)
    _round_trip(rm, "A/USDT", "100", "70")  # -30 realised
    assert rm.check(buy("B/USDT", price="100", stop="90"))
    rm.record_fill("B/USDT", Side.BUY, D(1), D(100))
    assert not rm.mark("B/USDT", D("81"))  # -30 - 19 = -49
    assert rm.mark("B/USDT", D("80"))  # -50: trips exactly at the limit
    st = rm.state
    assert st.kill_switch and st.mode is RiskMode.HALTED and st.daily_pnl == D(-50)
    assert rm.check(buy("C/USDT")).rule == "kill_switch"
    assert rm.check(sell("B/USDT")).rule == "kill_switch"
    rm.clock.advance(86_400)  # a new day does not clear it
    assert rm.state.kill_switch
    rm.kill_switch(False, reason="reviewed", operator="alice")
    assert rm.check(buy("C/USDT"))


def test_manual_kill_switch_needs_reason_and_operator_and_is_audited(tmp_path):
    audit = AuditTrail(tmp_path / "audit.jsonl", fsync="never")
    rm = RiskManager(_settings(), clock=SimulatedClock(T0), audit=audit)
    with pytest.raises(ConfigError):
        rm.kill_switch(True, reason="", operator="bob")
    rm.kill_switch(True, reason="exchange incident", operator="bob")
    assert rm.check(buy()).rule == "kill_switch"
    records = AuditTrail.read(tmp_path / "audit.jsonl")
    kinds = [r.kind for r in records]
    assert "kill_switch" in kinds
    ks = next(r for r in records if r.kind == "kill_switch")
    assert ks.payload["operator"] == "bob" and ks.payload["on"] is True
    assert verify_audit(tmp_path / "audit.jsonl").ok


def test_an_automatic_trip_is_cleared_only_by_an_audited_deactivation(tmp_path):
    # Arrange: the daily loss trips the switch by itself
    audit = AuditTrail(tmp_path / "audit.jsonl", fsync="never")
    rm = RiskManager(_settings(max_daily_loss=D("50"), cool_down_minutes=0), clock=SimulatedClock(T0), audit=audit)
    _round_trip(rm, "A/USDT", "100", "50")
    assert rm.state.mode is RiskMode.HALTED
    # Act / Assert: neither time nor an anonymous request clears it
    rm.clock.advance(2 * 86_400)
    assert rm.check(buy("B/USDT")).rule == "kill_switch"
    for reason, operator in (("", "alice"), ("reviewed", ""), ("   ", "alice")):
        with pytest.raises(ConfigError, match="reason and an operator"):
            rm.kill_switch(False, reason=reason, operator=operator)
    assert rm.state.kill_switch
    rm.kill_switch(False, reason="loss reviewed", operator="alice")
    assert rm.state.mode is RiskMode.ACTIVE and rm.check(buy("B/USDT"))
    switches = [r.payload for r in AuditTrail.read(tmp_path / "audit.jsonl") if r.kind == "kill_switch"]
    assert [(p["on"], p["operator"]) for p in switches] == [(True, "risk-manager"), (False, "alice")]
    assert switches[1]["was"] is True and switches[1]["reason"] == "loss reviewed"
    assert verify_audit(tmp_path / "audit.jsonl").ok


def test_kill_switch_persists_across_processes_through_the_state_file(tmp_path):
    path = tmp_path / "risk_state.json"
    trader = RiskManager(_settings(), clock=SimulatedClock(T0), state_path=path)
    unaudited = RiskManager(_settings(), clock=SimulatedClock(T0), state_path=path)
    with pytest.raises(ConfigError, match="needs an audit trail"):
        unaudited.kill_switch(True, reason="manual halt", operator="ops")
    assert not path.exists()
    cli = RiskManager(_settings(), clock=SimulatedClock(T0), state_path=path,
                      audit=AuditTrail(tmp_path / "audit.jsonl", fsync="never"))
    cli.kill_switch(True, reason="manual halt", operator="ops")
    assert trader.check(buy()).rule == "kill_switch"
    restarted = RiskManager(_settings(), clock=SimulatedClock(T0), state_path=path)
    assert restarted.state.kill_switch
    cli.kill_switch(False, reason="resume", operator="ops")
    assert trader.check(buy())


def test_reduce_only_allows_exits_only():
    rm = _rm()
    assert rm.check(buy("A/USDT"))
    rm.record_fill("A/USDT", Side.BUY, D(1), D(100))
    rm.reduce_only(True, reason="end of month", operator="ops")
    assert rm.state.mode is RiskMode.REDUCING
    assert rm.check(buy("B/USDT")).rule == "reducing"
    ex = rm.check(sell("A/USDT"))
    assert isinstance(ex, Approved) and ex.qty == D(1)


def test_exit_without_a_position_is_denied():
    assert _rm().check(sell()).rule == "no_position"


def test_open_circuit_breaker_denies():
    clock = SimulatedClock(T0)
    reg = BreakerRegistry(clock, failure_threshold=1, recovery_timeout=30)
    rm = RiskManager(_settings(), clock=clock, breakers=reg)
    cb = reg.get("exchange")
    with pytest.raises(ExchangeUnavailable):
        cb.call(lambda: (_ for _ in ()).throw(ExchangeUnavailable("down")))
    d = rm.check(buy())
    assert isinstance(d, Denied) and d.rule == "circuit_open" and "exchange" in d.reason
    clock.advance(30)  # half-open: a trial is allowed again
    assert rm.check(buy())


def test_invalid_intents_are_denied_not_raised():
    rm = _rm()
    assert rm.check(buy(price="0")).rule == "invalid"
    assert rm.check(buy(price="100", stop="101")).rule == "invalid"
    assert rm.check(TradeIntent(symbol="A/USDT", side=Side.SELL, price=D(1), qty=D(1))).rule == "invalid"


def test_concurrency_32_threads_never_exceed_max_positions_nor_duplicate_and_trip_exactly(tmp_path):
    """32 threads × 1,000 attempts: at most MAX_POSITIONS held, never two in one symbol, and the
    kill-switch trips on the fill that brings the day's loss to exactly MAX_DAILY_LOSS."""
    audit = AuditTrail(tmp_path / "audit.jsonl", fsync="never")
    rm = RiskManager(_settings(max_positions=3, max_daily_loss=D("50"), cool_down_minutes=0,
                               max_loss_per_trade=D("100")), clock=SimulatedClock(T0), audit=audit)
    symbols = [f"S{i}/USDT" for i in range(8)]
    lock = threading.Lock()
    held: set[str] = set()
    violations: list[str] = []
    approvals: list[int] = []
    max_seen = [0]
    barrier = threading.Barrier(32)

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        barrier.wait()
        for _ in range(1000):
            sym = rnd.choice(symbols)
            d = rm.check(TradeIntent(symbol=sym, side=Side.BUY, quote_qty=D(100), price=D(100), stop_price=D(50)))
            if not isinstance(d, Approved):
                continue
            with lock:
                approvals.append(d.decision_id)
                if sym in held:
                    violations.append(f"duplicate {sym}")
                held.add(sym)
                max_seen[0] = max(max_seen[0], len(held))
                if len(held) > 3:
                    violations.append(f"{len(held)} positions")
            rm.record_fill(sym, Side.BUY, D(1), D(100))
            with lock:
                held.discard(sym)
            rm.record_fill(sym, Side.SELL, D(1), D(95))  # every trade loses exactly 5

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    audit.close()

    st = rm.state
    assert violations == []
    assert 1 <= max_seen[0] <= 3
    assert st.kill_switch and st.decisions == 32_000
    trips = [r for r in AuditTrail.read(tmp_path / "audit.jsonl") if r.kind == "kill_switch"]
    assert len(trips) == 1
    assert D(trips[0].payload["daily_pnl"]) == D(-50)  # the 10th losing trade, not the 9th or 11th
    assert all(a <= st.kill_decision_id for a in approvals)  # nothing approved after the trip
    assert 10 <= len(approvals) <= 10 + 2  # trades in flight when it tripped still completed
    assert st.realised_today == D(-5) * len(approvals)
    assert st.open_positions == () and st.reserved == ()
    assert verify_audit(tmp_path / "audit.jsonl").records == 32_000 + 2 * len(approvals) + 1


def test_restore_after_a_restart_keeps_positions_cool_down_and_daily_loss():
    from thunes.execution.positions import Position

    rm = _rm(cool_down_minutes=30, max_daily_loss=D("50"))
    held = Position(symbol="A/USDT", qty=D(2), cost=D(200), realised_pnl=D(0), fees=D(0), opened_ms=T0, updated_ms=T0)
    rm.restore([held], realised_today=D("-20"), last_closed_trade=(T0 - 60_000, D("-5")))
    st = rm.state
    assert st.open_positions == ("A/USDT",) and st.realised_today == D(-20)
    assert rm.check(buy("A/USDT")).rule == "duplicate_symbol"
    assert rm.check(buy("B/USDT")).rule == "cool_down"  # the loss a minute before the restart still counts
    rm.clock.advance(29 * 60)
    assert rm.mark("A/USDT", D(85))  # -20 realised - 30 unrealised = -50: trips
    assert rm.state.kill_switch


class _DiskFullTrail(AuditTrail):
    """A real trail whose disk fills up once ``full`` is set (os.write's ENOSPC)."""

    full = False

    def append(self, kind, payload=None):
        if self.full:
            raise OSError(28, "No space left on device")
        return super().append(kind, payload)


def test_a_switch_change_whose_audit_record_cannot_be_written_changes_nothing(tmp_path):
    """The record is written (and fsynced) before the state: no record, no change, and the error is raised."""
    path = tmp_path / "risk_state.json"
    audit = _DiskFullTrail(tmp_path / "audit.jsonl", fsync="never")
    rm = RiskManager(_settings(), clock=SimulatedClock(T0), audit=audit, state_path=path)
    rm.kill_switch(True, reason="incident", operator="bob")
    audit.full = True
    for change in (lambda: rm.kill_switch(False, reason="resolved", operator="bob"),
                   lambda: rm.reduce_only(True, reason="month end", operator="bob")):
        with pytest.raises(OSError):
            change()
    assert rm.state.kill_switch and not rm.state.reduce_only
    saved = json.loads(path.read_text())
    assert saved["kill_switch"] is True and saved["reduce_only"] is False
    assert [r.kind for r in AuditTrail.read(tmp_path / "audit.jsonl")] == ["kill_switch"]


def test_an_automatic_trip_halts_even_when_its_record_fails_but_is_saved_only_after_it(tmp_path):
    path = tmp_path / "risk_state.json"
    audit = _DiskFullTrail(tmp_path / "audit.jsonl", fsync="never")
    rm = RiskManager(_settings(max_daily_loss=D("50"), cool_down_minutes=0), clock=SimulatedClock(T0), audit=audit,
                     state_path=path)
    assert rm.check(buy("A/USDT", quote="100", price="100", stop="1"))
    rm.record_fill("A/USDT", Side.BUY, D(1), D(100))
    audit.full = True
    with pytest.raises(OSError):
        rm.mark("A/USDT", D(40))  # -60: trips
    assert rm.state.mode is RiskMode.HALTED  # the safe side holds in memory
    assert not path.exists()  # but no state without its record


def test_the_manual_reset_baseline_is_persisted_for_the_day_only(tmp_path):
    """After a reset the day's loss counts from the reset, in a restarted manager too; the next day from zero."""
    path = tmp_path / "risk_state.json"
    audit = AuditTrail(tmp_path / "audit.jsonl", fsync="never")
    rm = RiskManager(_settings(max_daily_loss=D("50"), cool_down_minutes=0), clock=SimulatedClock(T0), audit=audit,
                     state_path=path)
    _round_trip(rm, "A/USDT", "100", "40")  # -60: trips
    rm.kill_switch(False, reason="reviewed", operator="alice")
    assert rm.state.daily_pnl == 0
    same_day = RiskManager(rm.settings, clock=SimulatedClock(T0 + 3_600_000), state_path=path)
    same_day.restore([], realised_today=D(-60))
    assert same_day.state.mode is RiskMode.ACTIVE and same_day.state.daily_pnl == 0
    next_day = RiskManager(rm.settings, clock=SimulatedClock(T0 + 86_400_000), state_path=path)
    next_day.restore([], realised_today=D(-60))  # (a day's realised loss of 60, as the database would say)
    assert next_day.state.mode is RiskMode.HALTED and next_day.state.daily_pnl == D(-60)


def test_a_reset_from_another_process_counts_the_loss_the_trader_sees_including_unrealised(tmp_path):
    """The CLI sees only the realised loss; the running trader also its open position's: it must not re-trip."""
    path = tmp_path / "risk_state.json"
    audit = AuditTrail(tmp_path / "audit.jsonl", fsync="never")
    trader = RiskManager(_settings(max_daily_loss=D("50"), cool_down_minutes=0), clock=SimulatedClock(T0),
                         audit=audit, state_path=path)
    _round_trip(trader, "Z/USDT", "100", "80")  # -20 realised
    assert trader.check(buy("A/USDT", quote="100", price="100", stop="1"))
    trader.record_fill("A/USDT", Side.BUY, D(2), D(400))  # 2 @ 200
    assert trader.mark("A/USDT", D(185))  # -20 realised - 30 unrealised: trips
    cli = RiskManager(trader.settings, clock=SimulatedClock(T0), audit=audit, state_path=path)
    cli.restore([], realised_today=D(-20))  # what the CLI restores from the database: no mark, no unrealised
    cli.kill_switch(False, reason="position reviewed", operator="alice")

    assert trader.state.mode is RiskMode.ACTIVE and trader.state.daily_pnl == 0
    assert not trader.mark("A/USDT", D(185))
    assert not trader.mark("A/USDT", D("160.5"))  # 49 more lost since the reset
    assert trader.mark("A/USDT", D(160))  # 50 more: trips again
