"""A real uvicorn server on a free port, steering a paper bot (4 pairs, local exchange) run in this process.

``api`` serves the API like ``thunes bot run --api``: the bot session is attached to the server's runner
(so its bus feeds the event stream) and runs on its own thread at about 0.1 s per candle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the API needs the api extra: pip install -e '.[api]'")
import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from tests.live.conftest import bot_settings, four_pairs  # noqa: F401 - fixture
from thunes.api import ApiContext, ApiSettings, ServerThread
from thunes.api.auth import Role, UserStore
from thunes.config import Settings
from thunes.live.config import LocalReplaySettings
from thunes.live.control import control_file
from thunes.services.bot import BotRunRequest, open_bot

SECRET = "s" * 40
PASSWORDS = {"viewer": "viewer-password", "boss": "boss-password"}


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def app_settings(tmp_path: Path) -> Settings:
    return Settings(data={"url": f"sqlite:///{tmp_path / 'candles.sqlite'}"}, audit={"fsync": "never"},
                    logging={"dir": str(tmp_path / "logs")},
                    backtest={"artifacts_dir": str(tmp_path / "artifacts" / "backtest")},
                    optimize={"artifacts_dir": str(tmp_path / "artifacts" / "optuna")},
                    ml={"artifacts_dir": str(tmp_path / "artifacts" / "models")},
                    exchange={"api_key": "KEY-must-not-leak", "api_secret": "SECRET-must-not-leak"})


@dataclass
class Api:
    ctx: ApiContext
    server: ServerThread
    url: str
    tokens: dict[str, str]  # user -> access token

    def client(self, user: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)


def make_ctx(tmp_path: Path, **api: Any) -> ApiContext:
    users = UserStore(tmp_path / "api_users.json")
    users.set_user("viewer", PASSWORDS["viewer"], Role.READ)
    users.set_user("boss", PASSWORDS["boss"], Role.TRADER)
    settings = ApiSettings(**{"port": 0, "secret": SecretStr(SECRET), "users_file": tmp_path / "api_users.json",
                              "state_dir": tmp_path / "bot", **api})
    return ApiContext(app_settings(tmp_path), settings)


def start_api(ctx: ApiContext) -> Api:
    server = ServerThread(ctx).start()
    url = f"http://127.0.0.1:{server.port}/api/v1"
    assert ctx.tokens is not None
    tokens = {u: ctx.tokens.pair(u, Role.TRADER if u == "boss" else Role.READ)["access_token"] for u in PASSWORDS}
    return Api(ctx, server, url, tokens)


@pytest.fixture
def api(tmp_path: Path) -> Any:
    """The API with no bot running (its state folder does not exist yet)."""
    a = start_api(make_ctx(tmp_path))
    yield a
    a.server.stop()


@pytest.fixture
def paper_api(tmp_path: Path, four_pairs: dict) -> Any:  # noqa: F811
    """The API attached to a running paper bot (like `thunes bot run --api`)."""
    settings = bot_settings(tmp_path / "bot", bars=400, risk={"cool_down_minutes": 0})
    settings = settings.model_copy(update={"local": LocalReplaySettings(bars=400, speed=3000)})
    ctx = make_ctx(tmp_path)
    session = open_bot(BotRunRequest(settings=settings, audit_fsync="never"), ctx.settings, frames=four_pairs)
    ctx.runner.attach(session)
    a = start_api(ctx)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", session.run()), daemon=True)
    thread.start()
    wait_for(lambda: control_file(settings.state_dir).exists(), what="the control socket")
    yield a, session, thread, out
    session.bot.request_stop("test teardown")
    thread.join(30)
    session.close()
    a.server.stop()
