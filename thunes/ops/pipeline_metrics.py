"""Prometheus metrics of the streaming pipeline (websocket -> queue/Kafka -> store), for thunes.stream.

The pipeline calls four methods where things happen; nothing else to wire::

    m = PipelineMetrics()                        # its own registry
    server = m.serve(port=9465)                  # GET http://127.0.0.1:9465/metrics
    m.received("binance_ws", n)                  # messages taken in from a source
    with m.sink_write("candle_store", n):        # one batch written: size, latency, messages out
        store.write(batch)
    m.consumer_lag("candles", "store", lag)      # messages behind the topic's end, per consumer group
    m.error("decode")                            # a message dropped at a stage

Labels are bounded by construction: ``source``, ``sink``, ``stage``, ``topic`` and ``group`` name parts
of the deployment (a handful), never a symbol or an offset. Naming as in :mod:`thunes.ops.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thunes.ops._server import MetricsServer, serve_metrics

__all__ = ["BATCH_BUCKETS", "SINK_BUCKETS", "PipelineMetrics"]

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
SINK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PipelineMetrics:
    """Messages in/out, consumer lag, batch sizes and sink latency of one pipeline process."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("thunes_pipeline_messages_in_total", "Messages taken in, by source",
                                   ["source"], registry=r)
        self.messages_out = Counter("thunes_pipeline_messages_out_total", "Messages written, by sink", ["sink"],
                                    registry=r)
        self.errors = Counter("thunes_pipeline_errors_total", "Messages dropped or failed, by stage", ["stage"],
                              registry=r)
        self.lag = Gauge("thunes_pipeline_consumer_lag_messages",
                         "Messages between the consumer group's position and the topic's end", ["topic", "group"],
                         registry=r)
        self.batch = Histogram("thunes_pipeline_batch_size_messages", "Messages per batch written to a sink",
                               ["sink"], buckets=BATCH_BUCKETS, registry=r)
        self.sink_latency = Histogram("thunes_pipeline_sink_latency_seconds", "Time to write one batch to a sink",
                                      ["sink"], buckets=SINK_BUCKETS, registry=r)

    def received(self, source: str, n: int = 1) -> None:
        self.messages_in.labels(source).inc(n)

    def wrote(self, sink: str, n: int, seconds: float) -> None:
        """One batch of ``n`` messages written to ``sink`` in ``seconds``."""
        self.messages_out.labels(sink).inc(n)
        self.batch.labels(sink).observe(n)
        self.sink_latency.labels(sink).observe(seconds)

    @contextmanager
    def sink_write(self, sink: str, n: int) -> Iterator[None]:
        """Time a batch write; counted only when the block succeeds (a failure counts as an error)."""
        t0 = time.perf_counter()
        try:
            yield
        except Exception:
            self.errors.labels(f"sink:{sink}").inc()
            raise
        self.wrote(sink, n, time.perf_counter() - t0)

    def consumer_lag(self, topic: str, group: str, messages: int) -> None:
        self.lag.labels(topic, group).set(messages)

    def error(self, stage: str) -> None:
        self.errors.labels(stage).inc()

    def serve(self, *, port: int, host: str = "127.0.0.1") -> MetricsServer:
        return serve_metrics(self.registry, port=port, host=host)

    def render(self) -> bytes:
        return generate_latest(self.registry)
