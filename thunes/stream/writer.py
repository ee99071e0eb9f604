"""Batches of closed candles into the candle store: the one write path of every transport.

:class:`BatchWriter` takes chunks ``(SeriesKey, candles)`` (structured arrays, see
:mod:`thunes.stream._codec`), merges them per series (a later copy of a timestamp wins), and upserts each
series in one store transaction (:meth:`thunes.data.store.CandleStore.write_arrays`, so the store's
validation and its replica apply). The upsert is what makes every transport idempotent: a candle delivered twice
(Kafka redelivery after a crash, a backfill overlapping the stream) is written once.

An exchange may correct a candle after it closed. When a chunk overlaps what the store already holds,
the stored values are read first and every candle whose values differ is logged (old -> new) and
counted in ``stats.revised`` before the upsert replaces it. Chunks past the stored end (the usual case)
skip that read.

Extra sinks (:class:`ExtraSink`, e.g. InfluxDB) receive each series' candles after the store commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from thunes.core.errors import StoreError
from thunes.data.store import CandleStore
from thunes.stream._codec import SeriesKey, source_name

__all__ = ["BatchWriter", "ExtraSink", "WriterStats", "merge_chunks"]

log = logging.getLogger(__name__)

_PRICE_FIELDS = ("open", "high", "low", "close", "volume")


class ExtraSink(Protocol):
    """A secondary destination written after the store commit (best effort, never blocks the store)."""

    def write(self, series: SeriesKey, candles: np.ndarray) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class WriterStats:
    """Counters (read from any thread)."""

    batches: int = 0
    candles: int = 0  # candles received (after merging duplicates within a batch)
    written: int = 0  # rows inserted or changed in the store
    revised: int = 0  # stored closed candles whose values changed (exchange corrections)
    rejected: int = 0  # rows the store's validation refused
    skipped: int = 0  # candles of another exchange than the store's
    extra_errors: int = 0
    revisions: list[str] = field(default_factory=list)  # the last 50 revision messages


def merge_chunks(chunks: Iterable[tuple[SeriesKey, np.ndarray]]) -> dict[SeriesKey, np.ndarray]:
    """Candles per series, sorted by time, one per timestamp (the last one given wins)."""
    grouped: dict[SeriesKey, list[np.ndarray]] = {}
    for series, arr in chunks:
        if len(arr):
            grouped.setdefault(series, []).append(arr)
    out: dict[SeriesKey, np.ndarray] = {}
    for series, parts in grouped.items():
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        ts = arr["ts"]
        if len(arr) > 1 and not (np.diff(ts) > 0).all():
            # Keep the last occurrence of each timestamp: reverse, unique (first of reversed), sort.
            rev = arr[::-1]
            _, first = np.unique(rev["ts"], return_index=True)
            arr = rev[first]
        out[series] = arr
    return out


class BatchWriter:
    """Upserts batches into ``store`` (and then into ``extras``); thread-safe."""

    def __init__(self, store: CandleStore, *, exchange: str | None = None, extras: Iterable[ExtraSink] = (),
                 on_commit: Callable[[dict[SeriesKey, np.ndarray], float], None] | None = None,
                 store_factory: Callable[[], CandleStore] | None = None, metrics: Any = None,
                 sink_name: str = "candle_store") -> None:
        self.store = store
        self.metrics = metrics  # a thunes.ops.PipelineMetrics: batch size, sink latency, messages out
        self.sink_name = sink_name
        self._store_factory = store_factory  # to reconnect after the database went away
        self.on_commit = on_commit  # called with the batch and the wall time of its commit (benchmarks)
        self.exchange = exchange.lower() if exchange else None
        self.extras = list(extras)
        self.stats = WriterStats()
        self._lock = threading.Lock()

    def write(self, chunks: Iterable[tuple[SeriesKey, np.ndarray]]) -> int:
        """Write one batch; returns rows inserted or changed. Raises ``StoreError`` when the store fails
        (the caller retries the whole batch: series already committed are upserted again, harmlessly)."""
        merged = merge_chunks(chunks)
        started = time.perf_counter()
        try:
            written = self._write(merged)
        except StoreError:
            if self.metrics is not None:
                self.metrics.error("store")
            raise
        except Exception as exc:
            if _is_database_error(exc):  # a read (last_ts, load) hit a dead connection: same as a failed write
                if self.metrics is not None:
                    self.metrics.error("store")
                raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc
            raise
        if self.metrics is not None:
            self.metrics.wrote(self.sink_name, sum(len(a) for a in merged.values()), time.perf_counter() - started)
        return written

    def reconnect(self) -> bool:
        """Close the store and open it again (after a database restart); False while that fails."""
        if self._store_factory is None:
            return False
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - the old connection is already broken
            pass
        try:
            self.store = self._store_factory()
        except Exception as exc:  # noqa: BLE001 - database still down: the caller retries later
            log.warning("reopening the store failed: %s", exc)
            return False
        log.info("store reopened: %r", self.store)
        return True

    def _write(self, merged: dict[SeriesKey, np.ndarray]) -> int:
        written = 0
        with self._lock:
            for series, arr in merged.items():
                if self.exchange is not None and series.exchange != self.exchange:
                    self.stats.skipped += len(arr)
                    continue
                self._check_revisions(series, arr)
                codes = np.unique(arr["source"])
                for code in codes:
                    part = arr if len(codes) == 1 else arr[arr["source"] == code]
                    result = self.store.write_arrays(series.symbol, series.timeframe,
                                                     (part["ts"], *(part[f] for f in _PRICE_FIELDS)),
                                                     mode="upsert", source=source_name(int(code)))
                    written += result.written
                    self.stats.rejected += result.n_rejected
                self.stats.candles += len(arr)
            self.stats.batches += 1
            self.stats.written += written
            if self.on_commit is not None:
                self.on_commit(merged, time.time())
            for series, arr in merged.items():
                for extra in self.extras:
                    try:
                        extra.write(series, arr)
                    except Exception as exc:  # noqa: BLE001 - an extra sink never stops the store
                        self.stats.extra_errors += 1
                        log.warning("extra sink %s failed for %s: %s", type(extra).__name__, series, exc)
        return written

    def _check_revisions(self, series: SeriesKey, arr: np.ndarray) -> None:
        last = self.store.last_ts(series.symbol, series.timeframe)
        ts = arr["ts"]
        if last is None or int(ts[0]) > last:
            return
        stored = self.store.load_arrays(series.symbol, series.timeframe, int(ts[0]), min(int(ts[-1]), last) + 1)
        if not len(stored[0]):
            return
        common, new_idx, old_idx = np.intersect1d(ts, stored[0], assume_unique=True, return_indices=True)
        if not len(common):
            return
        old = np.column_stack([stored[i + 1][old_idx] for i in range(5)])
        new = np.column_stack([arr[f][new_idx] for f in _PRICE_FIELDS])
        changed = np.flatnonzero((old != new).any(axis=1))
        for k in changed:
            text = (f"{series.symbol} {series.timeframe} candle {int(common[k])} revised after close: "
                    f"{_ohlcv(old[k])} -> {_ohlcv(new[k])}")
            log.warning(text, extra={"fields": {"symbol": series.symbol, "timeframe": series.timeframe,
                                                "ts": int(common[k]), "event": "candle_revised"}})
            self.stats.revisions.append(text)
        self.stats.revised += len(changed)
        del self.stats.revisions[:-50]

    def close(self) -> None:
        for extra in self.extras:
            try:
                extra.close()
            except Exception:  # noqa: BLE001 - closing must not mask the cause of a shutdown
                log.warning("closing %s failed", type(extra).__name__, exc_info=True)
        self.store.close()


def _is_database_error(exc: BaseException) -> bool:
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a core dependency
        return False
    return isinstance(exc, psycopg.Error)


def _ohlcv(row: np.ndarray) -> str:
    return "o={:g} h={:g} l={:g} c={:g} v={:g}".format(*(float(x) for x in row))
