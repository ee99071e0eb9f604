"""``thunes telegram``: the Telegram control bot for a bot that runs in another process (docs/telegram.md).

``thunes telegram serve`` steers the bot on a state folder through the same services as ``thunes bot ...``
(its control socket, or its state folder when it is not running) and sends alerts by following the bot's
event log. To run the chat inside the trading process instead: ``thunes bot run --telegram``.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from thunes.cli import pass_app

__all__ = ["register", "telegram_group"]


@click.group("telegram")
def telegram_group() -> None:
    """Alerts and remote control from Telegram, for authorised users only (docs/telegram.md).

    \b
    Example:
      thunes telegram serve --telegram-config telegram.toml
    """


@telegram_group.command("serve")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
              help="bot.toml of the bot to steer (its state_dir and risk overrides).")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help="The bot's state folder (default: the config's, else the last `thunes bot run`).")
@click.option("--telegram-config", default=None, type=click.Path(dir_okay=False),
              help="telegram.toml with users, roles and alert modes (default: $THUNES_TELEGRAM_CONFIG).")
@click.option("--no-alerts", is_flag=True, help="Commands only: do not follow the bot's event log.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds (default: until Ctrl-C).")
@pass_app
def serve_cmd(app: Any, config: str | None, state_dir: str | None, telegram_config: str | None, no_alerts: bool,
              duration: float | None) -> None:
    """Run the Telegram control bot until Ctrl-C or SIGTERM.

    \b
    Examples:
      export THUNES_TELEGRAM__TOKEN=123456:ABC...        # from @BotFather
      thunes telegram serve --config bot.toml --telegram-config telegram.toml
      thunes telegram serve --state-dir data/bot --no-alerts
    """
    from thunes.cli.bot import _state_dir
    from thunes.live.config import load_bot_settings
    from thunes.ops.telegram import start_control

    where = _state_dir(state_dir, config)
    risk = load_bot_settings(config).risk_settings(app.settings.risk) if config else app.settings.risk
    control = start_control(app.settings, state_dir=where, risk_settings=risk, config_path=telegram_config,
                            follow_events=not no_alerts, log_path=Path(app.settings.logging.dir) / "bot.jsonl")
    users = ", ".join(f"{u.id} ({u.role})" for u in control.settings.users) or "none: every command is refused"
    click.echo(f"telegram control bot for {where}: users {users}; alerts "
               f"{'off' if no_alerts else 'from ' + str(where / 'events.jsonl')}. Ctrl-C to stop.", err=True)
    done = threading.Event()
    previous = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done.wait(duration)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        control.stop()
    st = control.outbox.stats if control.outbox is not None else None
    if st is not None:
        click.echo(f"stopped: {st.sent} messages sent, {control.alerts_sent} alerts, {st.lost} lost", err=True)


def register(root: click.Group) -> None:
    root.add_command(telegram_group)
