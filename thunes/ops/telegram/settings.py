"""Settings of the Telegram control bot: who may use it, with which role, and which alerts it sends.

The token, the alert chat and the Bot API base URL are the global ``settings.telegram`` section
(``THUNES_TELEGRAM__TOKEN``, ``THUNES_TELEGRAM__CHAT_ID``, ``THUNES_TELEGRAM__BASE_URL``). Users, roles
and alert modes live in a small TOML file (``--telegram-config telegram.toml``, or ``$THUNES_TELEGRAM_CONFIG``)
until they are folded into the global tree::

    # telegram.toml
    [[users]]
    id = 123456789          # Telegram user id (the bot tells an unknown user their id)
    role = "trader"         # viewer: read-only commands; trader: also pause/resume/stop/force-exit/kill-switch
    name = "alice"

    [alerts]                # each alert: "on" (notify), "silent" (delivered without a sound) or "off"
    entry_fill = "on"
    risk_denial = "silent"

Security defaults: no user is authorised until listed (everyone is refused and audited); a listed user
is a viewer unless ``role = "trader"``; alerts go to ``chat_id`` when set, else privately to every
listed user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from thunes.core.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_ALERTS",
    "AlertKind",
    "AlertMode",
    "Role",
    "TelegramBotSettings",
    "TelegramUser",
    "load_telegram_settings",
]

CONFIG_ENV = "THUNES_TELEGRAM_CONFIG"  # one underscore: not a settings-tree variable (those use "__")


class Role(StrEnum):
    VIEWER = "viewer"  # read-only commands
    TRADER = "trader"  # also the commands that change what the bot does


class AlertKind(StrEnum):
    ENTRY_FILL = "entry_fill"
    EXIT_FILL = "exit_fill"
    REJECTION = "rejection"
    RISK_DENIAL = "risk_denial"
    KILL_SWITCH = "kill_switch"
    RECONCILE_MISMATCH = "reconcile_mismatch"
    FEED_STALE = "feed_stale"
    FEED_RECONNECTED = "feed_reconnected"
    JOB_FAILURE = "job_failure"
    DAILY_SUMMARY = "daily_summary"
    REOPTIMISATION = "reoptimisation"
    DECAY_WARNING = "decay_warning"
    BOT_STATE = "bot_state"  # bot started, paused, stopped


class AlertMode(StrEnum):
    ON = "on"
    SILENT = "silent"  # delivered with disable_notification (no sound on the phone)
    OFF = "off"


DEFAULT_ALERTS: dict[AlertKind, AlertMode] = {
    **{k: AlertMode.ON for k in AlertKind},
    AlertKind.RISK_DENIAL: AlertMode.SILENT,  # one per refused signal: frequent, rarely urgent
    AlertKind.FEED_RECONNECTED: AlertMode.SILENT,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramUser(_Model):
    id: int = Field(description="Telegram user id")
    role: Role = Role.VIEWER
    name: str = ""


class TelegramBotSettings(_Model):
    token: SecretStr | None = None
    base_url: str = Field("https://api.telegram.org/bot", description="Bot API base; the token is appended")
    chat_id: str | None = Field(None, description="Where alerts go; None: privately to every listed user")
    users: tuple[TelegramUser, ...] = ()
    alerts: dict[AlertKind, AlertMode] = Field(default_factory=lambda: dict(DEFAULT_ALERTS))
    poll_timeout_s: int = Field(10, ge=0, le=50, description="getUpdates long-poll timeout")
    send_attempts: int = Field(10, ge=1, description="Tries per message on network errors before logging it lost")
    max_retry_after_s: float = Field(600.0, gt=0, description="Longest flood-control wait honoured per message")
    logs_lines: int = Field(20, ge=1, le=200)

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        v = v.rstrip("/")
        # settings.telegram.base_url is the server root ("https://api.telegram.org"); PTB wants ".../bot".
        return v if v.endswith("/bot") else v + "/bot"

    @field_validator("alerts", mode="before")
    @classmethod
    def _fill(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {**DEFAULT_ALERTS, **v}
        return v

    def role_of(self, user_id: int) -> Role | None:
        for u in self.users:
            if u.id == user_id:
                return u.role
        return None

    def mode(self, kind: AlertKind) -> AlertMode:
        return self.alerts.get(kind, AlertMode.ON)

    def alert_chats(self) -> list[int | str]:
        if self.chat_id:
            return [int(self.chat_id) if self.chat_id.lstrip("-").isdigit() else self.chat_id]
        return [u.id for u in self.users]


def load_telegram_settings(base: Any = None, path: str | Path | None = None, *,
                           environ: Mapping[str, str] | None = None, **overrides: Any) -> TelegramBotSettings:
    """``base`` (the global ``settings.telegram``) + the TOML file (``path`` or ``$THUNES_TELEGRAM_CONFIG``)
    + ``overrides``; a missing token is a :class:`ConfigError` naming the variable to set."""
    from thunes.config import read_config_file

    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if base is not None:
        data.update({k: v for k, v in base.model_dump().items() if v is not None})
    path = path or environ.get(CONFIG_ENV) or None
    if path is not None:
        raw = read_config_file(Path(path), environ)
        data.update(raw.get("telegram", raw))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = TelegramBotSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"telegram settings ({path or 'defaults'}): {where}: "
                          f"{err['msg'].removeprefix('Value error, ')}") from exc
    if settings.token is None or not settings.token.get_secret_value():
        raise ConfigError("the Telegram bot needs a token: set THUNES_TELEGRAM__TOKEN (from @BotFather)")
    return settings
