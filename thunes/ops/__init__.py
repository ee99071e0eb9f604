"""Operations edges around a running bot: Prometheus metrics of the bot and the streaming pipeline
(docs/observability.md), alerts and remote control over Telegram (docs/telegram.md). They call services only;
scheduler jobs live in :mod:`thunes.live.jobs`.
"""

from __future__ import annotations

from thunes.ops._server import MetricsServer, serve_metrics
from thunes.ops.metrics import BotMetrics, InstrumentedPort
from thunes.ops.pipeline_metrics import PipelineMetrics

__all__ = ["BotMetrics", "InstrumentedPort", "MetricsServer", "PipelineMetrics", "serve_metrics", "telegram"]
