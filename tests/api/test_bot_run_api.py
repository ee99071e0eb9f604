"""`thunes bot run --api`: the bot and the API in one process; the API sees the bot at once and stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.api.test_security import _free_port
from thunes.api.auth import Role, UserStore


def test_bot_run_with_api_serves_the_running_bot_and_stops_on_request(tmp_path):
    UserStore(tmp_path / "users.json").set_user("bob", "bob-password", Role.TRADER)
    port = _free_port()
    env = {**os.environ, "THUNES_API__USERS_FILE": str(tmp_path / "users.json"), "THUNES_API__PORT": str(port),
           "THUNES_LOGGING__DIR": str(tmp_path / "logs")}
    proc = subprocess.Popen([sys.executable, "-m", "thunes", "bot", "run", "--pairs", "BTC/USDT,ETH/USDT",
                             "--timeframe", "1h", "--synthetic", "--bars", "5000", "--speed", "3600", "--quiet", "--api",
                             "--state-dir", str(tmp_path / "bot")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/ping", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.1)
        token = httpx.post(f"{url}/auth/login", json={"username": "bob", "password": "bob-password"}).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        st = httpx.get(f"{url}/bot/status", headers=h).json()
        assert st["running"] is True and st["state_dir"] == str(tmp_path / "bot")
        assert httpx.post(f"{url}/bot/stop", headers=h, json={"reason": "from the phone"}).json() == {"stopping": True}
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"API on http://127.0.0.1:{port}/api/v1" in err
    assert "stopped: from the phone (api: bob)" in out
