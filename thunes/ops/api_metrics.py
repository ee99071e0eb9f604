"""Prometheus metrics of the REST API: requests by route template and status class, and their latency.

Labels are bounded: ``route`` is the route's path template (``/api/v1/bot/trades/{trade_id}``, never the
id itself; ``unmatched`` for a path no route serves), ``method`` the HTTP method and ``status`` the class
(``2xx``, ``4xx``, ``5xx``). The API serves them at ``GET /metrics`` (docs/observability.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["LATENCY_BUCKETS", "ApiMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    """Request counts and latency of one API process, in its own registry."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter("thunes_api_requests_total", "API requests by route template, method and status "
                                "class", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("thunes_api_request_duration_seconds", "API request latency by route template",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe(self, route: str | None, method: str, status: int, seconds: float) -> None:
        route = route or "unmatched"
        self.requests.labels(route, method, f"{status // 100}xx").inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
