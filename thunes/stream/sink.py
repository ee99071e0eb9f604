"""``thunes stream sink``: a Kafka consumer-group member writing the candle topic into the store.

Each round takes up to ``max_batch`` messages, writes them with one
:class:`~thunes.stream.writer.BatchWriter` call (one upsert transaction per series) and only *then*
commits the batch's offsets, synchronously. Hence at-least-once delivery into the store: a sink killed
between the database commit and the offset commit sees the same candles again after restart (or
another member does, after a rebalance), and the upsert writes them once. Run several sinks with the
same ``group`` to share the partitions; each partition (and so each series) has one writer at a time.

A store error leaves the offsets uncommitted, rewinds the consumer to the batch's first offsets and
reopens the store (a restarted database), so nothing is skipped. A broker that restarted with memory storage forgets the group and the topic:
the sink subscribes again once the topic is back and starts from its beginning.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from thunes.core.errors import ConfigError, DataError, StoreError
from thunes.data.store import CandleStore
from thunes.stream._codec import CANDLE_DTYPE, VALUE_SIZE, SeriesKey
from thunes.stream.kafka import _RDKAFKA_LOG, DEFAULT_GROUP, DEFAULT_TOPIC, kafka_module
from thunes.stream.writer import BatchWriter, ExtraSink

__all__ = ["KafkaSink", "SinkStats", "consumer_config", "session_overrides"]

log = logging.getLogger(__name__)


def consumer_config(bootstrap: str, group: str, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings of a candle consumer (manual commits, start at the log's beginning)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Tansu's join waits about half the session timeout; 6 s is Kafka's smallest default allowed.
        "session.timeout.ms": 6_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 120_000,
        "topic.metadata.refresh.interval.ms": 2_000,
        "fetch.wait.max.ms": 50,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
        "queued.min.messages": 200_000,
        "reconnect.backoff.max.ms": 1_000,
        "logger": _RDKAFKA_LOG,
    }
    conf.update(overrides)
    return conf


def session_overrides(session_timeout_s: float) -> dict[str, Any]:
    """Consumer settings for a group session of ``session_timeout_s`` (heartbeats at a fifth of it)."""
    ms = int(session_timeout_s * 1000)
    if ms < 1000:
        raise ConfigError(f"the session timeout must be at least 1 s, got {session_timeout_s}")
    return {"session.timeout.ms": ms, "heartbeat.interval.ms": max(100, ms // 5)}


@dataclass(slots=True)
class SinkStats:
    messages: int = 0
    batches: int = 0
    commits: int = 0
    commit_failures: int = 0
    store_failures: int = 0
    malformed: int = 0
    resubscribes: int = 0
    rebalances: int = 0


class KafkaSink:
    """Consume the candle topic in group ``group`` and write it to the store made by ``store_factory``.

    ``exchange``: only candles of this exchange id are written (a store holds one exchange's candles).
    """

    def __init__(self, bootstrap: str, store_factory: Callable[[], CandleStore], *, topic: str = DEFAULT_TOPIC,
                 group: str = DEFAULT_GROUP, exchange: str | None = "binance", max_batch: int = 50_000,
                 wait_s: float = 0.1, extras: tuple[ExtraSink, ...] = (), retry_s: float = 1.0,
                 consumer_overrides: dict[str, Any] | None = None, metrics: Any = None) -> None:
        self.bootstrap = bootstrap
        self.metrics = metrics  # a thunes.ops.PipelineMetrics (messages in from Kafka, batches written)
        self.topic = topic
        self.group = group
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.retry_s = retry_s
        self._store_factory = store_factory
        self._exchange = exchange
        self._extras = extras
        self._overrides = consumer_overrides or {}
        self.stats = SinkStats()
        self.writer: BatchWriter | None = None
        self.on_commit: Callable[[dict[SeriesKey, np.ndarray], float], None] | None = None
        self._stop = threading.Event()
        self._consumer: Any = None
        self._resubscribe = False
        self._assigned: set[int] = set()
        self.member = f"sink-{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()

    @property
    def assigned(self) -> set[int]:
        """Partitions this member owns now."""
        return set(self._assigned)

    def run(self, *, idle_exit_s: float | None = None, max_messages: int | None = None) -> SinkStats:
        """Consume until :meth:`stop`, ``idle_exit_s`` seconds without a message, or ``max_messages``."""
        ck = kafka_module()
        self.writer = BatchWriter(self._store_factory(), exchange=self._exchange, extras=self._extras,
                                  on_commit=self.on_commit, store_factory=self._store_factory, metrics=self.metrics)
        self._consumer = ck.Consumer(consumer_config(self.bootstrap, self.group, **{"client.id": self.member},
                                                     **self._overrides))
        try:
            try:
                self._consumer.list_topics(timeout=10.0)
            except ck.KafkaException as exc:
                raise ConfigError(f"cannot reach the Kafka broker at {self.bootstrap}: {exc.args[0].str()}") from exc
            self._subscribe()
            last_message = time.monotonic()
            while not self._stop.is_set():
                if self._resubscribe:
                    self._try_resubscribe()
                msgs = self._consumer.consume(self.max_batch, self.wait_s)
                if msgs and self.metrics is not None:
                    self.metrics.received("kafka", len(msgs))
                good = self._handle_errors(msgs)
                if not good:
                    if idle_exit_s is not None and time.monotonic() - last_message > idle_exit_s:
                        break
                    continue
                last_message = time.monotonic()
                self._write_and_commit(good)
                if max_messages is not None and self.stats.messages >= max_messages:
                    break
        finally:
            try:
                self._consumer.close()  # leaves the group now: partitions move without a session timeout
            except Exception:  # noqa: BLE001
                log.debug("consumer close failed", exc_info=True)
            self.writer.close()
        return self.stats

    # -- internals --------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.stats.rebalances += 1
        self._assigned = {p.partition for p in partitions}
        log.info("%s assigned partitions %s", self.member, sorted(self._assigned))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Nothing to flush: every batch is written and committed before the next consume() call,
        # which is where this callback runs.
        self._assigned -= {p.partition for p in partitions}

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning("%s lost partitions %s (broker restarted or session expired)", self.member,
                    [p.partition for p in partitions])
        self._assigned.clear()
        self._resubscribe = True

    def _try_resubscribe(self) -> None:
        meta = self._consumer.list_topics(timeout=2.0).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return
        self._consumer.unsubscribe()
        self._subscribe()
        self._resubscribe = False
        self.stats.resubscribes += 1

    def _handle_errors(self, msgs: list[Any]) -> list[Any]:
        ck = kafka_module()
        good = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            elif err.code() == ck.KafkaError._PARTITION_EOF:
                continue
            elif err.code() in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
                self._resubscribe = True
            else:
                log.warning("consumer error: %s", err.str())
        return good

    def _write_and_commit(self, msgs: list[Any]) -> None:
        ck = kafka_module()
        by_key: dict[bytes, list[bytes]] = {}
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for m in msgs:
            value = m.value()
            p, o = m.partition(), m.offset()
            first.setdefault(p, o)
            last[p] = o
            if value is None or len(value) != VALUE_SIZE or value[0] != 1:
                self.stats.malformed += 1
                log.warning("skipping malformed message at %s[%d]@%d", self.topic, p, o)
                continue
            by_key.setdefault(m.key(), []).append(value)
        chunks = []
        for key, values in by_key.items():
            try:
                series = SeriesKey.decode(key)
            except (DataError, UnicodeDecodeError):
                self.stats.malformed += len(values)
                continue
            chunks.append((series, np.frombuffer(b"".join(values), dtype=CANDLE_DTYPE)))
        try:
            self.writer.write(chunks)  # type: ignore[union-attr]
        except StoreError as exc:
            self.stats.store_failures += 1
            log.warning("store write failed, rereading the batch in %.1fs: %s", self.retry_s, exc)
            for p, o in first.items():
                try:
                    self._consumer.seek(ck.TopicPartition(self.topic, p, o))
                except ck.KafkaException:
                    pass  # not ours any more: its new owner starts from the last commit
            time.sleep(self.retry_s)
            self.writer.reconnect()  # type: ignore[union-attr]
            return
        self.stats.messages += len(msgs)
        self.stats.batches += 1
        offsets = [ck.TopicPartition(self.topic, p, o + 1) for p, o in last.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
            self.stats.commits += 1
        except ck.KafkaException as exc:
            # Rebalanced away (or the broker is gone): the next owner reads these candles again from
            # the last commit and upserts them once more. Nothing is lost, nothing duplicated.
            self.stats.commit_failures += 1
            log.info("offset commit failed (%s); the batch will be redelivered", exc.args[0].str())


