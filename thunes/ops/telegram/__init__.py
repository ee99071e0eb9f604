"""Telegram: alerts from the bot's events and remote control by authorised users (docs/telegram.md).

* :mod:`~thunes.ops.telegram.settings` - users and roles, alert modes (``telegram.toml``).
* :mod:`~thunes.ops.telegram.alerts` - which events become alerts, and their text.
* :mod:`~thunes.ops.telegram.outbox` - splitting to 4096 characters, retries, flood control.
* :mod:`~thunes.ops.telegram.control` - the python-telegram-bot application: commands, confirmations,
  the alert subscriber.
* :mod:`~thunes.ops.telegram.fake_server` - a local fake Bot API for tests and offline trials.

Needs the ``telegram`` extra (``pip install -e '.[telegram]'``): python-telegram-bot.
"""

from __future__ import annotations

from typing import Any

from thunes.ops.telegram.settings import (
    AlertKind,
    AlertMode,
    Role,
    TelegramBotSettings,
    TelegramUser,
    load_telegram_settings,
)

__all__ = [
    "AlertKind",
    "AlertMode",
    "ControlTarget",
    "Role",
    "TelegramBotSettings",
    "TelegramControl",
    "TelegramUser",
    "load_telegram_settings",
    "start_control",
]


def __getattr__(name: str) -> Any:
    # The PTB application is imported on use: settings stay importable without the extra installed.
    if name in ("TelegramControl", "ControlTarget"):
        from thunes.ops.telegram import control

        return getattr(control, name)
    raise AttributeError(name)


def start_control(app_settings: Any, *, state_dir: Any, risk_settings: Any, config_path: Any = None,
                  bus: Any = None, follow_events: bool = False, log_path: Any = None) -> Any:
    """Load the Telegram settings, and start a control bot for the bot on ``state_dir`` (``.stop()`` it).

    ``bus``: alerts from a bot in this process; ``follow_events``: from the state folder's event log.
    A missing ``python-telegram-bot`` is a :class:`~thunes.core.errors.ConfigError` saying what to install.
    """
    from pathlib import Path

    from thunes.core.errors import ConfigError

    settings = load_telegram_settings(app_settings.telegram, config_path)
    try:
        from thunes.ops.telegram.control import ControlTarget, TelegramControl
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("telegram"):
            raise ConfigError("Telegram needs python-telegram-bot: pip install -e '.[telegram]'") from exc
        raise
    if not settings.users:
        import logging

        logging.getLogger(__name__).warning("telegram: no user is listed in the settings: every command is refused")
    target = ControlTarget(state_dir=Path(state_dir), risk_settings=risk_settings,
                           log_path=Path(log_path) if log_path else None)
    return TelegramControl(settings, target, bus=bus, follow_events=follow_events).start()
