"""The local control socket: how ``thunes bot status|pause|resume|stop|force-exit|reload|jobs`` reach a
running bot (until the REST API of the sibling issue takes over; both call the same bot commands).

A TCP server on 127.0.0.1 (an ephemeral port) speaks one JSON object per line::

    -> {"token": "...", "command": "pause", "args": {"reason": "..."}}
    <- {"ok": true, "result": {...}}      or      {"ok": false, "error": "one line"}

Where to connect is written to ``<state_dir>/control.json`` (port, token, pid), created with mode 0600:
only the user who runs the bot can read the token, and a request without it is refused. The file is
removed at a clean stop; a stale one (the process is gone) is reported as "the bot is not running".
Commands run on the bot's own thread between two candles (:meth:`Bot.submit`), never concurrently
with an order.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError, ThunesError
from thunes.files import atomic_write

__all__ = ["BotNotRunning", "ControlServer", "control_file", "send_command"]

_MAX_LINE = 64 * 1024


class BotNotRunning(ThunesError):
    """No bot answers on this state folder's control socket."""


def control_file(state_dir: Path) -> Path:
    return Path(state_dir) / "control.json"


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class ControlServer:
    """Serves :meth:`Bot.submit` on loopback; ``start()`` writes control.json, ``stop()`` removes it."""

    def __init__(self, bot: Any, state_dir: Path, *, timeout_s: float = 30.0) -> None:
        self.bot = bot
        self.path = control_file(state_dir)
        self.token = secrets.token_hex(16)
        self.timeout_s = timeout_s
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ControlServer:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(_MAX_LINE)
                reply = outer._answer(line)
                self.wfile.write((json.dumps(reply, default=str) + "\n").encode())

        self._server = _Server(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="bot-control", daemon=True)
        self._thread.start()
        # The token steers the bot: the file is private to the user (0600), written atomically.
        atomic_write(self.path, json.dumps({"port": port, "token": self.token, "pid": os.getpid()}), secret=True)
        return self

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line or b"{}")
        except ValueError:
            return {"ok": False, "error": "malformed request: one JSON object per line"}
        if not isinstance(req, dict) or not secrets.compare_digest(str(req.get("token", "")), self.token):
            return {"ok": False, "error": "refused: wrong or missing token"}
        args = req.get("args") or {}
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        try:
            result = self.bot.submit(str(req.get("command", "")), **args).result(timeout=self.timeout_s)
        except TimeoutError:
            return {"ok": False, "error": f"the bot did not answer within {self.timeout_s:g}s"}
        except TypeError as exc:
            return {"ok": False, "error": f"bad arguments: {exc}"}
        except ThunesError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "result": _plain(result)}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        try:
            info = json.loads(self.path.read_text())
            if info.get("token") == self.token:
                self.path.unlink()
        except (OSError, ValueError):
            pass


def send_command(state_dir: Path, command: str, *, timeout_s: float = 35.0, **args: Any) -> Any:
    """Send one command to the bot running on ``state_dir``; returns its result or raises.

    :class:`BotNotRunning` when there is no control file or nobody answers; :class:`ConfigError` with the
    bot's one-line message when the bot refuses the command.
    """
    path = control_file(state_dir)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise BotNotRunning(f"no bot is running on {state_dir} (no {path.name})") from None
    except ValueError as exc:
        raise BotNotRunning(f"{path} is unreadable: {exc}") from exc
    payload = json.dumps({"token": info.get("token"), "command": command, "args": args}) + "\n"
    try:
        with socket.create_connection(("127.0.0.1", int(info["port"])), timeout=timeout_s) as sock:
            sock.sendall(payload.encode())
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if data.endswith(b"\n"):
                    break
    except OSError as exc:
        raise BotNotRunning(f"no bot answers on {state_dir} (pid {info.get('pid')}: {exc})") from exc
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise BotNotRunning(f"the bot on {state_dir} gave no answer") from exc
    if not reply.get("ok"):
        raise ConfigError(reply.get("error") or "the bot refused the command")
    return reply.get("result")
