"""The embedded transport: an in-process queue straight into the candle store (no server needed).

Publishers (the ingestion feeds, one thread each) put chunks of closed candles on a bounded queue; one
writer thread drains it in batches (up to ``max_batch`` candles or ``linger_s`` of waiting) and hands
each batch to :class:`~thunes.stream.writer.BatchWriter`. The queue is bounded, so a store that falls
behind slows the feeds down instead of growing memory.

Delivery: a candle is in the store once :meth:`EmbeddedTransport.flush` returns. Candles still queued
when the process dies are lost from the queue, not from the store's point of view: on restart the
ingestion resumes from the store's last candle of each series and backfills the rest over REST.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from thunes.core.errors import StoreError
from thunes.data.store import CandleStore
from thunes.stream._codec import SeriesKey
from thunes.stream.writer import BatchWriter, ExtraSink

__all__ = ["EmbeddedTransport"]

log = logging.getLogger(__name__)


class EmbeddedTransport:
    """Publish candles into the store through one background writer thread."""

    def __init__(self, store_factory: Callable[[], CandleStore], *, extras: tuple[ExtraSink, ...] = (),
                 max_batch: int = 200_000, linger_s: float = 0.02, max_queue_chunks: int = 100_000,
                 retry_s: float = 1.0, metrics: Any = None) -> None:
        self._store_factory = store_factory
        self.metrics = metrics  # a thunes.ops.PipelineMetrics (messages in from the feed, batches written)
        self._extras = extras
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.retry_s = retry_s
        self._queue: queue.Queue[tuple[SeriesKey, np.ndarray] | None] = queue.Queue(maxsize=max_queue_chunks)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._fatal: BaseException | None = None
        self.writer: BatchWriter | None = None
        self.on_commit: Callable[[dict[SeriesKey, np.ndarray], float], None] | None = None

    def start(self) -> EmbeddedTransport:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stream-embedded-writer", daemon=True)
            self._thread.start()
            self._ready.wait(30)
            if self._fatal is not None:
                raise self._fatal
        return self

    def publish(self, series: SeriesKey, candles: np.ndarray) -> None:
        """Queue closed candles of one series (blocks while the queue is full)."""
        if self._fatal is not None:
            raise StoreError(f"the embedded stream writer stopped: {self._fatal}") from self._fatal
        if len(candles):
            if self.metrics is not None:
                self.metrics.received("websocket", len(candles))
            self._queue.put((series, candles))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far is committed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if self._fatal is not None:
                raise StoreError(f"the embedded stream writer stopped: {self._fatal}") from self._fatal
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self.flush(timeout)
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> EmbeddedTransport:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.writer = BatchWriter(self._store_factory(), extras=self._extras, on_commit=self.on_commit,
                                      store_factory=self._store_factory, metrics=self.metrics)
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._fatal = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    self._queue.task_done()
                    return
                batch = [first]
                size = len(first[1])
                deadline = time.monotonic() + self.linger_s
                stop = False
                while size < self.max_batch:
                    left = deadline - time.monotonic()
                    try:
                        item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        self._queue.task_done()
                        break
                    batch.append(item)
                    size += len(item[1])
                self._write(batch)
                for _ in batch:
                    self._queue.task_done()
                if stop:
                    return
        except BaseException as exc:  # noqa: BLE001 - surfaced to publishers
            log.exception("embedded stream writer died")
            self._fatal = exc
        finally:
            if self.writer is not None:
                self.writer.close()

    def _write(self, batch: list[tuple[SeriesKey, np.ndarray]]) -> None:
        while True:
            try:
                self.writer.write(batch)  # type: ignore[union-attr]
                return
            except StoreError as exc:
                # The store is down or busy: keep the batch and try again (the upsert makes it safe).
                log.warning("store write failed, retrying in %.1fs: %s", self.retry_s, exc)
                time.sleep(self.retry_s)
                self.writer.reconnect()  # type: ignore[union-attr]
