"""Fixtures of the Telegram tests: the fake Bot API server, a control bot polling it, a running bot to steer.

Everything is real except Telegram itself: python-telegram-bot's Application polls the project's fake
Bot API server (thunes.ops.telegram.fake_server) on 127.0.0.1, and the commands reach a real bot through
its control socket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.live.conftest import app_settings, four_pairs  # noqa: F401 - fixture
from thunes.config import RiskSettings
from thunes.live.config import BotSettings, JobSettings, LocalReplaySettings
from thunes.live.control import control_file
from thunes.ops.telegram.control import ControlTarget, TelegramControl
from thunes.ops.telegram.fake_server import FakeTelegram
from thunes.ops.telegram.settings import TelegramBotSettings, TelegramUser
from thunes.strategies import register_strategy
from thunes.strategies.base import Signals, Strategy

TRADER, VIEWER, STRANGER = 1001, 1002, 6666
ALERTS = -100777  # a group chat for alerts


class HoldForTests(Strategy):
    """Buys on the first candle and never sells: a position that stays open until a force-exit."""

    name = "hold_for_tests"

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, candles: pd.DataFrame) -> Signals:
        idx = candles.index
        return Signals(entries=pd.Series(True, index=idx), exits=pd.Series(False, index=idx))


register_strategy(HoldForTests)


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fake_tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def tg_settings(server: FakeTelegram, **extra: Any) -> TelegramBotSettings:
    users = (TelegramUser(id=TRADER, role="trader", name="alice"), TelegramUser(id=VIEWER, role="viewer", name="bob"))
    return TelegramBotSettings(token=server.token, base_url=server.base_url, users=users, poll_timeout_s=1,
                               **extra)


def start_control(server: FakeTelegram, state_dir: Path, **kw: Any) -> TelegramControl:
    settings = kw.pop("settings", None) or tg_settings(server)
    target = ControlTarget(state_dir=state_dir, risk_settings=RiskSettings(), log_path=kw.pop("log_path", None))
    control = TelegramControl(settings, target, **kw).start()
    server.wait_for(lambda s: s.calls_of("getUpdates"), what="the first getUpdates")
    return control


def ask(server: FakeTelegram, user: int, text: str, *, timeout: float = 20.0, count: int = 1) -> list[Any]:
    """``user`` sends ``text``; returns the ``count`` new messages the bot sent to that user's chat."""
    before = len(server.messages_to(user))
    server.push_message(user, text)
    server.wait_for(lambda s: len(s.messages_to(user)) >= before + count, timeout=timeout, what=f"reply to {text}")
    return server.messages_to(user)[before:]


@pytest.fixture
def running_bot(tmp_path: Path, four_pairs: dict[str, Any]) -> Iterator[tuple[Any, Path, Any]]:  # noqa: F811
    """Two pairs held from their first candle, replayed at about 0.2 s per candle, with the control socket.

    Yields (session, state_dir, start): ``start()`` runs the bot in a thread (after the test subscribed
    what it wants to the bus) and returns when its control socket answers."""
    from thunes.services.bot import BotRunRequest, open_bot

    settings = BotSettings(exchange="local", pairs=["BTC/USDT", "ETH/USDT"], strategy="hold_for_tests",
                           timeframe="5m", quote_per_trade=Decimal("100"), state_dir=tmp_path / "bot",
                           risk={"cool_down_minutes": 0}, jobs=JobSettings(reconcile_minutes=60),
                           local=LocalReplaySettings(bars=600, speed=1500))
    frames = {s: four_pairs[s] for s in ("BTC/USDT", "ETH/USDT")}
    session = open_bot(BotRunRequest(settings=settings, audit_fsync="never"), app_settings(tmp_path), frames=frames)
    thread = threading.Thread(target=session.run, daemon=True)

    def start() -> None:
        thread.start()
        wait_until(lambda: control_file(settings.state_dir).exists(), what="the control socket")

    yield session, settings.state_dir, start
    session.bot.request_stop("test teardown")
    if thread.is_alive():
        thread.join(30)
    session.close()
