"""Client-side rate limiting that follows the exchange's own accounting.

Binance counts request *weight* per IP per minute and *orders* per account per 10 s and per day, and
reports its count on every response (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``,
``X-MBX-ORDER-COUNT-1D``). ccxt's throttler neither reads those headers nor honours ``Retry-After``
(docs/binance-spot-api.md §5.2), so this module does:

* one :class:`TokenBucket` per limit, capacity = limit × ``safety`` (headroom for other clients on the
  same IP), refilled continuously at ``limit / interval``;
* :meth:`RateLimiter.update_from_headers` lowers a bucket to what the exchange says is left, so a
  restart or a second process on the same IP cannot make us overrun;
* :meth:`RateLimiter.on_rate_limited` blocks every caller until ``Retry-After`` has passed after a 429
  (rate limit) or a 418 (IP ban); without the header the pause doubles from ``min_backoff`` up to
  ``max_backoff``.

Time comes from an injected clock: :meth:`acquire` sleeps through ``clock.sleep``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import ConfigError, RateLimited

__all__ = ["RateLimiter", "TokenBucket"]

_INTERVAL_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_LETTER_S = {"S": 1, "M": 60, "H": 3600, "D": 86400}


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` tokens per second. Not locked: :class:`RateLimiter` locks."""

    def __init__(self, capacity: float, rate: float, clock: Clock) -> None:
        if capacity <= 0 or rate <= 0:
            raise ConfigError(f"token bucket needs capacity > 0 and rate > 0, got {capacity}, {rate}")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.clock = clock
        self.tokens = float(capacity)
        self._t = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        if now > self._t:
            self.tokens = min(self.capacity, self.tokens + (now - self._t) * self.rate)
        self._t = now

    def available(self) -> float:
        self._refill()
        return self.tokens

    def wait_time(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 if now). ``n`` above capacity waits for a full bucket."""
        self._refill()
        need = min(n, self.capacity) - self.tokens
        return 0.0 if need <= 0 else need / self.rate

    def take(self, n: float) -> None:
        self._refill()
        self.tokens -= n

    def set_used(self, used: float) -> None:
        """The exchange says ``used`` of the limit is spent: never hold more tokens than what is left."""
        self._refill()
        self.tokens = min(self.tokens, self.capacity - used)


class RateLimiter:
    """Request-weight and order-count buckets, synchronised from the exchange's headers. Thread-safe."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        weight_per_minute: int = 6000,
        orders_per_10s: int = 100,
        orders_per_day: int = 200_000,
        safety: float = 0.9,
        min_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        if not 0 < safety <= 1:
            raise ConfigError(f"rate limiter safety must be in (0, 1], got {safety}")
        self.clock = clock or LiveClock()
        self.safety = safety
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self.weight = TokenBucket(weight_per_minute * safety, weight_per_minute * safety / 60.0, self.clock)
        self.order_buckets: dict[str, TokenBucket] = {
            "10S": TokenBucket(orders_per_10s * safety, orders_per_10s * safety / 10.0, self.clock),
            "1D": TokenBucket(orders_per_day * safety, orders_per_day * safety / 86400.0, self.clock),
        }
        self._blocked_until = 0.0
        self._next_backoff = min_backoff
        self.banned = False

    @classmethod
    def from_exchange_info(cls, rate_limits: Iterable[Mapping[str, Any]], *, clock: Clock | None = None,
                           safety: float = 0.9) -> RateLimiter:
        """Build from ``exchangeInfo.rateLimits`` (REQUEST_WEIGHT per minute, ORDERS per 10 s / day)."""
        weight, o10, oday = 6000, 100, 200_000
        for rl in rate_limits:
            seconds = _INTERVAL_S.get(str(rl.get("interval")), 0) * int(rl.get("intervalNum", 1))
            kind, limit = rl.get("rateLimitType"), int(rl.get("limit", 0))
            if kind == "REQUEST_WEIGHT" and seconds:
                weight = int(limit * 60 / seconds)
            elif kind == "ORDERS" and seconds == 10:
                o10 = limit
            elif kind == "ORDERS" and seconds == 86400:
                oday = limit
            elif kind == "ORDERS" and seconds == 1:
                o10 = min(o10, limit * 10)
        return cls(clock=clock, weight_per_minute=weight, orders_per_10s=o10, orders_per_day=oday, safety=safety)

    def wait_time(self, weight: float = 1, orders: int = 0) -> float:
        with self._lock:
            return self._wait_time(weight, orders)

    def _wait_time(self, weight: float, orders: int) -> float:
        wait = max(0.0, self._blocked_until - self.clock.monotonic())
        wait = max(wait, self.weight.wait_time(weight))
        if orders:
            for bucket in self.order_buckets.values():
                wait = max(wait, bucket.wait_time(orders))
        return wait

    def acquire(self, weight: float = 1, orders: int = 0, *, max_wait: float | None = None) -> float:
        """Block until the request fits every limit, then spend it. Returns the seconds waited.

        With ``max_wait``, raise :class:`RateLimited` instead of waiting longer than that.
        """
        waited = 0.0
        while True:
            with self._lock:
                wait = self._wait_time(weight, orders)
                if wait <= 0:
                    self.weight.take(weight)
                    if orders:
                        for bucket in self.order_buckets.values():
                            bucket.take(orders)
                    return waited
            if max_wait is not None and waited + wait > max_wait:
                raise RateLimited(f"rate limit: would wait {wait:.2f}s more (max_wait {max_wait}s)",
                                  retry_after=wait, banned=self.banned)
            self.clock.sleep(wait)
            waited += wait

    def update_from_headers(self, headers: Mapping[str, Any] | None) -> None:
        """Read ``X-MBX-USED-WEIGHT-<n><unit>`` and ``X-MBX-ORDER-COUNT-<n><unit>`` (case-insensitive)."""
        if not headers:
            return
        with self._lock:
            for key, value in headers.items():
                k = str(key).upper()
                try:
                    used = float(value)
                except (TypeError, ValueError):
                    continue
                if k.startswith("X-MBX-USED-WEIGHT-"):
                    interval = k.rsplit("-", 1)[1]
                    if interval == "1M":
                        # capacity is limit x safety, so what is left for us is capacity - used
                        self.weight.set_used(used)
                elif k.startswith("X-MBX-ORDER-COUNT-"):
                    interval = k.rsplit("-", 1)[1]
                    bucket = self.order_buckets.get(interval)
                    if bucket is not None:
                        bucket.set_used(used)
            # a successful answer ends the exponential back-off sequence
            self._next_backoff = self.min_backoff

    def on_rate_limited(self, status: int, retry_after: float | None = None) -> float:
        """Handle a 429/418: block all callers for ``retry_after`` seconds (or a doubling back-off)."""
        with self._lock:
            if retry_after is None or retry_after <= 0:
                pause = self._next_backoff
                self._next_backoff = min(self.max_backoff, self._next_backoff * 2)
            else:
                pause = float(retry_after)
            self.banned = status == 418
            until = self.clock.monotonic() + pause
            self._blocked_until = max(self._blocked_until, until)
            # The exchange says we are at the limit: whatever our buckets think, they are empty now.
            self.weight.tokens = min(self.weight.tokens, 0.0)
            return pause

    def observe_error(self, exc: BaseException) -> None:
        """Feed a :class:`RateLimited` error (429/418 translated by the adapter) into the back-off."""
        if isinstance(exc, RateLimited):
            self.on_rate_limited(418 if exc.banned else 429, exc.retry_after)

    @property
    def blocked_for(self) -> float:
        with self._lock:
            return max(0.0, self._blocked_until - self.clock.monotonic())
