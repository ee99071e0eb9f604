"""A local fake of the Telegram Bot API, for tests and offline trials (never for production).

It speaks the real wire protocol on 127.0.0.1, so the real python-telegram-bot ``Application`` polls it
exactly as it polls Telegram (``base_url=server.base_url``)::

    test ── push_message(user, "/status") ──> FakeTelegram ──(getUpdates)──> Application (polling)
    test <── wait_for(sent text ...) ─────── FakeTelegram <──(sendMessage)── command handler

Methods: ``getMe``, ``getUpdates`` (long poll with ``offset``/``timeout``/``limit``), ``sendMessage``,
``editMessageText``, ``answerCallbackQuery``, plus the housekeeping calls PTB makes at start
(``deleteWebhook``, ``setMyCommands``, ``getMyCommands``, ``close``/``logOut`` refused). Telegram's own
rules that matter to a client are enforced: a text longer than 4096 characters or an empty text is a
400, an unknown token a 401, an unknown method a 404.

Faults to inject, per method, for the next N calls: ``fail("sendMessage", retry_after=1)`` answers 429
with ``parameters.retry_after`` (Telegram's flood control, PTB raises ``RetryAfter``);
``fail("sendMessage", status=502)`` answers a gateway error (PTB raises ``NetworkError``).

Every call is recorded (:attr:`calls`); messages the bot sent or edited are in :attr:`messages` (by id)
and :attr:`sent` (in order). Run it by hand with ``python -m thunes.ops.telegram.fake_server``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["MAX_TEXT", "FakeTelegram", "SentMessage"]

MAX_TEXT = 4096  # Telegram's limit on a message text, in characters (UTF-16 units for non-BMP text)
BOT_USER = {"id": 7_000_000_001, "is_bot": True, "first_name": "THUNES", "username": "thunes_test_bot",
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}
_TEXT_FIELDS = {"text", "callback_query_id", "parse_mode"}  # sent as plain strings, never JSON-decoded


@dataclass(slots=True)
class SentMessage:
    """One message as the bot left it (``edits`` counts editMessageText calls on it)."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None = None
    disable_notification: bool = False
    edits: int = 0

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b.get("text", ""), b.get("callback_data", "")) for row in rows for b in row]


@dataclass(slots=True)
class _Fault:
    retry_after: int | None
    status: int | None
    times: int


@dataclass(slots=True)
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    confirmed: int = 0  # highest update_id the client acknowledged with offset


class FakeTelegram:
    """The fake Bot API server, running on its own thread and event loop (``start()`` / ``stop()``)."""

    def __init__(self, *, token: str = "123456:TEST-TOKEN", host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: dict[int, SentMessage] = {}
        self.sent: list[SentMessage] = []  # sendMessage results in order (edits update them in place)
        self.answers: list[dict[str, Any]] = []  # answerCallbackQuery calls
        self._faults: dict[str, list[_Fault]] = {}
        self._state = _State()
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._closing = False

    # -- life cycle --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What to give PTB as ``base_url`` (it appends the token and the method)."""
        return f"http://{self.host}:{self.port}/bot"

    def start(self) -> FakeTelegram:
        self._thread = threading.Thread(target=self._run, name="fake-telegram", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Telegram server did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._new_update = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        self._closing = True
        assert self._new_update is not None and self._runner is not None
        self._new_update.set()  # wakes the long polls still waiting: they answer at once
        await self._runner.cleanup()
        asyncio.get_running_loop().stop()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test does --------------------------------------------------------------------------
    def fail(self, method: str, *, retry_after: int | None = None, status: int | None = None, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail (429 with retry_after, or HTTP ``status``)."""
        if (retry_after is None) == (status is None):
            raise ValueError("give exactly one of retry_after or status")
        with self._cond:
            self._faults.setdefault(method, []).append(_Fault(retry_after, status, times))

    def push_message(self, user_id: int, text: str, *, username: str | None = None,
                     chat_id: int | None = None) -> int:
        """Queue an update: ``user_id`` wrote ``text`` to the bot (in a private chat unless ``chat_id``)."""
        user = {"id": user_id, "is_bot": False, "first_name": username or f"user{user_id}",
                "username": username or f"user{user_id}"}
        chat = {"id": chat_id or user_id, "type": "private" if chat_id is None else "group"}
        message: dict[str, Any] = {"message_id": next(self._ids), "date": int(time.time()), "chat": chat,
                                   "from": user, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self._push({"message": message})

    def push_callback(self, user_id: int, message: SentMessage, data: str, *, username: str | None = None) -> int:
        """Queue an update: ``user_id`` pressed the inline button carrying ``data`` under ``message``."""
        user = {"id": user_id, "is_bot": False, "first_name": username or f"user{user_id}",
                "username": username or f"user{user_id}"}
        msg = {"message_id": message.message_id, "date": int(time.time()), "chat": {"id": message.chat_id,
               "type": "private"}, "from": BOT_USER, "text": message.text}
        query = {"id": str(next(self._ids)), "from": user, "message": msg, "chat_instance": "1", "data": data}
        return self._push({"callback_query": query})

    def _push(self, body: dict[str, Any]) -> int:
        uid = next(self._update_ids)
        with self._cond:
            self._state.updates.append({"update_id": uid, **body})
        if self._loop is not None and self._new_update is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)
        return uid

    def wait_for(self, predicate: Callable[[FakeTelegram], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Block until ``predicate(self)`` is truthy (re-checked on every call the bot makes); returns it."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = end - time.monotonic()
                if left <= 0:
                    texts = [m.text[:80] for m in self.sent[-5:]]
                    raise AssertionError(f"timed out waiting for {what or predicate}; last messages: {texts}")
                self._cond.wait(min(left, 0.2))

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        with self._cond:
            return [m for m in self.sent if m.chat_id == chat_id]

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        with self._cond:
            return [p for m, p in self.calls if m == method]

    # -- the HTTP side -----------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                raw.update(await request.json())
            else:
                raw.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        out: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, str) and k not in _TEXT_FIELDS:
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            out[k] = v
        return out

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        with self._cond:
            self.calls.append((method, params))
            self._cond.notify_all()
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        fault = self._take_fault(method)
        if fault is not None:
            if fault.retry_after is not None:
                return _error(429, f"Too Many Requests: retry after {fault.retry_after}",
                              parameters={"retry_after": fault.retry_after})
            return _error(int(fault.status or 502), "Bad Gateway")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            result = await handler(params)
        except _ApiError as exc:
            return _error(exc.code, exc.description)
        finally:
            with self._cond:
                self._cond.notify_all()
        return web.json_response({"ok": True, "result": result})

    def _take_fault(self, method: str) -> _Fault | None:
        with self._cond:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault

    async def _m_getMe(self, p: dict[str, Any]) -> Any:  # noqa: N802 - Bot API method names
        return BOT_USER

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:  # noqa: N802
        if p.get("drop_pending_updates"):
            with self._cond:
                self._state.updates.clear()
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> Any:  # noqa: N802
        self.commands = p.get("commands", [])
        return True

    async def _m_getMyCommands(self, p: dict[str, Any]) -> Any:  # noqa: N802
        return getattr(self, "commands", [])

    async def _m_getUpdates(self, p: dict[str, Any]) -> Any:  # noqa: N802
        offset = int(p.get("offset") or 0)
        limit = int(p.get("limit") or 100)
        timeout = float(p.get("timeout") or 0)
        end = time.monotonic() + timeout
        assert self._new_update is not None
        while True:
            with self._cond:
                if offset:
                    self._state.confirmed = max(self._state.confirmed, offset - 1)
                    self._state.updates = [u for u in self._state.updates if u["update_id"] >= offset]
                pending = self._state.updates[:limit]
            if pending or self._closing or time.monotonic() >= end:
                return pending
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), max(0.0, end - time.monotonic()))
            except TimeoutError:
                pass

    def _message(self, chat_id: Any, text: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        if chat_id in (None, ""):
            raise _ApiError(400, "Bad Request: chat_id is empty")

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:  # noqa: N802
        self._message(p.get("chat_id"), p.get("text"))
        msg = SentMessage(message_id=next(self._ids), chat_id=int(p["chat_id"]), text=p["text"],
                          reply_markup=p.get("reply_markup") or None,
                          disable_notification=bool(p.get("disable_notification", False)))
        with self._cond:
            self.messages[msg.message_id] = msg
            self.sent.append(msg)
        return _message_json(msg)

    async def _m_editMessageText(self, p: dict[str, Any]) -> Any:  # noqa: N802
        self._message(p.get("chat_id"), p.get("text"))
        with self._cond:
            msg = self.messages.get(int(p.get("message_id") or 0))
            if msg is None or msg.chat_id != int(p["chat_id"]):
                raise _ApiError(400, "Bad Request: message to edit not found")
            if msg.text == p["text"] and msg.reply_markup == (p.get("reply_markup") or None):
                raise _ApiError(400, "Bad Request: message is not modified")
            msg.text = p["text"]
            msg.reply_markup = p.get("reply_markup") or None
            msg.edits += 1
        return _message_json(msg)

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:  # noqa: N802
        with self._cond:
            self.answers.append(p)
        return True

    async def _m_close(self, p: dict[str, Any]) -> Any:
        raise _ApiError(400, "Bad Request: not supported by the fake server")

    _m_logOut = _m_close  # noqa: N815


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _error(code: int, description: str, *, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def _message_json(msg: SentMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"message_id": msg.message_id, "date": int(time.time()), "from": BOT_USER,
                           "chat": {"id": msg.chat_id, "type": "private"}, "text": msg.text}
    if msg.reply_markup:
        out["reply_markup"] = msg.reply_markup
    return out


def main() -> None:  # pragma: no cover - manual trials
    import argparse

    ap = argparse.ArgumentParser(description="Fake Telegram Bot API on 127.0.0.1 (tests and offline trials).")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--token", default="123456:TEST-TOKEN")
    args = ap.parse_args()
    server = FakeTelegram(token=args.token, port=args.port).start()
    print(f"fake Telegram Bot API at {server.base_url} (token {args.token}); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
