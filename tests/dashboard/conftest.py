"""The dashboard in a real browser: Chromium from Debian's packages (``scripts/install-system-deps.sh``) driven by
Python Playwright (never ``playwright install``: no browser download), against a real uvicorn API steering a
paper bot (four pairs on the local exchange, as in tests/api).

Screenshots of every page go to ``$THUNES_DASHBOARD_SHOTS`` (default: ``<tmp>/dashboard-shots``), the test
artifacts; ``THUNES_DASHBOARD_README=1`` also writes the README's ``docs/img/dashboard-{bot,chart}.png``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the API needs the api extra: pip install -e '.[api]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (the dev extra)")

from tests.api.conftest import PASSWORDS, make_ctx, start_api, wait_for  # noqa: E402
from tests.live.conftest import PAIRS, ROWS, bot_settings  # noqa: E402
from thunes.data.samples import load_sample_candles  # noqa: E402
from thunes.data.store import store_from_settings  # noqa: E402
from thunes.live.config import LocalReplaySettings  # noqa: E402
from thunes.live.control import control_file  # noqa: E402
from thunes.services.bot import BotRunRequest, open_bot  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
STORED_1H = 9000  # a year of 1h candles and a bit
GAP_AT = 4000


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = Path(os.environ.get("THUNES_DASHBOARD_SHOTS") or Path(tempfile.gettempdir()) / "dashboard-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped on purpose: while sync_playwright() is open its event loop counts as running in the main
    thread, so a session-scoped browser breaks every later test that calls asyncio.run()."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: run scripts/install-system-deps.sh (Debian package chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The API + a paper bot running for the whole module (about 0.15 s per candle, ~90 s of candles)."""
    tmp = tmp_path_factory.mktemp("dash")
    frames = {s: load_sample_candles(s, "5m").frame.iloc[:ROWS] for s in PAIRS}
    settings = bot_settings(tmp / "bot", bars=600, risk={"cool_down_minutes": 0})
    settings = settings.model_copy(update={"local": LocalReplaySettings(bars=600, speed=2000)})
    ctx = make_ctx(tmp, login_attempts=1000)  # every test signs in from 127.0.0.1
    with store_from_settings(ctx.settings.data) as store:  # 1h candles in the store: Prepare, Train, Forecast
        hourly = load_sample_candles("BTC/USDT", "1h").frame.iloc[-STORED_1H:]
        store.insert("BTC/USDT", "1h", hourly.drop(hourly.index[GAP_AT:GAP_AT + 5]))  # a known 5-bar gap
    session = open_bot(BotRunRequest(settings=settings, audit_fsync="never"), ctx.settings, frames=frames)
    ctx.runner.attach(session)
    api = start_api(ctx)
    thread = threading.Thread(target=session.run, daemon=True)
    thread.start()
    wait_for(lambda: control_file(settings.state_dir).exists(), what="the control socket")
    yield api
    session.bot.request_stop("test teardown")
    thread.join(30)
    session.close()
    api.server.stop()


class Page:
    """A signed-in browser tab that records console errors and failed pages."""

    def __init__(self, page: Any, base: str) -> None:
        self.page, self.base, self.errors = page, base, []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def login(self, user: str, password: str | None = None) -> None:
        self.page.goto(f"{self.base}/ui/")
        self.page.fill("input[name=username]", user)
        self.page.fill("input[name=password]", password or PASSWORDS[user])
        self.page.click("#login button[type=submit]")

    def open(self, name: str, query: str = "") -> Any:
        """Go to a page and wait until it has rendered (``data-ready``)."""
        self.page.goto(f"{self.base}/ui/#/{name}{query}")
        self.page.wait_for_selector(f"#page-{name}[data-ready]", timeout=20_000)
        return self.page.locator(f"#page-{name}")


@pytest.fixture
def tab(browser: Any, dash: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield Page(page, dash.url.removesuffix("/api/v1"))
    context.close()
