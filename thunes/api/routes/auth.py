"""Login, refresh and whoami."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from thunes.api.auth import AuthError, Principal
from thunes.api.context import ApiContext
from thunes.api.deps import context, reader

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=4096)


class TooManyLogins(AuthError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many login attempts; retry in {retry_after:.0f} s", status=429)
        self.retry_after = retry_after


@router.post("/login", summary="Exchange a user name and password for access and refresh tokens")
def login(body: LoginBody, request: Request, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    assert ctx.limiter is not None and ctx.tokens is not None
    client = request.client.host if request.client else "unknown"
    wait = ctx.limiter.hit(client)
    if wait is not None:
        raise TooManyLogins(wait)
    role = ctx.tokens.users.check_password(body.username, body.password)
    if role is None:
        raise AuthError("wrong user name or password")
    return ctx.tokens.pair(body.username, role)


@router.post("/refresh", summary="A new token pair for a valid refresh token")
def refresh(body: RefreshBody, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    assert ctx.tokens is not None
    return ctx.tokens.refresh(body.refresh_token)


@router.get("/me", summary="Who the token belongs to")
def me(who: Principal = Depends(reader)) -> dict[str, Any]:
    return {"name": who.name, "role": str(who.role), "token_type": who.token_type}
