"""FastAPI dependencies: the context, and the caller's principal with a minimum role."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from thunes.api.auth import AuthError, Principal, Role
from thunes.api.context import ApiContext
from thunes.core.errors import ConfigError

__all__ = ["bearer", "context", "principal_from_token", "reader", "require", "trader"]

bearer = HTTPBearer(auto_error=False, description="An access token (POST /api/v1/auth/login) or an API token")


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def principal_from_token(ctx: ApiContext, token: str | None, needed: Role) -> Principal:
    if not token:
        raise AuthError("authentication required: send 'Authorization: Bearer <token>'")
    assert ctx.tokens is not None
    who = ctx.tokens.check(token)
    if not who.role.allows(needed):
        raise AuthError(f"this call needs the {needed} role; {who.name} has {who.role}", status=403)
    return who


def require(needed: Role) -> Callable[..., Principal]:
    def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        return principal_from_token(context(request), creds.credentials if creds else None, needed)

    return dependency


reader = require(Role.READ)
trader = require(Role.TRADER)


def json_params(params: str | None) -> dict[str, Any]:
    """Strategy parameters given in a query string as one JSON object (``{"fast": 5}``); a 4xx otherwise."""
    try:
        values = json.loads(params) if params else {}
    except ValueError as exc:
        raise ConfigError(f"params must be a JSON object: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError("params must be a JSON object")
    return values
