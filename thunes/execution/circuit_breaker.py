"""Circuit breakers: stop hammering a dependency that is failing, and let the risk manager see it.

State machine per named dependency (the exchange REST API, the market-data stream, the database)::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN   --(recovery_timeout seconds elapsed)--------> HALF_OPEN   (next call is a trial)
    HALF_OPEN --trial succeeds--> CLOSED      HALF_OPEN --trial fails--> OPEN (timer restarts)

While OPEN, calls fail at once with :class:`CircuitOpen` (a :class:`~thunes.core.errors.RetryableError`
carrying ``retry_after``) instead of reaching the dependency. Only ``half_open_max_calls`` trial calls
are admitted in HALF_OPEN; others are refused like OPEN. Which exceptions count as failures is
configurable: by default the retryable exchange errors and OS-level I/O errors. An order *rejection* is a
healthy exchange saying no and does not trip the breaker.

Time comes from an injected :class:`~thunes.core.clock.Clock` (``monotonic()``), so tests drive the
transitions with :class:`~thunes.core.clock.SimulatedClock`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, ParamSpec, TypeVar

from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import ConfigError, ExchangeUnavailable, RetryableError

__all__ = ["BreakerRegistry", "BreakerStatus", "CircuitBreaker", "CircuitOpen", "CircuitState"]

P = ParamSpec("P")
R = TypeVar("R")


class CircuitState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitOpen(ExchangeUnavailable):
    """The breaker refused the call without trying it; ``retry_after`` seconds until a trial is allowed."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open; next trial in {retry_after:.1f}s")
        self.breaker = name
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerStatus:
    name: str
    state: CircuitState
    failures: int
    opened_at: float | None
    retry_after: float


class CircuitBreaker:
    """A thread-safe circuit breaker usable as ``@breaker``, ``with breaker:`` or ``breaker.call(f)``."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        clock: Clock | None = None,
        *,
        half_open_max_calls: int = 1,
        failure_types: tuple[type[BaseException], ...] = (RetryableError, OSError, TimeoutError),
        on_change: Callable[[str, CircuitState, CircuitState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError(f"circuit breaker {name!r}: failure_threshold must be >= 1, got {failure_threshold}")
        if recovery_timeout <= 0:
            raise ConfigError(f"circuit breaker {name!r}: recovery_timeout must be > 0, got {recovery_timeout}")
        if half_open_max_calls < 1:
            raise ConfigError(f"circuit breaker {name!r}: half_open_max_calls must be >= 1")
        self.name = name
        self.failure_threshold = int(failure_threshold)
        self.recovery_timeout = float(recovery_timeout)
        self.half_open_max_calls = int(half_open_max_calls)
        self.failure_types = failure_types
        self.clock = clock or LiveClock()
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at: float | None = None
        self._trials = 0
        self._local = threading.local()  # per-thread "this call was admitted as a trial"

    # -- state ---------------------------------------------------------------------------------------
    def _set(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        if new is CircuitState.OPEN:
            self._opened_at = self.clock.monotonic()
            self._trials = 0
        elif new is CircuitState.CLOSED:
            self._failures = 0
            self._opened_at = None
            self._trials = 0
        elif new is CircuitState.HALF_OPEN:
            self._trials = 0
        if old is not new and self._on_change is not None:
            self._on_change(self.name, old, new)

    def _tick(self) -> None:
        if self._state is CircuitState.OPEN and self._opened_at is not None:
            if self.clock.monotonic() - self._opened_at >= self.recovery_timeout:
                self._set(CircuitState.HALF_OPEN)

    @property
    def state(self) -> CircuitState:
        with self._lock:
            self._tick()
            return self._state

    @property
    def is_open(self) -> bool:
        """True while calls would be refused (OPEN and not yet due for a trial)."""
        return self.state is CircuitState.OPEN

    def status(self) -> BreakerStatus:
        with self._lock:
            self._tick()
            retry = 0.0
            if self._state is CircuitState.OPEN and self._opened_at is not None:
                retry = max(0.0, self.recovery_timeout - (self.clock.monotonic() - self._opened_at))
            return BreakerStatus(name=self.name, state=self._state, failures=self._failures,
                                 opened_at=self._opened_at, retry_after=retry)

    # -- protocol ------------------------------------------------------------------------------------
    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpen`."""
        with self._lock:
            self._tick()
            if self._state is CircuitState.CLOSED:
                self._local.trial = False
                return
            if self._state is CircuitState.HALF_OPEN and self._trials < self.half_open_max_calls:
                self._trials += 1
                self._local.trial = True
                return
            retry = 0.0
            if self._opened_at is not None:
                retry = max(0.0, self.recovery_timeout - (self.clock.monotonic() - self._opened_at))
            raise CircuitOpen(self.name, retry)

    def record_success(self) -> None:
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._set(CircuitState.CLOSED)
            elif self._state is CircuitState.CLOSED:
                self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._set(CircuitState.OPEN)
                return
            if self._state is CircuitState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._set(CircuitState.OPEN)

    def reset(self) -> None:
        with self._lock:
            self._set(CircuitState.CLOSED)

    def trip(self) -> None:
        """Force the breaker open (e.g. on a 418 ban)."""
        with self._lock:
            self._set(CircuitState.OPEN)

    def _counts(self, exc: BaseException) -> bool:
        return isinstance(exc, self.failure_types) and not isinstance(exc, CircuitOpen)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        self.before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if self._counts(exc):
                self.record_failure()
            else:
                # Not a dependency failure (e.g. an order rejection): the dependency answered.
                self.record_success()
            raise
        self.record_success()
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def __enter__(self) -> CircuitBreaker:
        self.before_call()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
                 ) -> Literal[False]:
        if exc is None:
            self.record_success()
        elif self._counts(exc):
            self.record_failure()
        else:
            self.record_success()
        return False

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state})"


class BreakerRegistry:
    """Named breakers shared by the executor, the data feed and the risk manager (which reads them)."""

    def __init__(self, clock: Clock | None = None, *, failure_threshold: int = 5,
                 recovery_timeout: float = 30.0) -> None:
        self.clock = clock or LiveClock()
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, **kwargs: Any) -> CircuitBreaker:
        """The breaker called ``name``, created with the registry defaults on first use."""
        with self._lock:
            if name not in self._breakers:
                kwargs.setdefault("failure_threshold", self.failure_threshold)
                kwargs.setdefault("recovery_timeout", self.recovery_timeout)
                self._breakers[name] = CircuitBreaker(name, clock=self.clock, **kwargs)
            return self._breakers[name]

    def add(self, breaker: CircuitBreaker) -> CircuitBreaker:
        with self._lock:
            self._breakers[breaker.name] = breaker
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            return iter(list(self._breakers.values()))

    def open_names(self) -> list[str]:
        return [b.name for b in self if b.is_open]
