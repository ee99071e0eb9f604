"""The one retry rule (thunes.core.backoff): delays grow exponentially up to a cap, jitter only shortens
them within ``[1 - jitter, 1]``, a server's ``Retry-After`` is a floor the cap does not cut, only the
retryable branch is retried, and after ``retries`` retries the last error is raised."""

from __future__ import annotations

import random

import pytest

from thunes.core.backoff import Backoff, retry_call
from thunes.core.errors import ConfigError, ExchangeUnavailable, OrderRejected, RateLimited


def test_delays_grow_by_the_factor_until_the_cap() -> None:
    policy = Backoff(initial_s=0.5, max_s=8.0, factor=2.0)
    assert [policy.delay(a) for a in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_shortens_within_its_fraction_and_a_seeded_draw_repeats() -> None:
    policy = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5)
    assert policy.delay(2, u=0.0) == 4.0
    assert policy.delay(2, u=0.5) == pytest.approx(3.0)
    waits = [[policy.delay(a, random.Random(7).random()) for a in range(5)] for _ in range(2)]
    assert waits[0] == waits[1]
    assert all(0.5 * min(8.0, 2.0 ** a) <= w <= min(8.0, 2.0 ** a) for a, w in enumerate(waits[0]))


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    policy = Backoff(initial_s=1.0, max_s=4.0)
    assert policy.wait(0, RateLimited("429", retry_after=3.0)) == 3.0
    assert policy.wait(3, RateLimited("429", retry_after=1.0)) == 4.0  # the backoff is longer: it wins
    assert policy.wait(0, RateLimited("418", retry_after=120.0, banned=True)) == 120.0
    assert policy.wait(1, RateLimited("429")) == 2.0  # no header: the plain backoff


def test_retry_call_waits_the_rule_then_succeeds() -> None:
    answers: list[Exception | str] = [RateLimited("429", retry_after=5.0), ExchangeUnavailable("503"),
                                      ExchangeUnavailable("503"), "ok"]
    slept: list[float] = []

    def call() -> str:
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert retry_call(call, Backoff(initial_s=1.0, max_s=60.0), sleep=slept.append) == "ok"
    assert slept == [5.0, 2.0, 4.0]


def test_retry_call_gives_up_after_n_retries_with_the_last_error() -> None:
    errors = [ExchangeUnavailable(f"down {i}") for i in range(10)]
    slept: list[float] = []

    def call() -> None:
        raise errors.pop(0)

    with pytest.raises(ExchangeUnavailable, match="down 3"):
        retry_call(call, Backoff(initial_s=1.0, retries=3), sleep=slept.append)
    assert slept == [1.0, 2.0, 4.0]


def test_a_non_retryable_error_is_raised_at_once() -> None:
    slept: list[float] = []

    def call() -> None:
        raise OrderRejected("filter failure", code=-1013)

    with pytest.raises(OrderRejected):
        retry_call(call, Backoff(), sleep=slept.append)
    assert slept == []


@pytest.mark.parametrize("kw", [{"jitter": 1.5}, {"initial_s": 0}, {"max_s": 0.1, "initial_s": 1.0},
                                {"factor": 0.5}, {"retries": -1}])
def test_a_nonsensical_policy_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kw)  # type: ignore[arg-type]
