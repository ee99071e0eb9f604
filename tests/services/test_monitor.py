"""Health, balance, risk state, reduce-only, audit check, log tail and masked settings of a bot folder."""

from __future__ import annotations

import json

import pytest

from tests.live.conftest import app_settings, bot_settings, four_pairs  # noqa: F401 - fixture
from thunes.config import RiskSettings, Settings
from thunes.core.errors import ConfigError
from thunes.live.control import BotNotRunning
from thunes.services import monitor
from thunes.services.bot import BotRunRequest, run_bot, set_reduce_only


def test_a_stopped_bot_is_unhealthy_and_has_no_live_balance(tmp_path, four_pairs):  # noqa: F811
    settings = bot_settings(tmp_path / "bot", bars=30)
    run_bot(BotRunRequest(settings=settings, control=False, audit_fsync="never"), app_settings(tmp_path),
            frames=four_pairs)
    h = monitor.health(settings.state_dir, now_ms=1_900_000_000_000)
    assert not h.ok and not h.running and h.exchange_reachable is None
    assert "the bot is not running" in h.problems and len(h.pairs) == 4 and not any(p.fresh for p in h.pairs)
    assert {j.name for j in h.jobs} == {"reconcile", "daily_summary", "decay_check", "backup"}
    with pytest.raises(BotNotRunning):
        monitor.balance(settings.state_dir)
    assert monitor.audit_check(settings.state_dir / "audit.jsonl").ok


def test_reduce_only_is_written_audited_and_read_back(tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    snap = set_reduce_only(state, True, reason="winding down", operator="ops", risk_settings=RiskSettings())
    assert snap["reduce_only"] is True and snap["mode"] == "REDUCING"
    assert monitor.risk_state(state)["reduce_only"] is True
    audit = [json.loads(x) for x in (state / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["kind"] == "reduce_only" and audit[-1]["payload"]["operator"] == "ops"
    with pytest.raises(ConfigError, match="does not exist"):
        set_reduce_only(tmp_path / "nope", True, reason="x", operator="y", risk_settings=RiskSettings())


def test_a_tampered_audit_trail_is_reported(tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    set_reduce_only(state, True, reason="a", operator="b", risk_settings=RiskSettings())
    set_reduce_only(state, False, reason="c", operator="d", risk_settings=RiskSettings())
    path = state / "audit.jsonl"
    path.write_text(path.read_text().replace('"reason": "c"', '"reason": "X"').replace('"reason":"c"', '"reason":"X"'))
    res = monitor.audit_check(path)
    assert not res.ok and "HMAC mismatch" in res.error


def test_log_tail_masks_secrets_filters_and_refuses_bad_names(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"ts": f"2026-01-01T00:00:0{i}Z", "level": lvl, "msg": m})
                                                for i, (lvl, m) in enumerate([("INFO", "one"),
                                                                              ("WARNING", "api_key=SECRETVALUE"),
                                                                              ("ERROR", "three")])) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"ts": "2026-01-01T00:00:01.5Z", "level": "INFO", "msg": "b"}) + "\n")
    rows = monitor.tail_logs(tmp_path, lines=3)
    assert [r.msg for r in rows] == ["b", "api_key=***", "three"]
    assert [r.msg for r in monitor.tail_logs(tmp_path, min_level="WARNING")] == ["api_key=***", "three"]
    assert [r.msg for r in monitor.tail_logs(tmp_path, component="b")] == ["b"]
    for bad in ("../x", ".."):
        with pytest.raises(ConfigError):
            monitor.tail_logs(tmp_path, component=bad)
    with pytest.raises(ConfigError):
        monitor.tail_logs(tmp_path, lines=0)


def test_masked_settings_hide_secrets_and_url_passwords():
    s = Settings(exchange={"api_key": "K", "api_secret": "S"}, telegram={"token": "T"},
                 data={"url": "postgresql://u:pw@db/x"})
    tree = monitor.masked_settings(s, extra={"password": "p", "plain": "ok"})
    text = json.dumps(tree)
    assert '"K"' not in text and '"S"' not in text and '"T"' not in text and "pw@" not in text and '"p"' not in text
    assert tree["data"]["url"] == "postgresql://u:***@db/x" and tree["extra"]["plain"] == "ok"
