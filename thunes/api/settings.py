"""The REST API's settings (``ApiSettings``) and where they come from.

To be moved into :mod:`thunes.config` as the ``api`` section (``settings.api``); until then they are read
from ``settings.api`` when the tree has it, else from ``THUNES_API__<FIELD>`` environment variables
(``THUNES_API__SECRET``, ``THUNES_API__HOST``, ``THUNES_API__CORS_ORIGINS='["https://me.example"]'``), which
:func:`take_api_env` removes from the environment before the global settings are loaded (the global tree
refuses unknown sections).

Security defaults: loopback only; no default secret (an ephemeral random one on loopback, and a refusal to
start on any other address without one); CORS closed; five login attempts per minute per client.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any, MutableMapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from thunes.core.errors import ConfigError

__all__ = ["ApiSettings", "load_api_settings", "take_api_env", "is_loopback", "ENV_PREFIX"]

ENV_PREFIX = "THUNES_API__"
MIN_SECRET = 32


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Listen address; anything but loopback needs a secret")
    port: int = Field(8080, ge=0, le=65535)
    secret: SecretStr | None = Field(None, description=f"JWT signing key, at least {MIN_SECRET} characters; "
                                                       "`thunes api secret` prints a fresh one")
    users_file: Path = Field(Path("data/api_users.json"), description="Users and API tokens (mode 0600)")
    state_dir: Path | None = Field(None, description="The bot's state folder (default: as `thunes bot status`)")
    access_ttl_s: int = Field(900, ge=30, le=86_400)
    refresh_ttl_s: int = Field(7 * 86_400, ge=60, le=90 * 86_400)
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed; none by default")
    login_attempts: int = Field(5, ge=1, description="Login attempts per client per window")
    login_window_s: float = Field(60.0, gt=0)
    task_workers: int = Field(1, ge=1, le=8, description="Background tasks run at once")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < MIN_SECRET:
            raise ValueError(f"must be at least {MIN_SECRET} characters (try `thunes api secret`)")
        return v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, v: list[str]) -> list[str]:
        if "*" in v:
            raise ValueError("'*' would let any web page drive the bot with a user's token; list the origins")
        return v


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def take_api_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Remove and return the ``THUNES_API__*`` variables (field name -> value)."""
    environ = os.environ if environ is None else environ
    out = {}
    for name in [n for n in environ if n.upper().startswith(ENV_PREFIX)]:
        out[name[len(ENV_PREFIX):].lower()] = environ.pop(name)
    return out


def load_api_settings(app_settings: Any = None, *, env: dict[str, str] | None = None,
                      **overrides: Any) -> ApiSettings:
    """``settings.api`` when the tree has it, else the ``env`` values (from :func:`take_api_env`); then
    ``overrides`` (CLI flags; None values are ignored)."""
    base: dict[str, Any] = {}
    section = getattr(app_settings, "api", None) if app_settings is not None else None
    if section is not None and hasattr(section, "model_dump"):  # the section, wherever its class lives
        base = section.model_dump()
    elif env:
        base = dict(env)
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ApiSettings.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"api settings: {where}: {err['msg'].removeprefix('Value error, ')}") from None
