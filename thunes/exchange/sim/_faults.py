"""Faults the local exchange can inject at run time, so that clients are tested against bad days.

Switched from Python (``sim.faults.set(...)``) or over HTTP (``POST /admin/faults`` with the same fields as
JSON; ``DELETE /admin/faults`` clears). Counted faults (``http_error_count``, ``storm_count``,
``error_code_count``, ``lose_order_responses``, ``malformed_frames``) apply to that many next requests/frames
and then stop; a count of -1 means "until cleared". One-shot websocket actions are methods:
:meth:`Faults.drop_ws` and :meth:`Faults.server_shutdown`.

=====================  ===============================================================  ========================
field                  effect                                                           what ccxt raises
=====================  ===============================================================  ========================
``delay_ms``           every REST answer is delayed (past the client timeout: timeout)  RequestTimeout
``stall``              REST requests hang until the fault is cleared (max 60 s)         RequestTimeout
``http_error``         5xx answers: 500/502/503 text, 504 empty                         ExchangeNotAvailable /
                                                                                        RequestTimeout (504)
``storm_status``       429 (-1003) or 418 (IP ban) answers with Retry-After              DDoSProtection
``clock_skew_ms``      the server clock used for signatures/``/time`` is shifted         InvalidNonce (-1021)
``lose_order_responses`` an order is accepted and executed, then the answer is lost:    RequestTimeout (504) /
                       ``lose_mode`` "504" (empty gateway timeout) or "drop" (socket     NetworkError (drop)
                       closed without an answer)
``error_code``         Binance's own server-side errors as JSON: -1001 (503 internal     OperationFailed (-1001),
                       error), -1006/-1007 (400, execution status unknown), -1008 (503  RequestTimeout (-1007),
                       overloaded); ``error_code_count`` answers                        ExchangeError (others)
``malformed_frames``   the next websocket frames are not valid JSON                     (ccxt.pro skips them)
``paths``              restrict the HTTP faults to request paths containing one of these
=====================  ===============================================================  ========================
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thunes.core.errors import ConfigError

__all__ = ["FaultState", "Faults"]


@dataclass(slots=True)
class FaultState:
    delay_ms: int = 0
    stall: bool = False
    http_error: int = 0
    http_error_count: int = -1
    storm_status: int = 0
    storm_count: int = -1
    storm_retry_after: int = 1
    clock_skew_ms: int = 0
    error_code: int = 0
    error_code_count: int = -1
    lose_order_responses: int = 0
    lose_mode: str = "504"
    malformed_frames: int = 0
    paths: list[str] = field(default_factory=list)


_FIELDS = {f.name for f in dataclasses.fields(FaultState)}

# Binance's server-side failures (errors-codes.md): HTTP status and message, as the real API sends them.
SERVER_ERRORS: dict[int, tuple[int, str]] = {
    -1001: (503, "Internal error; unable to process your request. Please try again."),
    -1006: (400, "An unexpected response was received from the message bus. Execution status unknown."),
    -1007: (400, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
    -1008: (503, "Server is currently overloaded with other requests. Please try again in a few minutes."),
}


class Faults:
    """Thread-safe fault switches shared by the HTTP middleware and the websocket hub."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()
        self.cleared = threading.Event()
        self._ws_actions: list[Callable[[str], None]] = []

    def set(self, **changes: Any) -> FaultState:
        """Switch faults on or off; unknown names raise ``ConfigError``. Returns the new state."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise ConfigError(f"unknown fault(s) {unknown}; known: {sorted(_FIELDS)}")
        if "http_error" in changes and changes["http_error"] not in (0, 500, 502, 503, 504):
            raise ConfigError(f"http_error must be 0, 500, 502, 503 or 504, got {changes['http_error']}")
        if "storm_status" in changes and changes["storm_status"] not in (0, 429, 418):
            raise ConfigError(f"storm_status must be 0, 429 or 418, got {changes['storm_status']}")
        if "error_code" in changes and changes["error_code"] not in (0, *SERVER_ERRORS):
            raise ConfigError(f"error_code must be 0 or one of {sorted(SERVER_ERRORS)}, got {changes['error_code']}")
        if "lose_mode" in changes and changes["lose_mode"] not in ("504", "drop"):
            raise ConfigError(f"lose_mode must be '504' or 'drop', got {changes['lose_mode']!r}")
        with self._lock:
            for name, value in changes.items():
                setattr(self._state, name, value)
            if self._state.stall:
                self.cleared.clear()
            else:
                self.cleared.set()
            return dataclasses.replace(self._state)

    def clear(self) -> None:
        with self._lock:
            self._state = FaultState()
            self.cleared.set()

    @property
    def state(self) -> FaultState:
        with self._lock:
            return dataclasses.replace(self._state)

    def applies(self, path: str) -> bool:
        paths = self.state.paths
        return not paths or any(p in path for p in paths)

    def take(self, counter: str) -> bool:
        """Consume one unit of a counted fault; True if it fired."""
        with self._lock:
            value = getattr(self._state, counter)
            if value == 0:
                return False
            if value > 0:
                setattr(self._state, counter, value - 1)
            return True

    def _take_switch(self, name: str, count: str) -> int:
        """The value of switch ``name`` (0: off), spending one of ``count`` (-1: until cleared)."""
        with self._lock:
            value: int = getattr(self._state, name)
            if value and getattr(self._state, count) > 0:
                left = getattr(self._state, count) - 1
                setattr(self._state, count, left)
                if left == 0:
                    setattr(self._state, name, 0)
            return value

    def take_http_error(self) -> int:
        return self._take_switch("http_error", "http_error_count")

    def take_error_code(self) -> int:
        return self._take_switch("error_code", "error_code_count")

    def take_storm(self) -> tuple[int, int]:
        retry = self.state.storm_retry_after
        return self._take_switch("storm_status", "storm_count"), retry

    # -- websocket one-shots ---------------------------------------------------------------------------
    def on_ws_action(self, callback: Callable[[str], None]) -> None:
        self._ws_actions.append(callback)

    def drop_ws(self) -> None:
        """Close every websocket connection abruptly (market streams and the WS-API)."""
        for cb in self._ws_actions:
            cb("drop")

    def server_shutdown(self) -> None:
        """Send Binance's ``serverShutdown`` event on every market stream, then close the connections."""
        for cb in self._ws_actions:
            cb("shutdown")
