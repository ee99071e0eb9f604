"""Authentication and roles through the real server: no token, bad/expired tokens, wrong role, refresh,
API tokens (revocable), removed users, the login rate limit."""

from __future__ import annotations

import time

import jwt

from tests.api.conftest import PASSWORDS, SECRET, make_ctx, start_api


def test_every_call_but_ping_needs_a_token(api):
    with api.client() as c:
        assert c.get("/ping").json() == {"status": "pong"}
        r = c.get("/bot/status")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"].startswith("authentication required")
        assert c.post("/bot/pause").status_code == 401
        assert c.get("/bot/status", headers={"Authorization": "Bearer not-a-jwt"}).json()["error"] == \
            "the token is invalid"


def test_an_expired_or_foreign_token_is_refused(api):
    now = int(time.time())
    claims = {"sub": "boss", "role": "trader", "typ": "access", "iat": now - 100, "exp": now - 10, "jti": "x"}
    expired = jwt.encode(claims, SECRET, algorithm="HS256")
    forged = jwt.encode({**claims, "exp": now + 100}, "another-secret-" * 4, algorithm="HS256")
    unsigned = jwt.encode({**claims, "exp": now + 100}, None, algorithm="none")
    with api.client() as c:
        r = c.get("/version", headers={"Authorization": f"Bearer {expired}"})
        assert r.status_code == 401 and "expired" in r.json()["error"]
        for token in (forged, unsigned):
            assert c.get("/version", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_the_read_role_reads_but_cannot_change_anything(api):
    with api.client("viewer") as c:
        assert c.get("/version").status_code == 200
        for path, body in (("/bot/pause", None), ("/bot/resume", None), ("/bot/stop", None), ("/bot/reload", None),
                           ("/bot/force-exit", {"symbol": "BTC/USDT"}),
                           ("/bot/kill-switch", {"on": True, "reason": "x"}),
                           ("/bot/reduce-only", {"on": True, "reason": "x"}), ("/bot/start", {}),
                           ("/tasks/backtest", {"strategy": "sma_cross"}), ("/tasks/optimize", {"strategy": "sma_cross"}),
                           ("/tasks/train", {}), ("/tasks/abc/cancel", None)):
            r = c.post(path, json=body)
            assert r.status_code == 403, path
            assert r.json()["error"] == "this call needs the trader role; viewer has read"


def test_login_refresh_and_the_refresh_token_cannot_call_the_api(api):
    with api.client() as c:
        assert c.post("/auth/login", json={"username": "boss", "password": "wrong"}).status_code == 401
        assert c.post("/auth/login", json={"username": "nobody", "password": "x"}).status_code == 401
        pair = c.post("/auth/login", json={"username": "boss", "password": PASSWORDS["boss"]}).json()
        assert pair["role"] == "trader" and pair["expires_in"] == 900
        me = c.get("/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}).json()
        assert me == {"name": "boss", "role": "trader", "token_type": "access"}
        r = c.get("/auth/me", headers={"Authorization": f"Bearer {pair['refresh_token']}"})
        assert r.status_code == 401 and "refresh" in r.json()["error"]
        new = c.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
        assert c.get("/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
        assert c.post("/auth/refresh", json={"refresh_token": pair["access_token"]}).status_code == 401


def test_api_tokens_work_until_revoked_and_removed_users_lose_access(api):
    tokens = api.ctx.tokens
    token_id, token = tokens.api_token("script", tokens.users.role_of("boss"))
    with api.client() as c:
        h = {"Authorization": f"Bearer {token}"}
        assert c.get("/auth/me", headers=h).json() == {"name": "script", "role": "trader", "token_type": "api"}
        assert tokens.users.revoke_token(token_id)
        r = c.get("/auth/me", headers=h)
        assert r.status_code == 401 and "revoked" in r.json()["error"]
        access = {"Authorization": f"Bearer {api.tokens['viewer']}"}
        assert c.get("/auth/me", headers=access).status_code == 200
        tokens.users.remove_user("viewer")
        assert c.get("/auth/me", headers=access).status_code == 401


def test_logins_are_rate_limited_per_client(tmp_path):
    a = start_api(make_ctx(tmp_path, login_attempts=3, login_window_s=60))
    try:
        with a.client() as c:
            codes = [c.post("/auth/login", json={"username": "boss", "password": "guess"}).status_code
                     for _ in range(3)]
            assert codes == [401, 401, 401]
            r = c.post("/auth/login", json={"username": "boss", "password": PASSWORDS["boss"]})
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert "too many login attempts" in r.json()["error"]
    finally:
        a.server.stop()


def test_the_users_file_holds_hashes_only_with_mode_0600(api):
    path = api.ctx.api.users_file
    text = path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert PASSWORDS["boss"] not in text and "scrypt$" in text


def test_no_secret_in_any_response(api):
    with api.client("boss") as c:
        body = c.get("/settings").text
    assert "KEY-must-not-leak" not in body and "SECRET-must-not-leak" not in body and SECRET not in body
    assert '"secret":"**********"' in body.replace(" ", "")


def test_every_operation_of_the_schema_refuses_a_missing_token_and_every_change_the_read_role(api):
    """Walks the served OpenAPI schema, so a new endpoint cannot forget its role."""
    import re

    public = {("GET", "/ping"), ("POST", "/auth/login"), ("POST", "/auth/refresh")}
    with api.client() as c:
        spec = c.get("/openapi.json").json()
        checked = 0
        for path, ops in spec["paths"].items():
            short = path.removeprefix("/api/v1")
            url = re.sub(r"\{[^}]+\}", lambda m: {"{kind}": "backtest"}.get(m.group(0), "abc"), short)
            for method in ops:
                key = (method.upper(), short)
                if key in public:
                    continue
                r = c.request(method.upper(), url, json={})
                assert r.status_code == 401, key
                if method == "post":
                    r = c.request("POST", url, json={}, headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
                    assert r.status_code == 403, key
                checked += 1
    assert checked >= 38  # a bound: routes are added over time, and each new one is checked above
