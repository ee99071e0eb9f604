import json
import subprocess
import sys

import pytest

from thunes.config import load_settings, write_config_file
from thunes.core.errors import ConfigError


def test_layers_override_in_documented_order(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[risk]\nmax_positions = 2\ncool_down_minutes = 5\nmax_daily_loss = "40"\n')
    env_file = tmp_path / ".env"
    env_file.write_text("THUNES_RISK__COOL_DOWN_MINUTES=6\nTHUNES_RISK__MAX_DAILY_LOSS=41\n")
    loaded = load_settings(
        cfg, env_file=env_file, environ={"THUNES_RISK__MAX_DAILY_LOSS": "42"},
        overrides={"risk.max_positions": "9"},
    )
    risk = loaded.settings.risk
    assert (risk.max_positions, risk.cool_down_minutes, str(risk.max_daily_loss)) == (9, 6, "42")
    assert loaded.sources["risk.max_positions"] == "cli"
    assert loaded.sources["risk.cool_down_minutes"] == ".env"
    assert loaded.sources["risk.max_daily_loss"] == "env"
    assert loaded.sources.get("risk.max_loss_per_trade", "default") == "default"


def test_placeholders_expand_and_missing_ones_are_named(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"exchange": {"api_key": "${ENV:MY_KEY}", "api_secret": "${ENV:MY_SECRET}"}}))
    loaded = load_settings(cfg, env_file=None, environ={"MY_KEY": "k1", "MY_SECRET": "s1"})
    assert loaded.settings.exchange.api_key.get_secret_value() == "k1"
    with pytest.raises(ConfigError, match="MY_SECRET is not set"):
        load_settings(cfg, env_file=None, environ={"MY_KEY": "k1"})


def test_every_problem_is_listed(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"risk": {"max_positions": 0, "bogus": 1}, "exchange": {"mode": "moon"}}))
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env_file=None, environ={})
    assert len(info.value.problems) == 3
    assert any("risk.bogus: unknown setting" in p for p in info.value.problems)


def test_secrets_are_masked_when_shown():
    loaded = load_settings(None, env_file=None, environ={"THUNES_EXCHANGE__API_SECRET": "topsecret"})
    shown = {k: v for k, v, _ in loaded.show()}
    assert shown["exchange.api_secret"] == "**********"
    assert "topsecret" not in repr(loaded.settings)


def test_atomic_write_keeps_one_backup(tmp_path):
    path = tmp_path / "settings.toml"
    write_config_file(path, {"risk": {"max_positions": 2}})
    write_config_file(path, {"risk": {"max_positions": 3}})
    assert "max_positions = 3" in path.read_text()
    assert "max_positions = 2" in (tmp_path / "settings.toml.bak").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.toml", "settings.toml.bak"]


def test_cli_config_check_lists_problems_and_fails(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"risk": {"max_positions": "x"}, "exchange": {"api_key": "${ENV:THUNES_TEST_NOPE}"}}))
    proc = subprocess.run([sys.executable, "-m", "thunes.cli", "config", "check", str(cfg)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "THUNES_TEST_NOPE is not set" in proc.stderr
    assert "risk.max_positions" in proc.stderr


def test_cli_config_show_masks_secrets():
    import os

    env = {**os.environ, "THUNES_EXCHANGE__API_KEY": "supersecretkey"}
    proc = subprocess.run([sys.executable, "-m", "thunes.cli", "config", "show"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "supersecretkey" not in proc.stdout
    assert "exchange.api_key" in proc.stdout and "[env]" in proc.stdout
