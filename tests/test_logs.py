"""Logging: every command writes JSON lines to a rotating file under the logs directory; secrets never appear."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from thunes.config import LoggingSettings
from thunes.logs import setup_logging


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_command_logs_a_json_line_to_its_own_file(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "THUNES_LOGGING__DIR": str(tmp_path / "logs"),
           "THUNES_DATA__URL": f"sqlite:///{tmp_path}/c.sqlite"}
    done = subprocess.run([sys.executable, "-m", "thunes", "data", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    records = _lines(tmp_path / "logs" / "data.jsonl")
    assert records[0]["msg"] == "command data list"
    assert records[0]["level"] == "INFO" and records[0]["command"] == "data"
    assert records[0]["ts"].endswith("Z")


def test_the_file_rotates_at_max_bytes_and_keeps_the_configured_backups(tmp_path):
    settings = LoggingSettings(dir=tmp_path, max_bytes=10_000, backups=2)
    setup_logging(settings, console=False, component="rot")
    log = logging.getLogger("thunes.test")
    for i in range(1_000):
        log.info("line %d %s", i, "x" * 40)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rot.jsonl", "rot.jsonl.1", "rot.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 10_000
        assert all("msg" in r for r in _lines(tmp_path / name))
    assert _lines(tmp_path / "rot.jsonl")[-1]["msg"].startswith("line 999 ")


def test_secrets_are_redacted_in_file_and_console(tmp_path, capsys):
    setup_logging(LoggingSettings(dir=tmp_path), console=True, component="sec")
    log = logging.getLogger("thunes.test")
    log.warning("signing with api_key=AKIA123 secret: 'hunter2' and token=abc.def")
    text = (tmp_path / "sec.jsonl").read_text() + capsys.readouterr().err
    for secret in ("AKIA123", "hunter2", "abc.def"):
        assert secret not in text
    assert text.count("***") == 2 * 3  # three values masked, in both sinks


def test_url_passwords_are_masked_in_message_fields_and_traceback(tmp_path, capsys):
    """Redaction covers all a record carries: a driver error quoting its connection string included."""
    setup_logging(LoggingSettings(dir=tmp_path), console=True, component="url")
    log = logging.getLogger("thunes.test")
    try:
        raise ConnectionError("cannot reach postgresql://bot:PW-IN-EXC@db/x")
    except ConnectionError:
        fields = {"url": "postgresql://bot:PW-IN-FIELD@db/x", "params": {"token": "T-IN-FIELD"}}
        log.error("store postgresql://bot:PW-IN-MSG@db/x failed", exc_info=True, extra={"fields": fields})
    text = (tmp_path / "url.jsonl").read_text() + capsys.readouterr().err
    for secret in ("PW-IN-EXC", "PW-IN-MSG", "PW-IN-FIELD", "T-IN-FIELD"):
        assert secret not in text
    record = _lines(tmp_path / "url.jsonl")[0]
    assert record["url"] == "postgresql://bot:***@db/x" and "postgresql://bot:***@db/x" in record["exc"]
    assert record["params"] == {"token": "***"}
    logging.getLogger("thunes").handlers.clear()


def test_a_log_folder_that_cannot_be_written_is_a_config_error():
    """No silent fallback: the error names logging.dir and says how to fix it."""
    import pytest

    from thunes.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"logging.dir /proc/thunes-test/logs: cannot write sec.jsonl"):
        setup_logging(LoggingSettings(dir="/proc/thunes-test/logs"), console=False, component="sec")
