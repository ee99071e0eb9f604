"""Ingestion: closed candles of many (symbol, timeframe) series from the exchange's websocket, without holes.

:class:`~thunes.live.feed.CandleFeed` (the trader's websocket client, combined: up to
``streams_per_connection`` series on one connection) does the hard part it already does for the
trader: reconnect with backoff (dropped sockets, ``serverShutdown``, the 24 h connection limit, silent
stalls), only closed klines (``x=true``), and REST backfill of every gap, per series, on (re)connect or
when a kline skips candles. Instead of a store, the feeds publish to a transport (the embedded queue or
Kafka), through a small adapter with the store's ``upsert`` signature.

Where each series starts: ``resume(series)`` (the store's last candle, for the embedded transport or a
producer given ``--store``) or, when nothing is known, ``lookback`` candles before the live one, fetched
from REST by the feed's first backfill. Because the sink upserts, starting earlier than needed only
costs a few REST calls.

Repairs: the Kafka producer reports candles a restarted broker may have lost (see
:mod:`thunes.stream.kafka`); :meth:`Ingestor.request_backfill` fetches them again from REST, from the
lost candle up to the feed's last closed candle (never the forming one), retrying transient errors.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from thunes.core.backoff import Backoff
from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError, RetryableError
from thunes.core.timeframes import parse_timeframe
from thunes.live.feed import CandleFeed, FeedOptions
from thunes.stream._codec import SeriesKey, frame_array

__all__ = ["IngestOptions", "IngestStats", "Ingestor", "Publisher"]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """A transport: :class:`~thunes.stream.embedded.EmbeddedTransport` or
    :class:`~thunes.stream.kafka.KafkaPublisher`."""

    def publish(self, series: SeriesKey, candles: np.ndarray) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestOptions:
    """What to ingest and how hard to hold on to the websocket (per-feed settings of ``FeedOptions``)."""

    ws_url: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    exchange: str = "binance"
    lookback: int = 1000
    stale_after_s: float = 60.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    heartbeat_s: float = 20.0
    streams_per_connection: int = 200  # Binance allows 1024 streams per connection

    def __post_init__(self) -> None:
        if not self.symbols or not self.timeframes:
            raise ConfigError("stream ingestion needs at least one symbol and one timeframe")
        for tf in self.timeframes:
            parse_timeframe(tf)
        if self.lookback < 0:
            raise ConfigError(f"lookback must be >= 0 candles, got {self.lookback}")
        if not 1 <= self.streams_per_connection <= 1024:
            raise ConfigError(f"streams_per_connection must be within [1, 1024], got {self.streams_per_connection}")


@dataclass(slots=True)
class IngestStats:
    repairs: int = 0
    repaired_candles: int = 0
    repair_errors: int = 0  # REST errors retried by the start-up probe and the repairs
    connections: list[Any] = field(default_factory=list)  # FeedStats of each websocket connection


class _FeedSink:
    """The store-shaped face a CandleFeed writes to: closed candles go to the transport instead."""

    def __init__(self, publisher: Publisher, keys: dict[tuple[str, str], SeriesKey]) -> None:
        self._publisher = publisher
        self._keys = keys

    def upsert(self, symbol: str, timeframe: str, frame: pd.DataFrame, source: str = "stream") -> int:
        self._publisher.publish(self._keys[(symbol, timeframe)],
                                frame_array(frame, source if source == "backfill" else "stream"))
        return len(frame)


class Ingestor:
    """Run one feed per (symbol, timeframe) into ``publisher``; REST goes through the exchange ``port``."""

    def __init__(self, port: Any, publisher: Publisher, options: IngestOptions, *,
                 resume: Callable[[SeriesKey], int | None] | None = None, seed: int | None = None) -> None:
        self.port = port
        self.publisher = publisher
        self.options = options
        self._resume = resume
        self._rng = np.random.default_rng(seed)
        self._backoff = Backoff(initial_s=options.backoff_initial_s, max_s=options.backoff_max_s, jitter=0.5,
                                retries=None)
        self._fetch_lock = threading.Lock()  # the ccxt client is not thread-safe
        self.feeds: dict[SeriesKey, CandleFeed] = {}
        self.stats = IngestStats()
        self._repairs: queue.Queue[tuple[SeriesKey, int] | None] = queue.Queue()
        self._repair_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._live_ts: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Ingestor:
        markets = self.port.load_markets()
        o = self.options
        keys: dict[tuple[str, str], SeriesKey] = {}
        plan: list[tuple[SeriesKey, FeedOptions]] = []
        for symbol in o.symbols:
            market = markets.get(symbol)
            if market is None:
                raise ConfigError(f"the exchange has no market {symbol!r}")
            for tf in o.timeframes:
                series = SeriesKey.of(o.exchange, symbol, tf)
                keys[(series.symbol, series.timeframe)] = series
                plan.append((series, FeedOptions(
                    ws_url=o.ws_url, symbol=series.symbol, exchange_symbol=market.exchange_symbol,
                    timeframe=series.timeframe, stale_after_s=o.stale_after_s, backoff_initial_s=o.backoff_initial_s,
                    backoff_max_s=o.backoff_max_s, heartbeat_s=o.heartbeat_s)))
        sink = _FeedSink(self.publisher, keys)
        by_options = {id(opts): series for series, opts in plan}
        n = o.streams_per_connection
        for i in range(0, len(plan), n):
            group = plan[i:i + n]
            feed = CandleFeed.combined([opts for _, opts in group],
                                       fetch=lambda opts: self._fetcher(by_options[id(opts)]),
                                       sink_factory=lambda: sink, rng=np.random.default_rng(self._rng.integers(1 << 62)))
            for series, _ in group:
                self.feeds[series] = feed
            self.stats.connections.append(feed.stats)
            feed.start(last={(s.symbol, s.timeframe): self._start_ts(s) for s, _ in group})
        self._repair_thread = threading.Thread(target=self._repair_loop, name="stream-repair", daemon=True)
        self._repair_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._repairs.put(None)
        feeds = {id(f): f for f in self.feeds.values()}.values()
        for feed in feeds:
            feed._stopping.set()  # all at once, then join each
        for feed in feeds:
            feed.stop(timeout)
        if self._repair_thread is not None:
            self._repair_thread.join(timeout)

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(f.wait_connected(max(0.0, deadline - time.monotonic())) for f in self.feeds.values())

    def last_ts(self, series: SeriesKey) -> int | None:
        """Open time of the last closed candle the feed of ``series`` published."""
        return self.feeds[series].last_ts_of(series.symbol, series.timeframe)

    def request_backfill(self, series: SeriesKey, from_ts: int) -> None:
        """Fetch ``series`` again from ``from_ts`` (thread-safe; the Kafka producer's ``on_lost``)."""
        self._repairs.put((series, int(from_ts)))

    def __enter__(self) -> Ingestor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------------
    def _fetcher(self, series: SeriesKey) -> Callable[[int, int], pd.DataFrame]:
        def fetch(since: int, limit: int) -> pd.DataFrame:
            with self._fetch_lock:
                return self.port.fetch_candles(series.symbol, series.timeframe, since=since, limit=limit)
        return fetch

    def _fetch_retrying(self, series: SeriesKey, since: int | None, limit: int) -> pd.DataFrame | None:
        """REST candles, retrying the retryable errors with backoff; None once stopping."""
        fetch = self._fetcher(series)
        attempt = 0
        while not self._stopping.is_set():
            try:
                return fetch(since, limit)  # type: ignore[arg-type]
            except RetryableError as exc:
                self.stats.repair_errors += 1
                delay = self._backoff.wait(attempt, exc, float(self._rng.random()))
                log.info("REST candles of %s failed (%s); retrying in %.2fs", series, exc, delay)
                attempt += 1
                self._stopping.wait(delay)
        return None

    def _start_ts(self, series: SeriesKey) -> int | None:
        if self._resume is not None:
            last = self._resume(series)
            if last is not None:
                return int(last)
        if self.options.lookback == 0:
            return None
        tf_ms = parse_timeframe(series.timeframe).ms
        live = self._live_ts.get(series.timeframe)
        if live is None:
            # Candle boundaries are the same for every symbol: one probe per timeframe, not per series.
            latest = self._fetch_retrying(series, None, 1)  # the forming candle
            if latest is None or latest.empty:
                return None
            live = self._live_ts[series.timeframe] = int(ts_ms(latest)[-1])
        return live - (self.options.lookback + 1) * tf_ms

    def _repair_loop(self) -> None:
        while not self._stopping.is_set():
            item = self._repairs.get()
            if item is None:
                return
            wanted = {item[0]: item[1]}
            while True:  # merge queued requests: one REST pass per series
                try:
                    more = self._repairs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    return
                wanted[more[0]] = min(more[1], wanted.get(more[0], more[1]))
            for series, from_ts in wanted.items():
                self._repair(series, from_ts)

    def _repair(self, series: SeriesKey, from_ts: int) -> None:
        end = self.last_ts(series) if series in self.feeds else None
        if end is None or from_ts > end:
            return
        self.stats.repairs += 1
        log.info("backfilling %s from %d to %d after a transport loss", series, from_ts, end)
        tf_ms = parse_timeframe(series.timeframe).ms
        since = from_ts
        while since <= end and not self._stopping.is_set():
            frame = self._fetch_retrying(series, since, 1000)
            if frame is None:
                return
            stamps = ts_ms(frame) if not frame.empty else np.zeros(0, dtype="int64")
            keep = (stamps >= since) & (stamps <= end)  # closed candles only: the feed has seen them close
            if not keep.any():
                return
            part = frame.loc[keep]
            self.publisher.publish(series, frame_array(part, "backfill"))
            self.stats.repaired_candles += int(keep.sum())
            since = int(stamps[keep][-1]) + tf_ms
