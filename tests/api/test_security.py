"""Security defaults: loopback only without a secret, CORS closed unless configured, secrets never in
responses or logs, the CLI's serve/user/token commands."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import SECRET, make_ctx, start_api
from thunes.api import ApiSettings, check_bind, load_api_settings
from thunes.config import load_settings
from thunes.core.errors import ConfigError


def test_defaults_are_loopback_no_secret_no_cors():
    s = ApiSettings()
    assert s.host == "127.0.0.1" and s.secret is None and s.cors_origins == []


def test_a_non_loopback_address_without_a_secret_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 without a secret"):
        check_bind(make_ctx(tmp_path, host="0.0.0.0", secret=None))
    check_bind(make_ctx(tmp_path, host="0.0.0.0"))  # with a secret it may
    check_bind(make_ctx(tmp_path, host="::1", secret=None))  # loopback needs none


def test_weak_secrets_and_wildcard_origins_are_refused():
    with pytest.raises(ConfigError, match="secret: .*at least 32 characters"):
        load_api_settings(None, env={"secret": "short"})
    with pytest.raises(ConfigError, match="cors_origins"):
        load_api_settings(None, env={"cors_origins": "*"})


def test_settings_come_from_the_api_section_of_the_settings_tree_env_variables_included():
    environ = {"THUNES_API__SECRET": SECRET, "THUNES_API__PORT": "9000",
               "THUNES_API__CORS_ORIGINS": "https://a.example,https://b.example", "THUNES_RISK__MAX_POSITIONS": "2"}
    loaded = load_settings(env_file=None, environ=environ)
    s = load_api_settings(loaded.settings, host="127.0.0.2")
    assert s.port == 9000 and s.host == "127.0.0.2" and s.secret.get_secret_value() == SECRET
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert loaded.settings.risk.max_positions == 2
    assert SECRET not in str(loaded.show())  # the secret is masked wherever settings are shown


def test_cors_is_closed_by_default_and_open_to_configured_origins_only(tmp_path):
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    closed = start_api(make_ctx(tmp_path / "a"))
    opened = start_api(make_ctx(tmp_path / "b", cors_origins=["https://me.example"]))
    try:
        with closed.client() as c:
            r = c.options("/version", headers=pre)
            assert "access-control-allow-origin" not in r.headers
        with opened.client() as c:
            assert "access-control-allow-origin" not in c.options("/version", headers=pre).headers
            ok = c.options("/version", headers={**pre, "Origin": "https://me.example"})
            assert ok.headers["access-control-allow-origin"] == "https://me.example"
    finally:
        closed.server.stop()
        opened.server.stop()


def test_logs_endpoint_masks_secrets_and_filters_by_level(api):
    log_dir = Path(api.ctx.settings.logging.dir)
    log_dir.mkdir(parents=True)
    (log_dir / "bot.jsonl").write_text(
        '{"ts": "2026-01-01T00:00:00.000Z", "level": "INFO", "logger": "thunes", "msg": "started"}\n'
        '{"ts": "2026-01-01T00:00:01.000Z", "level": "ERROR", "logger": "thunes", "msg": "login token=abc123 failed"}\n'
        'not json at all\n')
    with api.client("viewer") as c:
        rows = c.get("/logs", params={"lines": 10}).json()["lines"]
        assert {"started", "login token=*** failed", "not json at all"} == {r["msg"] for r in rows}
        assert "abc123" not in c.get("/logs").text
        errors = c.get("/logs", params={"level": "ERROR"}).json()["lines"]
        assert [r["msg"] for r in errors] == ["login token=*** failed"]
        assert c.get("/logs", params={"component": "../etc"}).status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_user_token_and_serve(tmp_path):
    """`thunes api user add`, `token create|revoke`, `serve`: a script logs in and calls the API; a token
    revoked by the CLI stops working; the server refuses 0.0.0.0 without a secret."""
    from click.testing import CliRunner

    from thunes.cli import root

    env = {"THUNES_API__USERS_FILE": str(tmp_path / "users.json"), "THUNES_API__SECRET": SECRET,
           "THUNES_API__STATE_DIR": str(tmp_path / "bot"), "THUNES_LOGGING__DIR": str(tmp_path / "logs")}
    cli = lambda *a, **kw: CliRunner().invoke(root, ["api", *a], env=env, **kw)  # noqa: E731
    assert cli("user", "add", "alice", "--role", "trader", "--password-stdin", input="alice-password\n").exit_code == 0
    made = cli("token", "create", "--name", "ci", "--role", "read")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    token_id = made.stderr.split()[2]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "thunes", "api", "serve", "--port", str(port)],
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(600):
            try:
                httpx.get(f"{url}/ping", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        pair = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": "alice-password"}).json()
        assert httpx.get(f"{url}/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}).json()["role"] \
            == "trader"
        h = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/auth/me", headers=h).json() == {"name": "ci", "role": "read", "token_type": "api"}
        assert cli("token", "revoke", token_id).exit_code == 0
        assert httpx.get(f"{url}/auth/me", headers=h).status_code == 401
    finally:
        server.terminate()
        out, err = server.communicate(timeout=20)
    assert SECRET not in out + err and "alice-password" not in out + err
    refused = CliRunner().invoke(root, ["api", "serve", "--host", "0.0.0.0"],
                                 env={**env, "THUNES_API__SECRET": None})
    assert isinstance(refused.exception, ConfigError)
    assert "refusing to listen on 0.0.0.0 without a secret" in str(refused.exception)


def test_an_api_section_of_the_settings_tree_wins_over_the_environment():
    """After the merge the section lives in thunes.config (another class): it is read by its fields."""
    class Tree:
        api = ApiSettings(port=9100, secret=SECRET)

    s = load_api_settings(Tree(), env={"port": "9000"}, host="127.0.0.3")
    assert (s.port, s.host, s.secret.get_secret_value()) == (9100, "127.0.0.3", SECRET)


def test_requests_are_logged_without_query_strings_or_tokens(api):
    import logging

    from thunes.logs import setup_logging

    setup_logging(api.ctx.settings.logging, console=False, component="api")
    try:
        token = api.tokens["viewer"]
        with api.client() as c:
            assert c.get("/events/stream", params={"types": "Nope", "token": token}).status_code == 400
            assert c.get("/version", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert c.post("/auth/login", json={"username": "boss", "password": "boss-password"}).status_code == 200
        for h in logging.getLogger("thunes").handlers:
            h.flush()
        text = (Path(api.ctx.settings.logging.dir) / "api.jsonl").read_text()
    finally:
        for h in list(logging.getLogger("thunes").handlers):
            logging.getLogger("thunes").removeHandler(h)
            h.close()
    assert "GET /api/v1/events/stream 400" in text and "GET /api/v1/version 200" in text
    assert token not in text and "boss-password" not in text and "Nope" not in text


def test_metrics_count_requests_by_route_template_and_status_class_without_ids_or_tokens(api):
    """GET /metrics serves the API's request counts and latency; labels are route templates (never an id or a
    token) and status classes, so they stay bounded whatever the traffic."""
    import httpx

    with api.client("viewer") as c:
        c.get("/version")
        c.get("/trades/12345")  # an id in the path: counted under its template
    c2 = httpx.get(f"{api.url.removesuffix('/api/v1')}/metrics", timeout=5)
    assert c2.status_code == 200 and c2.headers["content-type"].startswith("text/plain")
    text = c2.text
    assert 'thunes_api_requests_total{method="GET",route="/version",status="2xx"}' in text
    assert "12345" not in text and api.tokens["boss"] not in text
    assert "thunes_api_request_duration_seconds_bucket" in text
