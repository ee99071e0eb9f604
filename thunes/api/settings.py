"""The REST API's settings: the ``api`` section of the settings tree (:class:`thunes.config.ApiSettings`).

Like every section they come from the config file's ``[api]`` table, ``THUNES_API__<FIELD>`` variables
(``THUNES_API__SECRET``, ``THUNES_API__HOST``, ``THUNES_API__CORS_ORIGINS='["https://me.example"]'``) and
``--set api.FIELD=VALUE``; :func:`load_api_settings` adds the command's own flags on top.

Security defaults: loopback only; no default secret (an ephemeral random one on loopback, and a refusal to
start on any other address without one); CORS closed; five login attempts per minute per client.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import ValidationError

from thunes.config import MIN_API_SECRET as MIN_SECRET
from thunes.config import ApiSettings
from thunes.core.errors import ConfigError

__all__ = ["MIN_SECRET", "ApiSettings", "is_loopback", "load_api_settings"]

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_api_settings(app_settings: Any = None, *, env: dict[str, str] | None = None,
                      **overrides: Any) -> ApiSettings:
    """``settings.api`` (the ``[api]`` section of the settings tree, ``THUNES_API__*`` variables included),
    else the ``env`` field values; then ``overrides`` (CLI flags; None values are ignored)."""
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
