"""Rate limiter: token buckets, exchange headers, 429/418 back-off, with a simulated clock."""

from __future__ import annotations

import pytest

from thunes.core.clock import SimulatedClock
from thunes.core.errors import RateLimited
from thunes.execution.rate_limiter import RateLimiter


def test_weight_bucket_blocks_until_refilled():
    clock = SimulatedClock(0)
    rl = RateLimiter(clock=clock, weight_per_minute=600, safety=1.0)  # 10 weight per second
    assert rl.acquire(weight=600) == 0
    waited = rl.acquire(weight=20)
    assert waited == pytest.approx(2.0)
    assert clock.monotonic() == pytest.approx(2.0)


def test_used_weight_header_lowers_the_bucket():
    clock = SimulatedClock(0)
    rl = RateLimiter(clock=clock, weight_per_minute=6000, safety=0.9)  # capacity 5400
    rl.update_from_headers({"x-mbx-used-weight-1m": "5300"})
    assert rl.wait_time(weight=100) == 0
    assert rl.wait_time(weight=101) == pytest.approx(1 / 90)  # refill 90 weight per second


def test_order_count_header_limits_orders():
    clock = SimulatedClock(0)
    rl = RateLimiter(clock=clock, orders_per_10s=10, safety=1.0)
    rl.update_from_headers({"X-MBX-ORDER-COUNT-10S": "10"})
    assert rl.wait_time(orders=1) == pytest.approx(1.0)
    assert rl.wait_time(orders=0) == 0


def test_429_blocks_every_caller_for_retry_after():
    clock = SimulatedClock(0)
    rl = RateLimiter(clock=clock)
    rl.on_rate_limited(429, retry_after=7)
    assert rl.blocked_for == pytest.approx(7)
    with pytest.raises(RateLimited) as info:
        rl.acquire(weight=1, max_wait=1)
    assert info.value.retry_after == pytest.approx(7)
    waited = rl.acquire(weight=1)
    assert waited == pytest.approx(7)  # the simulated clock stands still: the whole Retry-After is waited


def test_418_ban_without_retry_after_doubles_the_backoff():
    clock = SimulatedClock(0)
    rl = RateLimiter(clock=clock, min_backoff=2, max_backoff=5)
    assert rl.on_rate_limited(418) == 2
    assert rl.banned
    assert rl.on_rate_limited(418) == 4
    assert rl.on_rate_limited(418) == 5


def test_limits_are_read_from_exchange_info():
    rl = RateLimiter.from_exchange_info([
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
    ], clock=SimulatedClock(0), safety=1.0)
    assert rl.weight.capacity == 1200
    assert rl.order_buckets["10S"].capacity == 50
    assert rl.order_buckets["1D"].capacity == 160000
