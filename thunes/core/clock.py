"""Clocks are injected, never read from globals, so that tests and replays control time."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "LiveClock", "SimulatedClock"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in epoch milliseconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale, for timeouts and rate limits."""
        ...

    def sleep(self, seconds: float) -> None: ...


class LiveClock:
    """Wall-clock time."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimulatedClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly. Thread-safe."""

    def __init__(self, start_ms: int = 0) -> None:
        self._ms = int(start_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._ms

    def monotonic(self) -> float:
        with self._lock:
            return self._ms / 1000.0

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._ms += int(round(seconds * 1000))

    def set_ms(self, ms: int) -> None:
        with self._lock:
            self._ms = int(ms)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)
