"""Telegram settings: the global section + telegram.toml, with safe defaults and one-line errors."""

from __future__ import annotations

import pytest

from thunes.config import load_settings
from thunes.core.errors import ConfigError
from thunes.ops.telegram.settings import AlertKind, AlertMode, Role, load_telegram_settings


def _base(tmp_path, **env):
    return load_settings(env_file=None, environ={f"THUNES_TELEGRAM__{k.upper()}": v for k, v in env.items()}).settings.telegram


def test_defaults_authorise_nobody_and_alert_every_kind(tmp_path):
    s = load_telegram_settings(_base(tmp_path, token="1:abc"), environ={})
    assert s.users == () and s.role_of(1) is None and s.alert_chats() == []
    assert s.base_url == "https://api.telegram.org/bot"  # the server root of settings.telegram, plus /bot
    assert s.mode(AlertKind.ENTRY_FILL) is AlertMode.ON and s.mode(AlertKind.RISK_DENIAL) is AlertMode.SILENT


def test_the_file_lists_users_with_roles_and_overrides_some_alerts(tmp_path):
    f = tmp_path / "telegram.toml"
    f.write_text('[[users]]\nid = 5\nrole = "trader"\n[[users]]\nid = 6\n[alerts]\nexit_fill = "off"\n')
    s = load_telegram_settings(_base(tmp_path, token="1:abc", chat_id="-100"), environ={"THUNES_TELEGRAM_CONFIG": str(f)})
    assert (s.role_of(5), s.role_of(6), s.role_of(7)) == (Role.TRADER, Role.VIEWER, None)
    assert s.mode(AlertKind.EXIT_FILL) is AlertMode.OFF and s.mode(AlertKind.ENTRY_FILL) is AlertMode.ON
    assert s.alert_chats() == [-100]


def test_a_missing_token_or_a_wrong_setting_is_one_line_naming_what_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="THUNES_TELEGRAM__TOKEN"):
        load_telegram_settings(_base(tmp_path), environ={})
    f = tmp_path / "telegram.toml"
    f.write_text('[[users]]\nid = 5\nrole = "admin"\n')
    with pytest.raises(ConfigError, match=r"users\.0\.role"):
        load_telegram_settings(_base(tmp_path, token="1:abc"), f, environ={})
    f.write_text('[alerts]\nentry_fills = "on"\n')
    with pytest.raises(ConfigError, match="alerts"):
        load_telegram_settings(_base(tmp_path, token="1:abc"), f, environ={})
