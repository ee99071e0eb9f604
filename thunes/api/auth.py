"""Users, roles, tokens and the login rate limit of the REST API.

* Two roles: ``read`` (every GET) and ``trader`` (also every call that changes something: start/stop,
  pause, force-exit, kill-switch, reduce-only, reload, tasks). ``trader`` includes ``read``.
* Passwords are stored as scrypt hashes (``hashlib.scrypt``, random salt); comparisons of hashes and
  token ids use :func:`hmac.compare_digest`, and an unknown user costs the same hash as a known one.
* Tokens are HS256 JWTs signed with ``ApiSettings.secret``: ``access`` (short, ``access_ttl_s``),
  ``refresh`` (``refresh_ttl_s``, exchanged for a new pair) and ``api`` (long-lived, for scripts; no expiry,
  but its id must still be listed in the users file, so deleting it revokes it).
* The users file (``ApiSettings.users_file``) is JSON written atomically with mode 0600.
* :class:`LoginLimiter` allows ``login_attempts`` per client address per ``login_window_s`` (sliding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt

from thunes.core.errors import ConfigError
from thunes.files import atomic_write

__all__ = [
    "AuthError",
    "LoginLimiter",
    "Principal",
    "Role",
    "TokenService",
    "UserStore",
    "hash_password",
    "verify_password",
]

_N, _R, _P = 2 ** 14, 8, 1  # scrypt cost: ~50 ms, 16 MiB


class Role(StrEnum):
    READ = "read"
    TRADER = "trader"

    def allows(self, needed: Role) -> bool:
        return self is Role.TRADER or needed is Role.READ


class AuthError(Exception):
    """A request's credentials are missing, wrong or expired (HTTP 401) or its role too low (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    name: str
    role: Role
    token_type: str  # access | api
    expires_at: float | None = None  # epoch seconds (None: an API token, valid until revoked)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    if not password:
        raise ConfigError("the password is empty")
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


_DUMMY = hash_password("not-a-user-password", salt=b"0123456789abcdef")


class UserStore:
    """``{"users": {name: {"hash", "role"}}, "tokens": {id: {"name", "role", "created_ms"}}}`` in one file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"users": {}, "tokens": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"API users file {self.path} is unreadable ({exc})") from exc
        data.setdefault("users", {})
        data.setdefault("tokens", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(data, indent=2), secret=True)  # password hashes and token hashes

    def set_user(self, name: str, password: str, role: Role) -> None:
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{name!r}: a user name is 1-64 letters, digits, '-', '_' or '.'")
        with self._lock:
            data = self._read()
            data["users"][name] = {"hash": hash_password(password), "role": str(Role(role))}
            self._write(data)

    def remove_user(self, name: str) -> bool:
        with self._lock:
            data = self._read()
            found = data["users"].pop(name, None) is not None  # API tokens are named by purpose, revoked by id
            self._write(data)
        return found

    def users(self) -> dict[str, str]:
        return {n: u["role"] for n, u in self._read()["users"].items()}

    def check_password(self, name: str, password: str) -> Role | None:
        user = self._read()["users"].get(name)
        ok = verify_password(password, user["hash"] if user else _DUMMY)
        return Role(user["role"]) if ok and user else None

    def role_of(self, name: str) -> Role | None:
        user = self._read()["users"].get(name)
        return Role(user["role"]) if user else None

    def add_token(self, token_id: str, name: str, role: Role, created_ms: int) -> None:
        with self._lock:
            data = self._read()
            data["tokens"][token_id] = {"name": name, "role": str(role), "created_ms": created_ms}
            self._write(data)

    def token(self, token_id: str) -> dict[str, Any] | None:
        tokens = self._read()["tokens"]
        for known, info in tokens.items():
            if hmac.compare_digest(known.encode(), token_id.encode()):
                return info
        return None

    def tokens(self) -> dict[str, dict[str, Any]]:
        return self._read()["tokens"]

    def revoke_token(self, token_id: str) -> bool:
        with self._lock:
            data = self._read()
            found = data["tokens"].pop(token_id, None) is not None
            self._write(data)
        return found


class TokenService:
    """Issue and check the three kinds of token (module docstring)."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, users: UserStore, *, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self._secret = secret
        self.users = users
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def _encode(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._secret, algorithm=self.ALGORITHM)

    def pair(self, name: str, role: Role, *, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        base = {"sub": name, "role": str(role), "iat": int(now)}
        access = self._encode({**base, "typ": "access", "exp": int(now + self.access_ttl_s),
                               "jti": secrets.token_hex(8)})
        refresh = self._encode({**base, "typ": "refresh", "exp": int(now + self.refresh_ttl_s),
                                "jti": secrets.token_hex(8)})
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
                "expires_in": self.access_ttl_s, "role": str(role)}

    def api_token(self, name: str, role: Role) -> tuple[str, str]:
        token_id = secrets.token_hex(12)
        now = int(time.time())
        self.users.add_token(token_id, name, role, now * 1000)
        return token_id, self._encode({"sub": name, "role": str(role), "typ": "api", "iat": now, "jti": token_id})

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, self._secret, algorithms=[self.ALGORITHM],
                              options={"require": ["sub", "role", "typ", "iat"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; log in again or refresh it") from None
        except jwt.PyJWTError:
            raise AuthError("the token is invalid") from None

    def check(self, token: str) -> Principal:
        """The principal of an access or API token (a refresh token is refused here)."""
        claims = self._decode(token)
        typ = claims.get("typ")
        if typ == "access":
            if "exp" not in claims:
                raise AuthError("the token is invalid")
            role = self._role(claims)
            # A user removed (or demoted) since the token was issued loses access at once.
            current = self.users.role_of(str(claims["sub"]))
            if current is None:
                raise AuthError("the token's user no longer exists")
            return Principal(name=str(claims["sub"]), role=min(role, current, key=_rank), token_type="access",
                             expires_at=float(claims["exp"]))
        if typ == "api":
            info = self.users.token(str(claims.get("jti", "")))
            if info is None:
                raise AuthError("the API token has been revoked")
            return Principal(name=str(claims["sub"]), role=Role(info["role"]), token_type="api")
        raise AuthError("a refresh token cannot call the API; exchange it at /api/v1/auth/refresh")

    def refresh(self, token: str) -> dict[str, Any]:
        claims = self._decode(token)
        if claims.get("typ") != "refresh" or "exp" not in claims:
            raise AuthError("not a refresh token")
        current = self.users.role_of(str(claims["sub"]))
        if current is None:
            raise AuthError("the token's user no longer exists")
        return self.pair(str(claims["sub"]), current)

    def _role(self, claims: dict[str, Any]) -> Role:
        try:
            return Role(claims["role"])
        except ValueError:
            raise AuthError("the token is invalid") from None


def _rank(role: Role) -> int:
    return 1 if role is Role.TRADER else 0


class LoginLimiter:
    """At most ``attempts`` logins per client per ``window_s`` seconds (a sliding window)."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str, *, now: float | None = None) -> float | None:
        """Record an attempt; returns the seconds to wait when over the limit (the attempt is refused)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._hits.setdefault(client, deque())
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= self.attempts:
                return max(0.001, q[0] + self.window_s - now)
            q.append(now)
            if len(self._hits) > 10_000:  # forget idle clients
                for k in [k for k, v in self._hits.items() if not v]:
                    del self._hits[k]
            return None
