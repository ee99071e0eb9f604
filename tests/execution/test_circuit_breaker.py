"""Circuit breaker transitions driven by an injected clock."""

from __future__ import annotations

import threading

import pytest

from thunes.core.clock import SimulatedClock
from thunes.core.errors import ExchangeUnavailable, InsufficientFunds
from thunes.execution.circuit_breaker import BreakerRegistry, CircuitBreaker, CircuitOpen, CircuitState


def _fail() -> None:
    raise ExchangeUnavailable("503")


def test_opens_after_threshold_then_half_opens_after_timeout_then_closes_on_success():
    clock = SimulatedClock(0)
    changes = []
    cb = CircuitBreaker("rest", failure_threshold=3, recovery_timeout=30, clock=clock,
                        on_change=lambda n, a, b: changes.append((str(a), str(b))))
    for _ in range(2):
        with pytest.raises(ExchangeUnavailable):
            cb.call(_fail)
    assert cb.state is CircuitState.CLOSED
    with pytest.raises(ExchangeUnavailable):
        cb.call(_fail)
    assert cb.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen) as info:
        cb.call(lambda: "never called")
    assert info.value.retry_after == pytest.approx(30)
    clock.advance(29.9)
    assert cb.state is CircuitState.OPEN
    clock.advance(0.1)
    assert cb.state is CircuitState.HALF_OPEN
    assert cb.call(lambda: "ok") == "ok"
    assert cb.state is CircuitState.CLOSED
    assert changes == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


def test_a_failed_trial_reopens_and_restarts_the_timer():
    clock = SimulatedClock(0)
    cb = CircuitBreaker("rest", failure_threshold=1, recovery_timeout=10, clock=clock)
    with pytest.raises(ExchangeUnavailable):
        cb.call(_fail)
    clock.advance(10)
    assert cb.state is CircuitState.HALF_OPEN
    with pytest.raises(ExchangeUnavailable):
        cb.call(_fail)
    assert cb.state is CircuitState.OPEN
    clock.advance(9)
    assert cb.state is CircuitState.OPEN
    clock.advance(1)
    assert cb.state is CircuitState.HALF_OPEN


def test_half_open_admits_only_one_trial():
    clock = SimulatedClock(0)
    cb = CircuitBreaker("rest", failure_threshold=1, recovery_timeout=5, clock=clock)
    cb.record_failure()
    clock.advance(5)
    cb.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        cb.before_call()


def test_success_resets_the_consecutive_failure_count():
    cb = CircuitBreaker("rest", failure_threshold=2, recovery_timeout=5, clock=SimulatedClock(0))
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    assert cb.state is CircuitState.CLOSED


def test_an_order_rejection_is_not_a_dependency_failure():
    cb = CircuitBreaker("rest", failure_threshold=1, recovery_timeout=5, clock=SimulatedClock(0))

    def reject() -> None:
        raise InsufficientFunds("no money")

    with pytest.raises(InsufficientFunds):
        cb.call(reject)
    assert cb.state is CircuitState.CLOSED


def test_decorator_and_context_manager_forms():
    clock = SimulatedClock(0)
    cb = CircuitBreaker("db", failure_threshold=2, recovery_timeout=5, clock=clock)

    @cb
    def flaky(x: int) -> int:
        if x < 0:
            raise OSError("disk")
        return x * 2

    assert flaky(2) == 4
    with pytest.raises(OSError):
        flaky(-1)
    with pytest.raises(OSError):
        with cb:
            raise OSError("disk")
    assert cb.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen):
        with cb:
            pass


def test_registry_reports_open_breakers_and_is_thread_safe():
    clock = SimulatedClock(0)
    reg = BreakerRegistry(clock, failure_threshold=1000, recovery_timeout=5)
    cb = reg.get("exchange")

    def hammer() -> None:
        for _ in range(100):
            cb.record_failure()

    threads = [threading.Thread(target=hammer) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cb.state is CircuitState.OPEN  # exactly the 1000th failure opened it
    assert cb.status().failures == 1000
    assert reg.open_names() == ["exchange"]


def test_half_open_admits_exactly_one_trial_among_concurrent_callers():
    # Arrange: an open breaker whose recovery timeout has passed, and 16 threads arriving at once
    clock = SimulatedClock(0)
    cb = CircuitBreaker("exchange", failure_threshold=1, recovery_timeout=5, clock=clock)
    cb.record_failure()
    clock.advance(5)
    barrier, release = threading.Barrier(16), threading.Event()
    admitted, refused = [], []
    lock = threading.Lock()

    def caller(k: int) -> None:
        barrier.wait()
        try:
            with cb:  # the trial holds its slot until every other caller has been turned away
                with lock:
                    admitted.append(k)
                assert release.wait(10)
        except CircuitOpen:
            with lock:
                refused.append(k)
                if len(refused) == 15:
                    release.set()

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    # Assert: one trial, fifteen refusals, and the trial's success closed the breaker
    assert (len(admitted), len(refused)) == (1, 15)
    assert cb.state is CircuitState.CLOSED
