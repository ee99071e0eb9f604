"""The THUNES error tree, grouped by what the caller must do.

::

    ThunesError
    ├── ConfigError                 bad or missing configuration (fix the config, do not retry)
    ├── DataError                   bad input data (unsorted, duplicate, NaN, gaps where none allowed)
    │   └── InsufficientData        too few rows for what was asked (e.g. indicator warm-up)
    ├── StoreError                  the candle/journal store failed or was misused
    ├── ExchangeError               anything the exchange said or failed to say
    │   ├── RetryableError          transient: the same call may succeed later
    │   │   ├── RateLimited         429/418; carries ``retry_after`` seconds when known
    │   │   ├── ExchangeUnavailable 5xx, maintenance, connection refused/reset
    │   │   └── RequestTimeout      no answer in time (the request may or may not have been applied)
    │   ├── AuthenticationError     bad key/signature/permissions (never retried)
    │   └── OrderRejected           the exchange refused an order (never retried as is)
    │       ├── InsufficientFunds
    │       ├── FilterRejected      -1013: price/qty/notional filter failure
    │       ├── DuplicateOrder      client order id already used among open orders
    │       └── OrderNotFound       -2011/-2013
    ├── RiskDenied                  the risk manager refused an intent
    └── StrategyError               a strategy is misconfigured (unknown/out-of-range parameter)

Retries catch only :class:`RetryableError`.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "DataError",
    "DuplicateOrder",
    "ExchangeError",
    "ExchangeUnavailable",
    "FilterRejected",
    "InsufficientData",
    "InsufficientFunds",
    "OrderNotFound",
    "OrderRejected",
    "RateLimited",
    "RequestTimeout",
    "RetryableError",
    "RiskDenied",
    "StoreError",
    "StrategyError",
    "ThunesError",
]


class ThunesError(Exception):
    """Base of every error THUNES raises on purpose."""


class ConfigError(ThunesError):
    """Configuration is invalid or incomplete. ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class DataError(ThunesError):
    """Input data is malformed; the message names the column and row where possible."""


class InsufficientData(DataError):
    """Too few rows for the requested computation."""


class StoreError(ThunesError):
    """A storage backend failed or was used incorrectly."""


class ExchangeError(ThunesError):
    """Anything that went wrong talking to an exchange."""


class RetryableError(ExchangeError):
    """A transient failure: the same request may succeed later."""


class RateLimited(RetryableError):
    """The exchange asked us to slow down (HTTP 429) or banned us for a while (HTTP 418)."""

    def __init__(self, message: str, retry_after: float | None = None, banned: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.banned = banned


class ExchangeUnavailable(RetryableError):
    """The exchange is down, overloaded or unreachable."""


class RequestTimeout(RetryableError):
    """No answer in time; the request may have been applied (check by client order id)."""


class AuthenticationError(ExchangeError):
    """API key, signature, timestamp or permission problem."""


class OrderRejected(ExchangeError):
    """The exchange refused an order. ``code`` is the exchange's error code when known."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class InsufficientFunds(OrderRejected):
    """Not enough balance for the order."""


class FilterRejected(OrderRejected):
    """An exchange filter (tick, step, notional, ...) refused the order."""

    def __init__(self, message: str, code: int | None = -1013, filter_name: str | None = None) -> None:
        super().__init__(message, code)
        self.filter_name = filter_name


class DuplicateOrder(OrderRejected):
    """The client order id is already in use."""


class OrderNotFound(OrderRejected):
    """The order is unknown to the exchange."""


class RiskDenied(ThunesError):
    """The risk manager refused an intent."""


class StrategyError(ThunesError):
    """A strategy or its parameters are misconfigured."""
