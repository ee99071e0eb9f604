"""Binance's REST rate limits on the local exchange: request weights, order counts, 429 then the 418 ban.

:func:`request_weight` is the weight Binance charges per endpoint (``rest-api.md`` in the shared docs);
:class:`RateLimiter` counts weight per IP per wall-clock minute and new orders per account per 10 s and
per day. The middleware (``_http.py``) asks it before every REST request, the order route before every
new order.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping

from thunes.exchange.sim import _params as P
from thunes.exchange.sim._rules import Rejection

__all__ = ["BAN_ADVICE", "RateLimiter", "request_weight"]

BAN_ADVICE = "Please use WebSocket Streams for live updates to avoid bans."  # the end of every 418 message


def request_weight(method: str, path: str, params: Mapping[str, str]) -> int:
    """The weight of one REST request (a malformed ``limit`` on depth is -1100 here, before it counts)."""
    tail = path.removeprefix("/api/v3/")
    if tail in ("exchangeInfo", "account", "myTrades", "allOrders"):
        return 20
    if tail == "depth":
        limit = P.int_param(params, "limit", default=100)
        assert limit is not None
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if tail in ("ticker/24hr", "ticker/price", "ticker/bookTicker"):
        return 2 if params.get("symbol") else 80
    if tail == "openOrders":
        return 6 if params.get("symbol") else 80
    if tail == "order" and method == "GET":
        return 4
    if tail in ("klines", "uiKlines", "avgPrice"):
        return 2
    return 1


class RateLimiter:
    """Per-IP request weight per wall-clock minute and per-account order counts, with 429 then 418."""

    def __init__(self, weight_limit: int, orders_10s: int, orders_1d: int, ban_after: int,
                 ban_s: int) -> None:
        self.weight_limit, self.orders_10s, self.orders_1d = weight_limit, orders_10s, orders_1d
        self.ban_after, self.ban_s = ban_after, ban_s
        self._weights: dict[tuple[str, int], int] = defaultdict(int)
        self._orders: dict[tuple[str, str, int], int] = defaultdict(int)
        self._strikes: dict[str, int] = defaultdict(int)
        self._banned_until: dict[str, float] = {}

    def used(self, ip: str) -> int:
        """The weight ``ip`` used in the current minute (the ``X-MBX-USED-WEIGHT-1M`` header)."""
        return self._weights[(ip, int(time.time() // 60))]

    def admit(self, ip: str, weight: int) -> tuple[Rejection | None, int]:
        """(rejection, retry_after) for a request of ``weight``; counts it when admitted."""
        now = time.time()
        until = self._banned_until.get(ip, 0.0)
        if until > now:
            return Rejection(-1003, f"Way too much request weight used; IP banned until {int(until * 1000)}. "
                                    + BAN_ADVICE, 418), \
                int(until - now) + 1
        minute = int(now // 60)
        if self._weights[(ip, minute)] + weight > self.weight_limit:
            self._strikes[ip] += 1
            if self._strikes[ip] > self.ban_after:
                self._banned_until[ip] = now + self.ban_s
                self._strikes[ip] = 0
                return self.admit(ip, weight)
            return Rejection(-1003, f"Too many requests; current limit of IP({ip}) is {self.weight_limit} "
                                    "requests per minute. Please use the websocket for live updates to avoid "
                                    "polling the API.", 429), int(60 - now % 60) + 1
        self._strikes[ip] = 0
        self._weights[(ip, minute)] += weight
        return None, 0

    def order(self, account: str) -> tuple[Rejection | None, dict[str, str]]:
        """(rejection, headers) for one new order of ``account``; counts it when admitted."""
        now = time.time()
        k10, kday = int(now // 10), int(now // 86400)
        n10, nday = self._orders[(account, "10s", k10)], self._orders[(account, "1d", kday)]
        if n10 >= self.orders_10s:
            return Rejection(-1015, f"Too many new orders; current limit is {self.orders_10s} orders per "
                                    "10 SECOND.", 429), {"Retry-After": str(int(10 - now % 10) + 1)}
        if nday >= self.orders_1d:
            return Rejection(-1015, f"Too many new orders; current limit is {self.orders_1d} orders per "
                                    "DAY.", 429), {"Retry-After": str(int(86400 - now % 86400) + 1)}
        self._orders[(account, "10s", k10)] = n10 + 1
        self._orders[(account, "1d", kday)] = nday + 1
        return None, {"X-MBX-ORDER-COUNT-10S": str(n10 + 1), "X-MBX-ORDER-COUNT-1D": str(nday + 1)}
