"""Candle sources: where a trading loop gets its closed candles, for one pair or many.

A :class:`CandleSource` hands out closed candles of several streams (symbol × timeframe) in the order
they closed, one at a time, to a single trading thread::

    source.start({key: last_ts, ...})     # per stream: the last candle the caller already has
    while ...:
        item = source.get(timeout=0.1)     # SourcedCandle(key, candle) or None
    source.stop()

Implementations:

* :class:`WebsocketSource` - one :class:`~thunes.live.feed.CandleFeed` per stream (websocket
  with reconnect, staleness detection and REST backfill), fanned into one queue. Used for the Spot
  Testnet, live, and the local exchange running its clock in real time.
* :class:`ReplaySource` - drives a local exchange's market clock itself: when every stream's closed
  candles have been handed out it moves the clock to the next candle close (in-process, or through
  ``POST /admin/clock`` of a local exchange in another process) and hands out every stream's new candle,
  in lockstep. No candle is missed and none waits on a websocket, so a replay runs as fast as the
  trading loop (or paced at ``bar_wall_s`` per bar). After a restart it first hands out every candle
  closed since the caller's ``last_ts`` (backfill), then steps on.

A Kafka topic (sibling issue) plugs in the same way: anything with ``start/get/stop/running``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError, ExchangeUnavailable, RateLimited, RetryableError, ThunesError
from thunes.core.events import Event, FeedReconnected, FeedStale
from thunes.core.timeframes import parse_timeframe
from thunes.live.feed import Candle

__all__ = [
    "CandleSource",
    "ReplaySource",
    "SourcedCandle",
    "StreamKey",
    "WebsocketSource",
    "frame_fetch",
    "port_fetch",
    "remote_clock",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, order=True)
class StreamKey:
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe}"


@dataclass(frozen=True, slots=True)
class SourcedCandle:
    key: StreamKey
    candle: Candle
    received_at: float  # perf_counter() when it reached this process (the candle -> order latency starts there)


@runtime_checkable
class CandleSource(Protocol):
    def start(self, last_ts: Mapping[StreamKey, int | None]) -> CandleSource: ...

    def get(self, timeout: float | None = None) -> SourcedCandle | None: ...

    def ready(self, limit: int) -> list[SourcedCandle]:
        """Up to ``limit`` candles already at hand, without waiting or moving a replay on (the rest of a bar
        whose first candle :meth:`get` handed out): the bot places their orders together."""
        ...

    def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...

    @property
    def exhausted(self) -> bool:
        """True when no candle will ever come again (the end of a replay)."""
        ...


# fetch(symbol, timeframe, since_ms, until_ms) -> closed candles with since_ms <= ts_ms < until_ms, in order.
Fetch = Callable[[str, str, int, int], list[Candle]]


def port_fetch(port: Any, *, limit: int = 1000) -> Fetch:
    """A :data:`Fetch` through the exchange port's klines (REST), paging by ``limit``."""
    def fetch(symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[Candle]:
        tf_ms = parse_timeframe(timeframe).ms
        out: list[Candle] = []
        since = since_ms
        while since < until_ms:
            frame = port.fetch_candles(symbol, timeframe, since=since, limit=limit)
            if frame is None or frame.empty:
                break
            stamps = ts_ms(frame)
            rows = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64")
            got = 0
            for t, (o, h, lo, c, v) in zip(stamps, rows):
                if since <= t < until_ms:
                    out.append(Candle(ts_ms=int(t), open=o, high=h, low=lo, close=c, volume=v, source="replay"))
                    got += 1
            last = int(stamps[-1])
            if last + tf_ms <= since or len(frame) < limit:
                break
            since = last + tf_ms
        return out
    return fetch


def frame_fetch(frames: Mapping[tuple[str, str], Any]) -> Fetch:
    """A :data:`Fetch` over candle frames in memory, keyed by (symbol, timeframe)."""
    cache = {k: (ts_ms(f), f[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64"))
             for k, f in frames.items()}

    def fetch(symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[Candle]:
        import numpy as np

        stamps, rows = cache[(symbol, timeframe)]
        lo, hi = int(np.searchsorted(stamps, since_ms)), int(np.searchsorted(stamps, until_ms))
        return [Candle(ts_ms=int(stamps[i]), open=float(rows[i, 0]), high=float(rows[i, 1]), low=float(rows[i, 2]),
                       close=float(rows[i, 3]), volume=float(rows[i, 4]), source="replay") for i in range(lo, hi)]
    return fetch


def remote_clock(base_url: str, *, timeout_s: float = 30.0) -> tuple[Callable[[], int], Callable[[int], None]]:
    """(now_ms, advance_to) of a local exchange in another process, through its ``/admin/clock``."""
    url = f"{base_url.rstrip('/')}/admin/clock"

    def call(payload: dict[str, Any] | None) -> int:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - loopback admin URL
                return int(json.loads(resp.read())["now"])
        except OSError as exc:
            raise ExchangeUnavailable(f"local exchange clock at {url}: {exc}") from exc

    def advance_to(t: int) -> None:
        call({"to": int(t)})

    return (lambda: call(None)), advance_to


class ReplaySource:
    """Lockstep replay of several streams by stepping the local exchange's market clock (module docstring).

    ``now_ms``/``advance_to`` are the exchange's market clock (``sim.now_ms``/``sim.advance_to`` in-process,
    :func:`remote_clock` otherwise); ``end_ms`` is where the data ends (no step beyond it).
    ``bar_wall_s`` paces the replay: at least that many wall seconds between two clock steps.
    """

    def __init__(self, keys: Iterable[StreamKey], *, fetch: Fetch, now_ms: Callable[[], int],
                 advance_to: Callable[[int], None], end_ms: int | None = None, bar_wall_s: float = 0.0) -> None:
        self.keys = tuple(sorted(set(keys)))
        if not self.keys:
            raise ConfigError("ReplaySource needs at least one stream")
        self._tf = {k: parse_timeframe(k.timeframe).ms for k in self.keys}
        self._fetch = fetch
        self._now = now_ms
        self._advance = advance_to
        self.end_ms = end_ms
        self.bar_wall_s = bar_wall_s
        self._last: dict[StreamKey, int | None] = {}
        self._pending: deque[SourcedCandle] = deque()
        self._started = False
        self._exhausted = False
        self._last_step = 0.0
        self._unfinished: int | None = None  # a collect cut short by a retryable error: its target
        self._retry_at = 0.0  # monotonic time before which it is not tried again
        self.steps = 0
        self.handed_out = 0
        self.fetch_retries = 0

    def start(self, last_ts: Mapping[StreamKey, int | None]) -> ReplaySource:
        now = self._now()
        for k in self.keys:
            last = last_ts.get(k)
            # No history: start with the candle closing next (nothing in the past is traded).
            self._last[k] = last if last is not None else (now // self._tf[k]) * self._tf[k] - self._tf[k]
        self._started = True
        self._collect(now)  # the backfill after a restart
        return self

    @property
    def running(self) -> bool:
        return self._started

    @property
    def exhausted(self) -> bool:
        return self._exhausted and not self._pending

    def stop(self) -> None:
        self._started = False

    def _collect(self, now: int) -> None:
        """Queue every stream's candles closed by ``now`` and newer than what was handed out, by close time.

        A retryable error (429, 5xx, timeout) does not end the replay: what was fetched is queued, the rest
        is fetched again by :meth:`get` after the exchange's ``Retry-After`` (or 1 s), from where each stream
        stopped, so no candle is skipped or handed out twice."""
        batch: list[SourcedCandle] = []
        self._unfinished = None
        try:
            for k in self.keys:
                tf = self._tf[k]
                last = self._last[k]
                since = (last + tf) if last is not None else 0
                until = (now // tf) * tf  # open time of the forming candle: everything before it has closed
                if until <= since:
                    continue
                candles = self._fetch(k.symbol, k.timeframe, since, until)
                batch.extend(SourcedCandle(k, c, 0.0) for c in candles)
                if candles:
                    self._last[k] = candles[-1].ts_ms
        except RetryableError as exc:
            wait = exc.retry_after if isinstance(exc, RateLimited) and exc.retry_after else 1.0
            self._unfinished, self._retry_at = now, time.monotonic() + min(wait, 60.0)
            self.fetch_retries += 1
            log.warning("replay: fetching candles failed (%s); trying again in %.1f s", exc, min(wait, 60.0))
        finally:
            # Received when the step's candles are all in, as a websocket delivers a bar's klines together: the
            # wait of a pair's candle behind the others handed out before it counts in its latency.
            stamp = time.perf_counter()
            batch.sort(key=lambda s: (s.candle.ts_ms + self._tf[s.key], s.key))
            self._pending.extend(SourcedCandle(s.key, s.candle, stamp) for s in batch)

    def _next_close(self, now: int) -> int:
        return min((now // tf + 1) * tf for tf in self._tf.values())

    def get(self, timeout: float | None = None) -> SourcedCandle | None:
        if not self._started:
            return None
        if self._unfinished is not None and not self._pending:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout if timeout is not None else wait))
                return None
            self._collect(self._unfinished)
            if self._unfinished is not None or not self._pending:
                return None
        if not self._pending and not self._exhausted:
            target = self._next_close(self._now())
            if self.end_ms is not None and target > self.end_ms:
                self._exhausted = True
                return None
            wait = self._last_step + self.bar_wall_s - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout if timeout is not None else wait))
                if self._last_step + self.bar_wall_s > time.monotonic():
                    return None
            self._advance(target)
            self._last_step = time.monotonic()
            self.steps += 1
            self._collect(target)
        if not self._pending:
            return None
        self.handed_out += 1
        return self._pending.popleft()

    def ready(self, limit: int) -> list[SourcedCandle]:
        out: list[SourcedCandle] = []
        while self._started and self._pending and len(out) < limit:
            self.handed_out += 1
            out.append(self._pending.popleft())
        return out


class WebsocketSource:
    """One websocket :class:`CandleFeed` per stream, merged into one queue in arrival order.

    ``feeds`` maps each stream to a feed that is not started yet (:func:`thunes.live.assembly.feed_for`
    builds them). A pump thread per feed moves its candles into the shared queue and turns the feed's
    counters into :class:`FeedReconnected` / :class:`FeedStale` events (``on_event``).
    """

    def __init__(self, feeds: Mapping[StreamKey, Any], *, on_event: Callable[[Event], None] | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        if not feeds:
            raise ConfigError("WebsocketSource needs at least one feed")
        self.feeds = dict(feeds)
        self._on_event = on_event
        self._now = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._queue: queue.Queue[SourcedCandle] = queue.Queue()
        self._stop = threading.Event()
        self._pumps: list[threading.Thread] = []
        self._fatal: BaseException | None = None

    def start(self, last_ts: Mapping[StreamKey, int | None]) -> WebsocketSource:
        for key, feed in self.feeds.items():
            if not feed.running:
                feed.start(last_ts=last_ts.get(key))
            t = threading.Thread(target=self._pump, args=(key, feed), name=f"pump-{key.symbol}", daemon=True)
            t.start()
            self._pumps.append(t)
        return self

    def _pump(self, key: StreamKey, feed: Any) -> None:
        reconnects, stale = feed.stats.reconnects, feed.stats.stale
        while not self._stop.is_set():
            try:
                candle = feed.get(timeout=0.1)
            except BaseException as exc:  # noqa: BLE001 - a dead feed is reported to the trading thread
                self._fatal = exc
                return
            if candle is not None:
                self._queue.put(SourcedCandle(key, candle, time.perf_counter()))
            if self._on_event is not None:
                if feed.stats.reconnects != reconnects:
                    reconnects = feed.stats.reconnects
                    self._emit(FeedReconnected(ts_ms=self._now(), symbol=key.symbol, timeframe=key.timeframe,
                                               reconnects=reconnects))
                if feed.stats.stale != stale:
                    stale = feed.stats.stale
                    silent = time.time() - feed.stats.last_message_at if feed.stats.last_message_at else 0.0
                    self._emit(FeedStale(ts_ms=self._now(), symbol=key.symbol, timeframe=key.timeframe,
                                         silent_s=round(silent, 3)))

    def _emit(self, event: Event) -> None:
        try:
            assert self._on_event is not None
            self._on_event(event)
        except Exception:  # noqa: BLE001 - watching the feed never kills the pump
            log.exception("feed event handler failed")

    def get(self, timeout: float | None = None) -> SourcedCandle | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._fatal is not None:
                raise ThunesError(f"a candle feed died: {self._fatal}") from self._fatal
            return None
        return SourcedCandle(item.key, item.candle, item.received_at)

    def ready(self, limit: int) -> list[SourcedCandle]:
        out: list[SourcedCandle] = []
        while len(out) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            out.append(SourcedCandle(item.key, item.candle, item.received_at))
        return out

    @property
    def running(self) -> bool:
        return any(f.running for f in self.feeds.values())

    @property
    def exhausted(self) -> bool:
        return False

    def stop(self) -> None:
        self._stop.set()
        for feed in self.feeds.values():
            feed.stop()
        for t in self._pumps:
            t.join(2)
