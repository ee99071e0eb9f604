"""Sending to Telegram: split to the length limit, retry network errors, honour flood control.

* :func:`split_text` cuts a text into pieces of at most 4096 characters (Telegram's limit), at a line
  break when there is one in the second half of the piece, else at a space, else hard.
* :class:`Outbox` sends each piece in order. ``RetryAfter`` (Telegram's flood control, HTTP 429) waits
  the time Telegram asked for and tries again (up to ``max_retry_after_s`` in all); a ``NetworkError`` or
  ``TimedOut`` is retried up to ``send_attempts`` tries with a pause doubling from 0.5 s to at most 60 s
  (10 tries ride out about three minutes without a network). A message that still cannot be
  delivered, or that Telegram refuses (``BadRequest``, ``Forbidden``), is never dropped silently: it is
  logged at ERROR with the chat and its first line, counted in ``Outbox.stats.lost``, and the error is
  raised to the caller.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

__all__ = ["MAX_MESSAGE", "Outbox", "OutboxStats", "split_text"]

log = logging.getLogger(__name__)
MAX_MESSAGE = 4096


def _units(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Pieces of ``text`` of at most ``limit`` characters, in order; joined back they give the text
    (less the line break or space each cut was made at)."""
    if not text:
        return []
    pieces: list[str] = []
    rest = text
    while _units(rest) > limit:
        cut = limit
        while _units(rest[:cut]) > limit:  # non-BMP characters count twice
            cut -= 1
        window = rest[:cut]
        at = window.rfind("\n")
        if at < cut // 2:
            at = window.rfind(" ")
        if at < cut // 2:
            pieces.append(window)
            rest = rest[cut:]
        else:
            pieces.append(window[:at])
            rest = rest[at + 1:]
    if rest:
        pieces.append(rest)
    return [p for p in pieces if p.strip()] or [text[:limit]]


@dataclass(slots=True)
class OutboxStats:
    sent: int = 0
    retried_network: int = 0
    retried_flood: int = 0
    lost: int = 0
    last_error: str | None = None


def _seconds(exc: RetryAfter) -> float:
    value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class Outbox:
    """Sends texts through a PTB ``Bot`` with splitting and retries (module docstring)."""

    def __init__(self, bot: Any, *, attempts: int = 10, max_retry_after_s: float = 600.0,
                 backoff_s: float = 0.5, max_backoff_s: float = 60.0) -> None:
        self.bot = bot
        self.attempts = attempts
        self.max_retry_after_s = max_retry_after_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = OutboxStats()

    async def send(self, chat_id: int | str, text: str, *, silent: bool = False, reply_markup: Any = None) -> list[Any]:
        """Send ``text`` (split when long); the buttons go on the last piece. Returns the sent messages."""
        pieces = split_text(text)
        out = []
        for i, piece in enumerate(pieces):
            markup = reply_markup if i == len(pieces) - 1 else None
            out.append(await self.call(f"message to {chat_id}", piece, self.bot.send_message, chat_id=chat_id,
                                        text=piece, disable_notification=silent, reply_markup=markup))
        return out

    async def edit(self, chat_id: int | str, message_id: int, text: str, *, reply_markup: Any = None) -> Any:
        """Replace a message's text (cut to the limit: an edited message cannot grow into two)."""
        piece = split_text(text)[0] if text else "-"
        return await self.call(f"edit of {chat_id}/{message_id}", piece, self.bot.edit_message_text,
                                chat_id=chat_id, message_id=message_id, text=piece, reply_markup=reply_markup)

    async def call(self, what: str, shown: str, fn: Any, /, **kwargs: Any) -> Any:
        """``await fn(**kwargs)`` with the retry rules; ``what``/``shown`` name it in the log if it is lost."""
        network_tries = 0
        waited = 0.0
        while True:
            try:
                result = await fn(**kwargs)
                self.stats.sent += 1
                return result
            except RetryAfter as exc:
                pause = _seconds(exc)
                if waited + pause > self.max_retry_after_s:
                    self._lost(what, shown, exc)
                    raise
                self.stats.retried_flood += 1
                log.warning("telegram flood control on %s: waiting %.1f s as asked", what, pause)
                waited += pause
                await asyncio.sleep(pause)
            except BadRequest as exc:  # a NetworkError subclass in PTB, but retrying cannot help
                self._lost(what, shown, exc)
                raise
            except (NetworkError, TimedOut) as exc:  # TimedOut is a NetworkError; named for the reader
                network_tries += 1
                if network_tries >= self.attempts:
                    self._lost(what, shown, exc)
                    raise
                self.stats.retried_network += 1
                pause = min(self.max_backoff_s, self.backoff_s * 2 ** (network_tries - 1))
                log.warning("telegram network error on %s (%s); retry %d in %.1f s", what, exc, network_tries, pause)
                await asyncio.sleep(pause)
            except TelegramError as exc:
                self._lost(what, shown, exc)
                raise

    def _lost(self, what: str, text: str, exc: Exception) -> None:
        self.stats.lost += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        first = text.splitlines()[0][:120] if text else ""
        log.error("telegram %s NOT delivered (%s): %r", what, self.stats.last_error, first)
