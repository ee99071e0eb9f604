"""The one retry rule: exponential backoff with jitter and a cap, and the server's ``Retry-After`` honoured.

Every retry loop in THUNES (downloads, the websocket candle feed and its REST backfill, the stream
ingest's gap repair, the ccxt.pro order stream) takes its waits from :class:`Backoff`:

* the delay before retry ``attempt`` (0-based) is ``min(max_s, initial_s * factor**attempt)``;
* scaled by a jitter factor drawn uniformly from ``[1 - jitter, 1]``, so that many clients dropped at once
  by the exchange do not all come back at the same instant;
* a :class:`~thunes.core.errors.RateLimited` that carries ``retry_after`` (the exchange's ``Retry-After``)
  waits at least that long. The cap does not shorten it: retrying before a 418 ban ends extends the ban.

:func:`retry_call` runs one call with that rule, retrying only the retryable branch of the error tree, and
raises the last error after ``Backoff.retries`` retries. Tests make it deterministic by injecting ``sleep``
(record the waits instead of sleeping) and a seeded ``random.Random``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from thunes.core.errors import ConfigError, RateLimited, RetryableError

__all__ = ["Backoff", "retry_call"]

T = TypeVar("T")
log = logging.getLogger("thunes.retry")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """How long to wait before each retry, and how many retries to make (``None``: no limit)."""

    initial_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.0
    retries: int | None = 5

    def __post_init__(self) -> None:
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"Backoff.jitter must be within [0, 1], got {self.jitter}")
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ConfigError(f"Backoff: need initial_s > 0, max_s >= initial_s and factor >= 1 (got "
                              f"{self.initial_s}, {self.max_s}, {self.factor})")
        if self.retries is not None and self.retries < 0:
            raise ConfigError(f"Backoff.retries must be >= 0 or None, got {self.retries}")

    def delay(self, attempt: int, u: float = 0.0) -> float:
        """Seconds before retry ``attempt`` (0-based); ``u`` in [0, 1) is the jitter draw."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
        return base * (1.0 - self.jitter * u)

    def wait(self, attempt: int, error: BaseException | None = None, u: float = 0.0) -> float:
        """:meth:`delay`, raised to the server's ``Retry-After`` when ``error`` carries one."""
        delay = self.delay(attempt, u)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return max(delay, float(error.retry_after))
        return delay


def retry_call(
    fn: Callable[[], T],
    policy: Backoff,
    *,
    what: str = "call",
    retry_on: tuple[type[BaseException], ...] = (RetryableError,),
    sleep: Callable[[float], object] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """``fn()``, retried on ``retry_on`` errors with ``policy``'s waits; the last error once retries run out.

    Errors outside ``retry_on`` propagate at once (a rejected order or a bad symbol is not retried).
    """
    draw = rng if rng is not None else random.Random()
    attempt = 0
    while True:
        try:
            return fn()
        except retry_on as exc:
            if policy.retries is not None and attempt >= policy.retries:
                raise
            wait = policy.wait(attempt, exc, draw.random())
            limit = "" if policy.retries is None else f"/{policy.retries}"
            log.warning("%s failed (%s); retry %d%s in %.2fs", what, exc, attempt + 1, limit, wait)
            sleep(wait)
            attempt += 1
