"""The Kafka transport: a keyed producer that knows what the sink has committed.

:class:`KafkaPublisher` publishes each closed candle as one message keyed ``exchange|symbol|timeframe``
(see :mod:`thunes.stream._codec`), so one series stays in one partition, in order
(``max.in.flight.requests.per.connection=1``; idempotence is off on purpose: Tansu's build rejects
idempotent producers, and the sink's upsert makes redelivery harmless anyway).

Recovering what a broker lost. A broker with memory storage (Tansu's default) forgets every topic,
message and committed offset when it restarts. The producer therefore tracks, per partition, the
candles the broker acknowledged and not yet *confirmed*: a candle is confirmed once the sink group's
committed offset passes it (the sink commits only after the database commit, so a confirmed candle is
in the store). The producer notices a broker reset when a delivered offset goes backwards or when it
has to create the topic again; it then asks ``on_lost(series, from_ts)`` for every series with
unconfirmed candles (a failed delivery asks for its own candle), and the ingestion backfills them
from the exchange's REST API. The topic is created by the producer (``allow.auto.create.topics``
is off), with the configured partition count, again after a reset.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from thunes.core.errors import ConfigError
from thunes.stream._codec import SeriesKey

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_TOPIC",
    "KafkaPublisher",
    "PublisherStats",
    "ensure_topic",
    "kafka_module",
]

log = logging.getLogger(__name__)
#: librdkafka's own log lines (connection refused while a broker restarts, ...) go through logging,
#: not straight to stderr.
_RDKAFKA_LOG = logging.getLogger("thunes.stream.librdkafka")


class _ConnectionNoise(logging.Filter):
    """librdkafka logs every refused reconnect at error level: a broker restart would flood the console.
    Those lines become DEBUG; THUNES reports the outage itself (failed deliveries, resubscribes, resets)."""

    _NOISE = ("Connect to ", "Disconnected", "Broker transport failure", "brokers are down")

    def filter(self, record: logging.LogRecord) -> bool:
        if any(n in record.getMessage() for n in self._NOISE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_RDKAFKA_LOG.addFilter(_ConnectionNoise())

DEFAULT_TOPIC = "thunes.candles"
DEFAULT_GROUP = "thunes-sink"
_TS = struct.Struct("<q")


def kafka_module() -> Any:
    """``confluent_kafka``, or a one-line ``ConfigError`` naming the extra to install."""
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("the Kafka transport needs confluent-kafka: pip install 'thunes[stream]'") from exc
    return confluent_kafka


def ensure_topic(bootstrap: str, topic: str, partitions: int, *, timeout_s: float = 10.0) -> bool:
    """Create ``topic`` with ``partitions`` partitions unless it exists; True when it was created."""
    ck = kafka_module()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG})
    meta = admin.list_topics(timeout=timeout_s)
    existing = meta.topics.get(topic)
    if existing is not None and existing.error is None and existing.partitions:
        return False
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        future.result(timeout_s)
    except ck.KafkaException as exc:
        if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        return False
    log.info("created topic %s with %d partitions", topic, partitions)
    return True


@dataclass(slots=True)
class PublisherStats:
    published: int = 0
    delivered: int = 0
    confirmed: int = 0
    failed: int = 0
    resets: int = 0
    lost_requests: int = 0
    unconfirmed: int = 0


class KafkaPublisher:
    """Publish closed candles to ``topic``; report candles a broker may have lost through ``on_lost``.

    ``confirm_group`` is the sink's consumer group (None: no confirmation tracking, and no recovery
    after a broker loses its data). ``producer_config`` overrides librdkafka settings.
    """

    def __init__(self, bootstrap: str, *, topic: str = DEFAULT_TOPIC, partitions: int = 6,
                 confirm_group: str | None = DEFAULT_GROUP,
                 on_lost: Callable[[SeriesKey, int], None] | None = None,
                 confirm_interval_s: float = 1.0, producer_config: dict[str, Any] | None = None,
                 metrics: Any = None) -> None:
        self.bootstrap = bootstrap
        self.metrics = metrics  # a thunes.ops.PipelineMetrics (messages in from the feed, out to Kafka)
        self.topic = topic
        self.partitions = partitions
        self.confirm_group = confirm_group
        self.on_lost = on_lost
        self.confirm_interval_s = confirm_interval_s
        self._conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": False,
            "acks": "all",
            "max.in.flight.requests.per.connection": 1,  # per-key order without idempotence
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "allow.auto.create.topics": False,  # we create it, with our partition count
            "partitioner": "murmur2_random",  # Java clients' partitioner: same key, same partition
            "message.timeout.ms": 300_000,  # keep candles queued through a 5-minute broker outage
            "queue.buffering.max.messages": 1_000_000,
            "topic.metadata.refresh.interval.ms": 2_000,
            "reconnect.backoff.max.ms": 1_000,
            "logger": _RDKAFKA_LOG,
        }
        self._conf.update(producer_config or {})
        self.stats = PublisherStats()
        self._producer: Any = None
        self._confirm: Any = None
        self._pending: dict[int, deque[tuple[int, bytes, int]]] = {}
        self._last_offset: dict[int, int] = {}
        self._keys: dict[SeriesKey, bytes] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._topic_missing = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> KafkaPublisher:
        ck = kafka_module()
        try:
            ensure_topic(self.bootstrap, self.topic, self.partitions)
        except ck.KafkaException as exc:
            raise ConfigError(f"cannot reach the Kafka broker at {self.bootstrap}: {exc.args[0].str()}") from exc
        self._producer = ck.Producer(self._conf)
        if self.confirm_group:
            self._confirm = ck.Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.confirm_group,
                                         "enable.auto.commit": False, "logger": _RDKAFKA_LOG})
        self._thread = threading.Thread(target=self._poll_loop, name="stream-kafka-producer", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every published candle is acknowledged by the broker (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while len(self._producer) > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def wait_confirmed(self, timeout: float = 30.0) -> bool:
        """Wait until the sink group has committed every acknowledged candle (tests, orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._producer) == 0 and self.stats.unconfirmed == 0:
                return True
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 30.0) -> None:
        if self._producer is not None:
            self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._confirm is not None:
            self._confirm.close()
            self._confirm = None
        self._producer = None  # librdkafka's handle is destroyed with the object: no reconnect attempts

    def __enter__(self) -> KafkaPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publishing (any thread) ------------------------------------------------------------------
    def publish(self, series: SeriesKey, candles: np.ndarray) -> None:
        """Queue closed candles of one series (each becomes one message); blocks while librdkafka's
        queue is full."""
        if self._producer is None:
            raise ConfigError("KafkaPublisher.publish: the publisher is not started (or already closed)")
        key = self._keys.get(series)
        if key is None:
            key = self._keys.setdefault(series, series.encode())
        if self.metrics is not None and len(candles):
            self.metrics.received("websocket", len(candles))
        blob = candles.tobytes()
        size = candles.dtype.itemsize
        produce = self._producer.produce
        for i in range(len(candles)):
            value = blob[i * size:(i + 1) * size]
            while True:
                try:
                    produce(self.topic, value, key, on_delivery=self._delivered)
                    break
                except BufferError:
                    time.sleep(0.001)  # the poll thread drains delivery reports
        self.stats.published += len(candles)

    # -- the poll thread ---------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        next_check = time.monotonic() + self.confirm_interval_s
        while not self._stop.is_set():
            self._producer.poll(0.05)
            if self._stop.is_set():
                break
            if self._topic_missing.is_set():
                self._recreate_topic()
            if time.monotonic() >= next_check and not self._stop.is_set():
                next_check = time.monotonic() + self.confirm_interval_s
                try:
                    self._check_confirmations()
                except Exception as exc:  # noqa: BLE001 - the broker may be down; try again later
                    log.debug("confirmation check failed: %s", exc)
        self._producer.poll(0)

    def _delivered(self, err: Any, msg: Any) -> None:
        key, value = msg.key(), msg.value()
        ts = _TS.unpack_from(value, 2)[0]
        if err is not None:
            self.stats.failed += 1
            ck = kafka_module()
            if err.code() in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
                self._topic_missing.set()
            log.warning("candle %s %d not delivered: %s", key.decode(), ts, err.str())
            if self.metrics is not None:
                self.metrics.error("produce")
            self._lost(key, ts)
            return
        partition, offset = msg.partition(), msg.offset()
        self.stats.delivered += 1
        if self.metrics is not None:
            self.metrics.messages_out.labels("kafka").inc()
        if offset <= self._last_offset.get(partition, -1):
            self._reset(f"partition {partition} delivered offset {offset} after {self._last_offset[partition]}")
        self._last_offset[partition] = offset
        if self._confirm is not None:
            self._pending.setdefault(partition, deque()).append((offset, key, ts))
            self.stats.unconfirmed += 1

    def _lost(self, key: bytes, ts: int) -> None:
        self.stats.lost_requests += 1
        if self.on_lost is not None:
            self.on_lost(SeriesKey.decode(key), ts)

    def _reset(self, why: str) -> None:
        """The broker lost its log: every unconfirmed candle may be gone; ask for them again."""
        self.stats.resets += 1
        earliest: dict[bytes, int] = {}
        for entries in self._pending.values():
            for _, key, ts in entries:
                if ts < earliest.get(key, ts + 1):
                    earliest[key] = ts
        log.warning("the broker lost its data (%s): re-requesting %d series from their first unconfirmed "
                    "candle", why, len(earliest))
        self._pending.clear()
        self._last_offset.clear()
        self.stats.unconfirmed = 0
        self._topic_missing.set()
        for key, ts in earliest.items():
            self._lost(key, ts)

    def _recreate_topic(self) -> None:
        try:
            created = ensure_topic(self.bootstrap, self.topic, self.partitions, timeout_s=1.0)
            self._topic_missing.clear()
            if created and self._last_offset:
                self._reset("the topic was gone")
        except Exception as exc:  # noqa: BLE001 - broker still down: try on the next round
            log.debug("topic not (re)created yet: %s", exc)
            time.sleep(0.2)

    def _check_confirmations(self) -> None:
        meta = self._producer.list_topics(timeout=1.0).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            self._topic_missing.set()  # a restarted memory broker: recreate it, queued candles follow
            return
        if self._confirm is None or not self._last_offset:
            return
        ck = kafka_module()
        # Not the high watermark: Tansu reports the last batch's base offset there, not the log end.
        parts = [ck.TopicPartition(self.topic, p) for p in sorted(self._last_offset)]
        committed = self._confirm.committed(parts, timeout=2.0)
        for tp in committed:
            if tp.error is not None or tp.offset < 0:
                continue
            entries = self._pending.get(tp.partition)
            while entries and entries[0][0] < tp.offset:
                entries.popleft()
                self.stats.confirmed += 1
                self.stats.unconfirmed -= 1
