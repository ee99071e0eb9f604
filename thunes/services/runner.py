"""Run one bot in a background thread of a long-lived process (the API server), and know its event bus.

``thunes bot run`` owns its bot in the foreground; a server that must *start* a bot on request (``POST
/api/v1/bot/start``) owns it here instead: :meth:`BotRunner.start` assembles it with
:func:`thunes.services.bot.open_bot` (the same checks as the CLI: live confirmations, keys, caps) and runs
it on its own thread; the control socket is served as usual, so every steering service works on it.
``thunes bot run --api`` hands its own session over with :meth:`BotRunner.attach` instead.

Listeners (:meth:`on_bus`) are told of each new bot's :class:`~thunes.core.events.EventBus`, which is how
the API's event stream follows a bot started after the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError
from thunes.core.events import EventBus

__all__ = ["BotAlreadyRunning", "BotRunner", "BotStartSpec", "RunnerStatus", "run_request"]

log = logging.getLogger(__name__)


class BotAlreadyRunning(ConfigError):
    """A bot is already running in this process (stop it first)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerStatus:
    running: bool
    state_dir: str | None
    owned: bool  # started by this runner (False: attached, or none)
    stop_reason: str | None
    error: str | None


class BotRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._thread: threading.Thread | None = None
        self._owned = False
        self._result: Any = None
        self._error: str | None = None
        self._listeners: list[Callable[[EventBus], None]] = []

    def on_bus(self, listener: Callable[[EventBus], None]) -> None:
        self._listeners.append(listener)
        if self._session is not None:
            listener(self._session.bot.bus)

    def _announce(self, bus: EventBus) -> None:
        for listener in self._listeners:
            try:
                listener(bus)
            except Exception:  # noqa: BLE001 - a listener never stops a bot from starting
                log.warning("bus listener failed", exc_info=True)

    @property
    def running(self) -> bool:
        t, session = self._thread, self._session
        if session is None:
            return False
        if t is not None:
            return t.is_alive()
        from thunes.core.events import BotState

        return session.bot.state is not BotState.STOPPED  # attached: running until its bot has stopped

    @property
    def state_dir(self) -> Path | None:
        return None if self._session is None else Path(self._session.stack.state_dir)

    def attach(self, session: Any) -> None:
        """Follow a session run by someone else (``thunes bot run --api``)."""
        with self._lock:
            self._session, self._thread, self._owned = session, None, False
        self._announce(session.bot.bus)

    def start(self, request: Any, app_settings: Any, *, frames: Any = None) -> RunnerStatus:
        from thunes.services.bot import open_bot

        with self._lock:
            if self.running:
                raise BotAlreadyRunning(f"a bot is already running on {self.state_dir}; stop it first")
            from thunes.services.bot import bot_status

            target = Path(request.settings.state_dir)
            if target.exists() and bot_status(target).running:
                raise BotAlreadyRunning(f"a bot is already running on {target}; stop it first")
            session = open_bot(request, app_settings, frames=frames)
            self._session, self._owned, self._result, self._error = session, True, None, None
            self._thread = threading.Thread(target=self._run, args=(session,), name="thunes-bot", daemon=True)
        self._announce(session.bot.bus)
        self._thread.start()
        return self.status()

    def _run(self, session: Any) -> None:
        try:
            self._result = session.run()
        except Exception as exc:  # noqa: BLE001 - reported by status(); the server goes on
            log.exception("the bot stopped on an error")
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            session.close()

    def status(self) -> RunnerStatus:
        r = self._result
        return RunnerStatus(running=self.running, state_dir=None if self.state_dir is None else str(self.state_dir),
                            owned=self._owned, stop_reason=None if r is None else r.report.stop_reason,
                            error=self._error)

    def stop(self, reason: str = "stop requested by operator", timeout: float = 30.0) -> None:
        """Stop an owned bot and wait for its thread (used at server shutdown)."""
        session, thread = self._session, self._thread
        if session is None or thread is None:
            return
        session.bot.request_stop(reason)
        thread.join(timeout)


@dataclass(frozen=True, slots=True, kw_only=True)
class BotStartSpec:
    """What ``thunes bot run``'s options say, as a value (the API's start body)."""

    config: Path | None = None
    pairs: tuple[str, ...] | None = None
    strategy: str | None = None
    params: dict[str, Any] | None = None
    timeframe: str | None = None
    exchange: str | None = None
    bars: int | None = None
    speed: float | None = None
    synthetic: bool = False
    state_dir: Path | None = None
    live: bool = False
    understood: bool = False
    max_quote: Any = None  # Decimal
    duration_s: float | None = None
    max_candles: int | None = None


def run_request(spec: BotStartSpec, *, now: Callable[[], str] | None = None) -> Any:
    """The :class:`~thunes.services.bot.BotRunRequest` for ``spec``, with the CLI's defaults: the config file,
    then the options; the in-process local exchange gets a new ``artifacts/bot/<UTC time>`` folder."""
    import time
    from decimal import Decimal

    from thunes.live.config import load_bot_settings
    from thunes.services.bot import BotRunRequest
    from thunes.services.safety import LiveConfirmation

    overrides: dict[str, Any] = {"exchange": spec.exchange, "strategy": spec.strategy, "timeframe": spec.timeframe,
                                 "state_dir": spec.state_dir}
    if spec.pairs:
        overrides["pairs"] = list(spec.pairs)
    if spec.params:
        overrides["params"] = dict(spec.params)
    settings = load_bot_settings(spec.config, **overrides)
    local = settings.local.model_copy(update={k: v for k, v in {"bars": spec.bars, "speed": spec.speed,
                                                                "synthetic": spec.synthetic or None}.items()
                                              if v is not None})
    settings = settings.model_copy(update={"local": local})
    if settings.exchange == "local" and settings.local.url is None and "state_dir" not in settings.model_fields_set:
        stamp = (now or (lambda: time.strftime("%Y%m%d-%H%M%S", time.gmtime())))()
        settings = settings.model_copy(update={"state_dir": Path("artifacts/bot") / stamp})
    cap = Decimal(str(spec.max_quote)) if spec.max_quote is not None else None
    return BotRunRequest(settings=settings, max_candles=spec.max_candles, duration_s=spec.duration_s,
                         confirmation=LiveConfirmation(live=spec.live, understood=spec.understood), max_quote=cap)
