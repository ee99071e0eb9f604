import json
import subprocess
import sys
from pathlib import Path

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


# --------------------------------------------------------------------------- secrets and faults


def _cli(argv, monkeypatch, tmp_path, env=None):
    """``thunes ARGV`` in-process through the real entry point: (exit code, stdout, stderr)."""
    import logging

    from click.testing import CliRunner

    from thunes.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("THUNES_LOGGING__DIR", str(tmp_path / "logs"))
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    with CliRunner().isolation() as (out, err, _):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
        finally:
            for handler in list(logging.getLogger("thunes").handlers):
                logging.getLogger("thunes").removeHandler(handler)
                handler.close()
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_a_secret_of_the_wrong_type_is_never_echoed(tmp_path):
    """Secret fields are known by type: their input never appears in a validation error; other inputs do,
    URL passwords masked, and a table or list is named rather than printed."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({
        "exchange": {"api_key": ["KEY-IN-A-LIST"], "api_secret": {"nested": "SECRET-IN-A-TABLE"}},
        "telegram": {"token": 123456789},
        "data": {"replica_url": ["postgresql://u:PW-IN-A-LIST@h/db"], "url": 5},
        "risk": {"max_positions": "many"},
    }))
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env_file=None, environ={},
                      overrides={"optimize.n_trials": "postgresql://u:PW2@h/x"})
    text = str(info.value)
    for secret in ("KEY-IN-A-LIST", "SECRET-IN-A-TABLE", "123456789", "PW-IN-A-LIST", "PW2"):
        assert secret not in text
    problems = {p.split(":", 1)[0]: p for p in info.value.problems}
    assert set(problems) == {"exchange.api_key", "exchange.api_secret", "telegram.token", "data.replica_url",
                             "data.url", "risk.max_positions", "optimize.n_trials"}
    assert problems["risk.max_positions"].endswith("[got 'many']")
    assert problems["data.replica_url"].endswith("[got a list]")
    assert problems["optimize.n_trials"].endswith("[got 'postgresql://u:***@h/x']")
    for key in ("exchange.api_key", "exchange.api_secret", "telegram.token"):
        assert "[got" not in problems[key]


def test_api_credentials_must_be_printable_ascii():
    """Keys travel in HTTP headers: a non-ASCII character or a stray space is refused at load, by position."""
    for bad, kind in (("clé-api", "non-ASCII character"), ("key\n", "control character"), ("a key", "space")):
        with pytest.raises(ConfigError) as info:
            load_settings(None, env_file=None, environ={"THUNES_EXCHANGE__API_SECRET": bad})
        assert f"exchange.api_secret: must be printable ASCII" in str(info.value) and kind in str(info.value)
        assert bad.strip() not in str(info.value)
    with pytest.raises(ConfigError, match="telegram.token: must be printable ASCII"):
        load_settings(None, env_file=None, environ={}, overrides={"telegram.token": "123:tökén"})


def test_url_passwords_are_masked_when_shown():
    loaded = load_settings(None, env_file=None, environ={
        "THUNES_DATA__URL": "postgresql://thunes:PGPW@db:5432/candles",
        "THUNES_OPTIMIZE__STORAGE": "postgresql://db/optuna?password=OPTPW"})
    shown = {k: v for k, v, _ in loaded.show()}
    assert shown["data.url"] == "postgresql://thunes:***@db:5432/candles"
    assert shown["optimize.storage"] == "postgresql://db/optuna?password=***"


def test_settings_hash_leaves_secrets_out_by_type_and_masked_settings_hides_them():
    from thunes.config import masked_settings, settings_hash

    def load(**env):
        return load_settings(None, env_file=None, environ=env).settings

    base = load(THUNES_EXCHANGE__API_KEY="k1", THUNES_DATA__URL="postgresql://u:pw1@h/db")
    rotated = load(THUNES_EXCHANGE__API_KEY="k2", THUNES_DATA__URL="postgresql://u:pw2@h/db",
                   THUNES_TELEGRAM__TOKEN="t2")
    assert settings_hash(base) == settings_hash(rotated)
    assert settings_hash(base) != settings_hash(load(THUNES_RISK__MAX_POSITIONS="2"))
    shown = json.dumps(masked_settings(rotated))
    assert "k2" not in shown and "pw2" not in shown and "t2" not in shown
    masked = masked_settings(rotated)
    assert masked["exchange"]["api_key"] == "***" and masked["exchange"]["api_secret"] is None
    assert masked["data"]["url"] == "postgresql://u:***@h/db" and masked["risk"]["max_positions"] == 3


def test_an_override_without_equals_does_not_echo_its_value():
    from thunes.config import parse_override

    with pytest.raises(ConfigError) as info:
        parse_override("exchange.api_key:PASTED-SECRET")
    assert "PASTED-SECRET" not in str(info.value) and "'exchange.api_key'" in str(info.value)


def _deep_json(path):
    path.write_text('{"risk": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001)
    return path


@pytest.mark.parametrize("case", ["deep config", "state_dir is a file", "logging.dir below a file",
                                  "logging.dir cannot be created", "non-ASCII key"])
def test_config_and_path_faults_are_one_line_errors(case, tmp_path, monkeypatch):
    """Each fault exits non-zero with one `error:` line naming the setting or file, never a traceback."""
    (tmp_path / "afile").write_text("not a folder")
    argv, env, expect = {
        "deep config": (["--config", str(_deep_json(tmp_path / "deep.json")), "config", "show"], {},
                        "nests more than 32 levels deep"),
        "state_dir is a file": (["--set", "trader.state_dir=afile", "risk", "status"], {},
                                "trader.state_dir: must be a folder, but afile is a file"),
        "logging.dir below a file": (["--set", "logging.dir=afile/logs", "data", "list"], {},
                                     "logging.dir: must be a folder, but afile/logs is below afile"),
        # /proc refuses new folders even to root: the folder cannot be created, whoever runs the test
        "logging.dir cannot be created": (["--set", "logging.dir=/proc/thunes-test/logs", "config", "show"], {},
                                          "logging.dir /proc/thunes-test/logs: cannot write"),
        "non-ASCII key": (["config", "show"], {"THUNES_EXCHANGE__API_KEY": "clé"},
                          "exchange.api_key: must be printable ASCII"),
    }[case]
    if case == "logging.dir cannot be created" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    code, out, err = _cli(argv, monkeypatch, tmp_path, env)
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert expect in err and "Traceback" not in err and "clé" not in err
