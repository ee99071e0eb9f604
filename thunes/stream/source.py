"""Closed candles for a bot from the stream topic: one ingestion, many bots.

:class:`KafkaCandleSource` reads the candle topic (every partition, assigned directly: no consumer
group, so any number of bots read the same candles without sharing them) and hands out the candles of
the chosen (symbol, timeframe) pairs, each pair in time order and exactly once:

* duplicates (redelivery, a backfill overlapping the stream) are dropped;
* a candle that arrives after a later one (the producer's REST repair after a broker loss) is put back
  in order: candles after a hole are held until the hole fills, for at most ``gap_wait_s``; then they
  are released and the hole is logged and counted (``stats.gaps``) — the store still gets them.

Interface (kept small for the bot's ``CandleSource`` protocol):

* ``start(last_ts=None)``; ``get(timeout) -> Candle | None`` for a single-pair source (the trader's
  :class:`~thunes.live.feed.CandleFeed` interface: ``running``, ``stop()``, ``last_ts``);
* ``candles()``: an iterator of :class:`~thunes.live.feed.Candle` (single pair);
* ``next(timeout) -> (symbol, timeframe, Candle) | None`` and iteration over the same triples for
  several pairs; iterations end after :meth:`stop`.

Where reading starts: after ``last_ts`` (or each pair's ``after`` time) from the beginning of the log,
else at the log's end (only new candles).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from thunes.core.errors import ConfigError
from thunes.core.timeframes import parse_timeframe
from thunes.live.feed import Candle
from thunes.stream._codec import CANDLE_DTYPE, VALUE_SIZE, SeriesKey, source_name
from thunes.stream.kafka import _RDKAFKA_LOG, DEFAULT_TOPIC, kafka_module

__all__ = ["KafkaCandleSource", "SourceStats"]

log = logging.getLogger(__name__)

Pair = tuple[str, str]


@dataclass(slots=True)
class SourceStats:
    candles: int = 0
    duplicates: int = 0
    gaps: int = 0
    reassigns: int = 0


class _PairState:
    __slots__ = ("held", "held_since", "key", "last", "tf_ms")

    def __init__(self, key: SeriesKey, last: int | None) -> None:
        self.key = key
        self.tf_ms = parse_timeframe(key.timeframe).ms
        self.last = last
        self.held: dict[int, Candle] = {}
        self.held_since: float | None = None


class KafkaCandleSource:
    """Closed candles of ``pairs`` ((symbol, timeframe), ...) from the stream topic at ``bootstrap``."""

    def __init__(self, bootstrap: str, pairs: Iterable[Pair], *, exchange: str = "binance",
                 topic: str = DEFAULT_TOPIC, after: Mapping[Pair, int] | None = None,
                 gap_wait_s: float = 30.0, poll_s: float = 0.1) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.gap_wait_s = gap_wait_s
        self.poll_s = poll_s
        self._pairs: dict[bytes, _PairState] = {}
        for symbol, timeframe in pairs:
            key = SeriesKey.of(exchange, symbol, timeframe)
            self._pairs[key.encode()] = _PairState(key, None)
        if not self._pairs:
            raise ConfigError("KafkaCandleSource needs at least one (symbol, timeframe) pair")
        self._after = dict(after or {})
        self._ready: list[tuple[str, str, Candle]] = []
        self._consumer: Any = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.stats = SourceStats()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, *, last_ts: int | None = None) -> KafkaCandleSource:
        """Start reading. ``last_ts`` (single pair) or ``after`` (per pair): the open time of the last
        candle already had; candles after it are read from the beginning of the log."""
        ck = kafka_module()
        if last_ts is not None:
            if len(self._pairs) != 1:
                raise ConfigError("last_ts is for a single-pair source; give `after` per pair instead")
            only = next(iter(self._pairs.values()))
            self._after[(only.key.symbol, only.key.timeframe)] = int(last_ts)
        for state in self._pairs.values():
            state.last = self._after.get((state.key.symbol, state.key.timeframe))
        self._from_start = any(s.last is not None for s in self._pairs.values())
        self._consumer = ck.Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"thunes-source-{uuid.uuid4().hex}",
                                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                      "topic.metadata.refresh.interval.ms": 2_000, "logger": _RDKAFKA_LOG})
        self._stopped.clear()
        self._assigned = 0
        self._assign()  # no topic yet (no producer has run): retried on every poll
        return self

    def _assign(self) -> bool:
        ck = kafka_module()
        meta = self._consumer.list_topics(timeout=5.0).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        where = ck.OFFSET_BEGINNING if self._from_start else ck.OFFSET_END
        self._consumer.assign([ck.TopicPartition(self.topic, p, where) for p in sorted(meta.partitions)])
        self._assigned = len(meta.partitions)
        self._from_start = True  # after a broker reset, the new log is read from its beginning
        return True

    @property
    def running(self) -> bool:
        return self._consumer is not None and not self._stopped.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    @property
    def last_ts(self) -> int | None:
        """Open time of the last candle handed out (single-pair source)."""
        return next(iter(self._pairs.values())).last if len(self._pairs) == 1 else None

    def __enter__(self) -> KafkaCandleSource:
        return self if self._consumer is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading -----------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Candle | None:
        """The next closed candle of a single-pair source, or None after ``timeout`` seconds."""
        item = self.next(timeout)
        return None if item is None else item[2]

    def next(self, timeout: float | None = None) -> tuple[str, str, Candle] | None:
        """The next ``(symbol, timeframe, candle)``, or None after ``timeout`` seconds (or once stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._stopped.is_set():
                return None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._poll(self.poll_s if left is None else min(self.poll_s, left))
        self.stats.candles += 1
        return self._ready.pop(0)

    def __iter__(self) -> Iterator[tuple[str, str, Candle]]:
        """``(symbol, timeframe, candle)`` until :meth:`stop` (from another thread)."""
        while True:
            item = self.next(None)
            if item is None:
                return
            yield item

    def candles(self) -> Iterator[Candle]:
        """The candles of a single-pair source until :meth:`stop`."""
        if len(self._pairs) != 1:
            raise ConfigError("candles() is for a single-pair source; iterate the source for several pairs")
        for _, _, candle in self:
            yield candle

    def _poll(self, timeout: float) -> None:
        ck = kafka_module()
        with self._lock:
            if self._consumer is None:
                return
            if not self._assigned and not self._assign():
                time.sleep(timeout)
                return
            msgs = self._consumer.consume(10_000, timeout)
        touched: set[bytes] = set()
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
                    self.stats.reassigns += 1
                    time.sleep(0.2)
                    with self._lock:
                        if self._consumer is not None:
                            self._assign()
                continue
            state = self._pairs.get(m.key())
            value = m.value()
            if state is None or value is None or len(value) != VALUE_SIZE:
                continue
            row = np.frombuffer(value, dtype=CANDLE_DTYPE)[0]
            ts = int(row["ts"])
            if (state.last is not None and ts <= state.last) or ts in state.held:
                self.stats.duplicates += 1
                continue
            state.held[ts] = Candle(ts_ms=ts, open=float(row["open"]), high=float(row["high"]),
                                    low=float(row["low"]), close=float(row["close"]),
                                    volume=float(row["volume"]), source=source_name(int(row["source"])))
            touched.add(m.key())
        now = time.monotonic()
        for state in self._pairs.values():
            if state.held:
                self._release(state, now)

    def _release(self, state: _PairState, now: float) -> None:
        while state.held:
            nxt = min(state.held)
            expected = None if state.last is None else state.last + state.tf_ms
            if expected is not None and nxt > expected:
                if state.held_since is None:
                    state.held_since = now
                if now - state.held_since < self.gap_wait_s:
                    return  # wait for the hole to be filled (a repair may be on its way)
                missing = (nxt - expected) // state.tf_ms
                self.stats.gaps += 1
                log.warning("%s: %d candle(s) before %d never arrived within %.0fs; continuing", state.key,
                            missing, nxt, self.gap_wait_s)
            state.held_since = None
            candle = state.held.pop(nxt)
            state.last = nxt
            self._ready.append((state.key.symbol, state.key.timeframe, candle))
