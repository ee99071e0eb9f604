"""The ``/metrics`` HTTP endpoint: prometheus_client's own threaded server, on loopback by default.

One small server per process and registry, started and stopped by whoever owns the registry (the bot
session, the pipeline, the API). Loopback is the default because the exposition names the pairs traded
and the PnL: exposing it beyond the host is a deliberate choice (``host="0.0.0.0"``), made in the config.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from thunes.core.errors import ConfigError

__all__ = ["MetricsServer", "serve_metrics"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; ``port`` is the bound one (useful after asking for port 0)."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(registry: CollectorRegistry, *, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread (port 0: any free port)."""
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"metrics port must be 0-65535, got {port}")
    try:
        server, thread = start_http_server(int(port), addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    bound = int(server.server_address[1])
    log.info("metrics at http://%s:%d/metrics", host, bound)
    return MetricsServer(host=host, port=bound, _server=server, _thread=thread)
