"""System services: versions, the tail of a JSON-lines log, the health checks of a bot folder."""

from __future__ import annotations

import json

import pytest

from thunes import __version__
from thunes.config import RiskSettings
from thunes.core.errors import ConfigError
from thunes.core.events import BotState, BotStateChanged
from thunes.services.bot import set_kill_switch
from thunes.services.system import bot_health, tail_log, version_info


def test_version_info_names_thunes_and_python():
    info = version_info()
    assert info["thunes"] == __version__ and info["python"].count(".") == 2
    assert "ccxt" in info


def test_tail_log_returns_the_last_records_oldest_first_and_filters_by_level(tmp_path):
    log = tmp_path / "bot.jsonl"
    levels = ["INFO", "WARNING", "DEBUG", "ERROR"] * 5
    rows = [json.dumps({"ts": f"t{i:02d}", "level": lv, "logger": "thunes.x", "msg": f"m{i}"}) for i, lv in
            enumerate(levels)]
    log.write_text("\n".join(rows) + "\nnot json at all\n")
    last = tail_log(log, 3)
    assert [str(x) for x in last] == ["t18 DEBUG thunes.x: m18", "t19 ERROR thunes.x: m19", "  : not json at all"]
    warn = tail_log(log, 4, min_level="WARNING")
    assert [x.msg for x in warn] == ["m13", "m15", "m17", "m19"]
    with pytest.raises(ConfigError, match="no log file"):
        tail_log(tmp_path / "missing.jsonl")


def test_bot_health_of_a_stopped_bot_with_the_kill_switch_on(tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    (state / "bot_state.json").write_text(json.dumps({"state": "stopped", "paused": False}))
    assert {c.name: c.ok for c in bot_health(state).checks}["event_log"] is False
    (state / "events.jsonl").write_text(json.dumps(BotStateChanged(ts_ms=1, state=BotState.STOPPED).to_json()) + "\n")
    set_kill_switch(state, True, reason="drill", operator="ops", risk_settings=RiskSettings())
    rep = bot_health(state)
    checks = {c.name: c for c in rep.checks}
    assert not rep.ok and not rep.running
    assert (checks["process"].ok, checks["process"].detail) == (False, "not running")
    assert (checks["state"].ok, checks["state"].detail) == (False, "stopped")
    assert not checks["kill_switch"].ok and "drill" in checks["kill_switch"].detail
    assert checks["jobs"].ok and checks["event_log"].ok and "BotStateChanged" in checks["event_log"].detail
    assert "candles" not in checks  # freshness needs the running bot's clock
