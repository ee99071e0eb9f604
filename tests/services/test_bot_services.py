"""Bot services against a running bot (through its control socket) and a stopped one (its state folder)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.live.conftest import app_settings, bot_settings, four_pairs  # noqa: F401 - fixture
from thunes.core.errors import ConfigError
from thunes.core.events import OrderSubmitted, RiskDenied
from thunes.execution.audit import AuditTrail
from thunes.live.config import LocalReplaySettings
from thunes.live.control import BotNotRunning, control_file
from thunes.services import bot as svc
from thunes.services.bot import BotRunRequest, open_bot


def _wait(predicate, timeout=60.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running_bot(tmp_path, four_pairs):  # noqa: F811
    """A bot replaying 4 pairs at about 0.1 s per candle, with its control socket, in a thread."""
    settings = bot_settings(tmp_path / "bot", bars=400, risk={"cool_down_minutes": 0})
    settings = settings.model_copy(update={"local": LocalReplaySettings(bars=400, speed=3000)})
    session = open_bot(BotRunRequest(settings=settings, audit_fsync="never"), app_settings(tmp_path),
                       frames=four_pairs)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", session.run()), daemon=True)
    thread.start()
    _wait(lambda: control_file(settings.state_dir).exists(), what="the control socket")
    yield session, settings.state_dir, out, thread
    session.bot.request_stop("test teardown")
    thread.join(30)
    session.close()


def test_status_pause_resume_force_exit_and_stop_through_the_control_socket(running_bot):
    session, state_dir, out, thread = running_bot
    st = svc.bot_status(state_dir)
    assert st.running and {p["symbol"] for p in st.status["pairs"]} == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"}

    # A position opens; force-exit sells it through the executor, and the status shows it gone.
    held = _wait(lambda: svc.bot_status(state_dir).status["positions"], what="an open position")
    symbol = held[0]["symbol"]
    res = svc.force_exit(state_dir, symbol)
    assert res["status"] == "FILLED" and res["symbol"] == symbol
    assert symbol not in {p["symbol"] for p in svc.bot_status(state_dir).status["positions"]}
    with pytest.raises(ConfigError, match="no open position"):
        svc.force_exit(state_dir, symbol)

    # Pause: no entry leaves while paused (entries are denied with rule "paused"); resume lifts it.
    paused = svc.pause_bot(state_dir, "test")
    assert paused["paused"] is True and paused["state"] == "paused"
    mark = len(svc.events(state_dir))
    _wait(lambda: any(isinstance(e, RiskDenied) and e.rule == "paused" for e in svc.events(state_dir)[mark:]),
          what="an entry denied by the pause")
    window = svc.events(state_dir)[mark:]  # read before resuming: everything here happened while paused
    assert not [e for e in window if isinstance(e, OrderSubmitted) and e.side == "BUY"]
    assert svc.resume_bot(state_dir)["paused"] is False

    assert {j["name"] for j in svc.bot_jobs(state_dir)} == {"reconcile", "daily_summary", "decay_check", "backup"}
    assert svc.reload_bot(state_dir)["markets"] == 4  # the rules of the bot's four pairs, reloaded

    svc.stop_bot(state_dir)
    thread.join(30)
    assert out["result"].report.stop_reason == "stop requested by operator"
    assert not control_file(state_dir).exists()
    with pytest.raises(BotNotRunning):
        svc.stop_bot(state_dir)


def test_a_request_without_the_token_is_refused(running_bot):
    _session, state_dir, _out, _thread = running_bot
    info = json.loads(control_file(state_dir).read_text())
    assert oct(control_file(state_dir).stat().st_mode & 0o777) == "0o600"
    with socket.create_connection(("127.0.0.1", info["port"]), timeout=10) as s:
        s.sendall(b'{"token": "guess", "command": "stop"}\n')
        reply = json.loads(s.makefile().readline())
    assert reply == {"ok": False, "error": "refused: wrong or missing token"}
    assert svc.bot_status(state_dir).running


def test_a_stopped_bot_reports_its_folder_and_starts_paused_after_an_offline_pause(tmp_path, four_pairs):  # noqa: F811
    settings = bot_settings(tmp_path / "bot", bars=40)
    request = BotRunRequest(settings=settings, control=False, audit_fsync="never")
    svc.run_bot(request, app_settings(tmp_path), frames=four_pairs)
    st = svc.bot_status(settings.state_dir)
    assert not st.running and st.status["state"] == "stopped" and st.status["clean_stop"] is True
    assert all(p["bars_processed"] == 40 for p in st.status["pairs"])

    assert svc.pause_bot(settings.state_dir) == {"running": False, "paused": True}
    # The in-process local exchange starts fresh, so a second run needs a new folder: copy the pause over.
    with pytest.raises(ConfigError, match="holds an earlier run"):
        open_bot(BotRunRequest(settings=settings, control=False), app_settings(tmp_path), frames=four_pairs)
    fresh = settings.model_copy(update={"state_dir": tmp_path / "bot2"})
    (tmp_path / "bot2").mkdir()
    (tmp_path / "bot2" / "bot_state.json").write_text((settings.state_dir / "bot_state.json").read_text())
    with open_bot(BotRunRequest(settings=fresh, control=False), app_settings(tmp_path), frames=four_pairs) as s:
        assert s.bot.paused and s.stack.executor.paused


def test_the_kill_switch_service_writes_the_switch_and_audits_it(tmp_path):
    from thunes.config import RiskSettings

    state = tmp_path / "bot"
    state.mkdir()
    snap = svc.set_kill_switch(state, True, reason="drill", operator="ops", risk_settings=RiskSettings())
    assert snap["kill_switch"] is True and snap["mode"] == "HALTED"
    assert json.loads((state / "risk_state.json").read_text())["kill_switch"] is True
    kinds = [r.kind for r in AuditTrail.read(state / "audit.jsonl")]
    assert kinds == ["kill_switch"]
    with pytest.raises(ConfigError, match="reason and an operator"):
        svc.set_kill_switch(state, False, reason="", operator="ops", risk_settings=RiskSettings())


def test_services_on_a_folder_that_is_no_bot_say_so(tmp_path):
    with pytest.raises(ConfigError, match="not a bot state folder"):
        svc.bot_status(tmp_path / "nowhere")
    assert svc.bot_jobs(tmp_path) == []


def test_the_reduce_only_service_switches_every_pair_to_exits_only(tmp_path):
    from thunes.config import RiskSettings

    state = tmp_path / "bot"
    state.mkdir()
    snap = svc.set_reduce_only(state, True, reason="drill", operator="ops", risk_settings=RiskSettings())
    assert snap["reduce_only"] is True and snap["mode"] == "REDUCING"
    assert [r.kind for r in AuditTrail.read(state / "audit.jsonl")] == ["reduce_only"]
