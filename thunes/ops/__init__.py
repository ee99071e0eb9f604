"""Operations: Prometheus metrics of the bot and the streaming pipeline (docs/observability.md).

Scheduler jobs live in :mod:`thunes.live.jobs`; alerts (Telegram) will join here.
"""

from __future__ import annotations

from thunes.ops._server import MetricsServer, serve_metrics
from thunes.ops.metrics import BotMetrics, InstrumentedPort
from thunes.ops.pipeline_metrics import PipelineMetrics

__all__ = ["BotMetrics", "InstrumentedPort", "PipelineMetrics", "MetricsServer", "serve_metrics"]
