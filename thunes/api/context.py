"""What every route needs: the settings, the bot's folder, tokens, tasks, the runner and the event hub."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from thunes.api.auth import LoginLimiter, TokenService, UserStore
from thunes.api.settings import ApiSettings
from thunes.api.stream import EventHub
from thunes.services.runner import BotRunner
from thunes.services.tasks import TaskRegistry

__all__ = ["LATEST", "ApiContext", "plain"]

#: Where ``thunes bot run`` records the folder of its last run (the CLI's default for steering commands).
LATEST = Path("artifacts/bot/LATEST")


@dataclass(eq=False)
class ApiContext:
    settings: Any  # thunes.config.Settings
    api: ApiSettings
    runner: BotRunner = field(default_factory=BotRunner)
    hub: EventHub = field(default_factory=EventHub)
    tasks: TaskRegistry | None = None
    tokens: TokenService | None = None
    limiter: LoginLimiter | None = None
    ephemeral_secret: bool = False

    def __post_init__(self) -> None:
        if self.tasks is None:
            self.tasks = TaskRegistry(max_workers=self.api.task_workers)
        if self.api.secret is not None:
            secret = self.api.secret.get_secret_value()
        else:
            # Loopback without a configured secret: tokens live as long as this process (see settings).
            secret, self.ephemeral_secret = secrets.token_urlsafe(48), True
        self.tokens = TokenService(secret, UserStore(self.api.users_file), access_ttl_s=self.api.access_ttl_s,
                                   refresh_ttl_s=self.api.refresh_ttl_s)
        self.limiter = LoginLimiter(self.api.login_attempts, self.api.login_window_s)
        self.runner.on_bus(self.hub.attach_bus)

    @property
    def state_dir(self) -> Path:
        """The bot steered: the one running here, else ``api.state_dir``, else the last ``thunes bot run``."""
        if self.runner.state_dir is not None:
            return self.runner.state_dir
        if self.api.state_dir is not None:
            return Path(self.api.state_dir)
        if LATEST.exists():
            return Path(LATEST.read_text(encoding="utf-8").strip())
        from thunes.live.config import BotSettings

        return Path(BotSettings().state_dir)

    @property
    def ledger(self) -> Path:
        return self.state_dir / "ledger.csv"


def plain(value: Any) -> Any:
    """JSON-safe values: Decimals as strings (exact), enums by value, dataclasses as dicts, paths as text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return None
    return value
