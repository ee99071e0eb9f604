"""Closed candles from the exchange's websocket kline stream, with no hole the exchange has data for.

The trader must see every closed candle exactly once and in order, even though websockets drop,
stall and lose messages. :class:`CandleFeed` runs the stream in its own thread (with its own asyncio
loop), so a slow order call in the trading thread never delays reception, and hands closed candles to
the trader through a queue.

How the guarantees are kept:

* **Reconnect** with exponential backoff and jitter (:class:`thunes.core.backoff.Backoff`, the one retry rule); after every reconnect the
  kline stream is subscribed again (Binance ``SUBSCRIBE`` on ``/ws``).
* **Heartbeat / staleness**: the client pings (aiohttp heartbeat) and also treats a connection that
  delivers no message for ``stale_after_s`` as dead, which catches a server that answers pings but
  stopped streaming (a stall).
* **Backfill**: the first kline after a (re)subscribe tells the current candle's open time ``t``;
  everything between the last candle handed out and ``t`` is closed and is fetched over REST before
  anything newer is handed out. The same happens whenever a kline arrives that skips candles (a lost
  ``x=true`` message). REST failures are retried with the same backoff; a candle is never skipped
  because the REST call failed once.
* **Store**: every closed candle is upserted into the candle store (``source="stream"`` or
  ``"backfill"``) from the feed thread before it is handed to the trader.
* **Many series, one connection**: :meth:`CandleFeed.combined` subscribes several kline streams on one
  socket (the streaming pipeline's ingestion); each series keeps its own order and backfill.

ccxt.pro's ``watch_ohlcv`` ignores the kline's ``x`` (closed) flag and does no backfill, which is why
the stream is read directly here; REST goes through the exchange port, so the ccxt adapter's error
translation and the local exchange's faults apply to backfill as they do to orders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import numpy as np
import pandas as pd

from thunes.core.backoff import Backoff
from thunes.core.candles import candles_frame, ts_ms
from thunes.core.errors import ConfigError, RetryableError, ThunesError
from thunes.core.timeframes import parse_timeframe

__all__ = [
    "Candle",
    "CandleFeed",
    "CandleSink",
    "FeedOptions",
    "FeedStats",
    "frame_from_candles",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candle:
    """One closed candle. ``ts_ms`` is its open time; ``source`` is ``stream`` or ``backfill``."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    source: str = "stream"


def frame_from_candles(candles: list[Candle]) -> pd.DataFrame:
    """The canonical candle frame of a list of candles (in the given order)."""
    return candles_frame(
        np.array([c.ts_ms for c in candles], dtype="int64"),
        [c.open for c in candles], [c.high for c in candles], [c.low for c in candles],
        [c.close for c in candles], [c.volume for c in candles],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOptions:
    """Where the stream is and how hard to hold on to it.

    ``ws_url`` is the market-stream base (``wss://stream.binance.com:9443/ws``, the testnet's
    ``wss://stream.testnet.binance.vision/ws``, or the local exchange's ``ws://127.0.0.1:PORT/ws``).
    """

    ws_url: str
    symbol: str
    exchange_symbol: str
    timeframe: str
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    backoff_factor: float = 2.0
    jitter: float = 0.5
    stale_after_s: float = 60.0
    heartbeat_s: float = 20.0
    connect_timeout_s: float = 10.0
    backfill_limit: int = 1000

    def __post_init__(self) -> None:
        parse_timeframe(self.timeframe)
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"FeedOptions.jitter must be within [0, 1], got {self.jitter}")
        if self.stale_after_s <= 0 or self.backoff_initial_s <= 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ConfigError(
                "FeedOptions: stale_after_s and backoff_initial_s must be > 0 and backoff_max_s >= "
                f"backoff_initial_s (got {self.stale_after_s}, {self.backoff_initial_s}, {self.backoff_max_s})"
            )

    def backoff(self) -> Backoff:
        """The reconnect and backfill-retry waits (no retry limit: the feed holds on until stopped)."""
        return Backoff(initial_s=self.backoff_initial_s, max_s=self.backoff_max_s, factor=self.backoff_factor,
                       jitter=self.jitter, retries=None)

    @property
    def stream_name(self) -> str:
        return f"{self.exchange_symbol.lower()}@kline_{self.timeframe}"


@dataclass(slots=True)
class FeedStats:
    """Counters for monitoring and tests (read them from any thread; ints are updated atomically)."""

    connects: int = 0
    reconnects: int = 0
    stale: int = 0
    malformed: int = 0
    stream_candles: int = 0
    backfilled: int = 0
    backfill_errors: int = 0
    stored: int = 0
    last_message_at: float = 0.0
    errors: list[str] = field(default_factory=list)


class CandleSink(Protocol):
    """Where closed candles are persisted (the candle store's ``upsert``)."""

    def upsert(self, symbol: str, timeframe: str, frame: pd.DataFrame, source: str = ...) -> int: ...


# fetch(since_ms, limit) -> candle frame, as ExchangePort.fetch_candles bound to symbol/timeframe.
Fetch = Callable[[int, int], pd.DataFrame]


class _Stop(Exception):
    pass


class _Series:
    """One (symbol, timeframe) of a feed: its stream, its REST backfill and the last candle handed out."""

    __slots__ = ("fetch", "last_ts", "options", "tf_ms")

    def __init__(self, options: FeedOptions, fetch: Fetch) -> None:
        self.options = options
        self.fetch = fetch
        self.tf_ms = parse_timeframe(options.timeframe).ms
        self.last_ts: int | None = None


class CandleFeed:
    """Closed candles of one symbol/timeframe, in order, without holes; runs in a background thread.

    ``fetch`` is the REST backfill (``since_ms, limit -> frame``); ``sink_factory`` is called once in
    the feed thread to open the store (SQLite connections belong to the thread that opened them).
    ``deliver=False`` only feeds the sink (ingestion: nobody calls :meth:`get`, so nothing is queued).

    :meth:`combined` makes one feed of many series on one connection (stream ingestion: Binance allows
    1024 streams per connection and few new connections per IP); each series keeps its own order,
    backfill and last candle, and the connection (reconnects, staleness) is shared.
    """

    def __init__(
        self,
        options: FeedOptions,
        *,
        fetch: Fetch,
        sink_factory: Callable[[], CandleSink] | None = None,
        rng: np.random.Generator | None = None,
        max_queue: int = 100_000,
        deliver: bool = True,
    ) -> None:
        self.options = options
        self._series: dict[tuple[str, str], _Series] = {}
        self._add(options, fetch)
        self._sink_factory = sink_factory
        self._sink: CandleSink | None = None
        self._rng = rng if rng is not None else np.random.default_rng()
        self._queue: queue.Queue[Candle] = queue.Queue(maxsize=max_queue)
        self._deliver = deliver
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._fatal: BaseException | None = None
        self._msg_id = 0
        self.stats = FeedStats()

    @classmethod
    def combined(
        cls,
        options: list[FeedOptions],
        *,
        fetch: Callable[[FeedOptions], Fetch],
        sink_factory: Callable[[], CandleSink] | None = None,
        rng: np.random.Generator | None = None,
    ) -> CandleFeed:
        """One feed, one connection, for several series (``fetch(options)`` gives each its backfill).

        Connection settings (URL, backoff, staleness) come from the first options and must agree on
        ``ws_url``. Candles only go to the sink (:meth:`get` has no symbol to say; use ``deliver``-style
        single feeds for a trader).
        """
        if not options:
            raise ConfigError("CandleFeed.combined needs at least one series")
        feed = cls(options[0], fetch=fetch(options[0]), sink_factory=sink_factory, rng=rng, deliver=False)
        for opts in options[1:]:
            if opts.ws_url != options[0].ws_url:
                raise ConfigError(f"one feed has one connection: {opts.ws_url} differs from {options[0].ws_url}")
            feed._add(opts, fetch(opts))
        return feed

    def _add(self, options: FeedOptions, fetch: Fetch) -> None:
        key = (options.exchange_symbol.upper(), options.timeframe)
        if key in self._series:
            raise ConfigError(f"series {options.symbol} {options.timeframe} given twice")
        self._series[key] = _Series(options, fetch)

    # -- public API (trading thread) ------------------------------------------------------------
    def start(self, *, last_ts: int | None = None, last: dict[tuple[str, str], int | None] | None = None) -> CandleFeed:
        """Start streaming. ``last_ts`` is the open time of the last candle the caller already has;
        everything after it up to the live candle is backfilled. ``last`` gives it per
        ``(symbol, timeframe)`` for a combined feed."""
        if self._thread is not None:
            raise ThunesError("CandleFeed already started")
        for series in self._series.values():
            o = series.options
            series.last_ts = (last or {}).get((o.symbol, o.timeframe), last_ts if len(self._series) == 1 else None)
        name = self.options.stream_name if len(self._series) == 1 else f"{len(self._series)}-streams"
        self._thread = threading.Thread(target=self._thread_main, name=f"feed-{name}", daemon=True)
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Candle | None:
        """The next closed candle, or None after ``timeout`` seconds. Re-raises a fatal feed error."""
        if self._fatal is not None and self._queue.empty():
            raise self._fatal
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._fatal is not None:
                raise self._fatal from None
            return None

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def last_ts(self) -> int | None:
        """Open time of the last candle handed to the queue (of the first series, for a combined feed)."""
        return self.last_ts_of(self.options.symbol, self.options.timeframe)

    def last_ts_of(self, symbol: str, timeframe: str) -> int | None:
        """Open time of the last closed candle of one series handed out (queue or sink)."""
        for series in self._series.values():
            if series.options.symbol == symbol and series.options.timeframe == timeframe:
                return series.last_ts
        raise ConfigError(f"this feed has no series {symbol} {timeframe}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: None)  # wake the loop so it sees the flag
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> CandleFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- feed thread -----------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            if self._sink_factory is not None:
                self._sink = self._sink_factory()
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._run())
        except _Stop:
            pass
        except BaseException as exc:  # surfaced to the trader by get()
            log.exception("candle feed died")
            self._fatal = exc
        finally:
            if self._loop is not None:
                self._loop.close()
            close = getattr(self._sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing on the way out must not mask the cause
                    log.warning("closing the candle sink failed", exc_info=True)

    def _delay(self, attempt: int, error: BaseException | None = None) -> float:
        return self.options.backoff().wait(attempt, error, float(self._rng.random()))

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))
        raise _Stop

    async def _run(self) -> None:
        o = self.options
        attempt = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=o.connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping.is_set():
                try:
                    healthy = await self._session(session)
                    if healthy:
                        attempt = 0
                except _Stop:
                    return
                except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                    self._note(f"stream error: {type(exc).__name__}: {exc}")
                if self._stopping.is_set():
                    return
                self.stats.reconnects += 1
                self._connected.clear()
                await self._sleep(self._delay(attempt))
                attempt += 1

    async def _session(self, session: aiohttp.ClientSession) -> bool:
        """One connection's life. Returns True when it delivered at least one kline."""
        o = self.options
        got_kline = False
        async with session.ws_connect(o.ws_url, heartbeat=o.heartbeat_s, autoping=True, max_msg_size=0) as ws:
            self.stats.connects += 1
            self._msg_id += 1
            streams = [s.options.stream_name for s in self._series.values()]
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": self._msg_id}))
            self._connected.set()
            self.stats.last_message_at = time.monotonic()
            while not self._stopping.is_set():
                try:
                    msg = await ws.receive(timeout=min(o.stale_after_s, 0.25))
                except TimeoutError:
                    if time.monotonic() - self.stats.last_message_at >= o.stale_after_s:
                        self.stats.stale += 1
                        self._note(f"stream stale: no message for {o.stale_after_s}s, reconnecting")
                        return got_kline
                    continue
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    self._note(f"stream closed by server (code {ws.close_code})")
                    return got_kline
                if msg.type == aiohttp.WSMsgType.ERROR:
                    self._note(f"stream error frame: {ws.exception()}")
                    return got_kline
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                self.stats.last_message_at = time.monotonic()
                try:
                    payload = json.loads(msg.data)
                except (TypeError, ValueError):
                    self.stats.malformed += 1
                    continue
                if not isinstance(payload, dict):
                    self.stats.malformed += 1
                    continue
                if "stream" in payload and isinstance(payload.get("data"), dict):
                    payload = payload["data"]  # combined-stream wrapper
                event = payload.get("e")
                if event == "kline":
                    k = payload.get("k")
                    if not isinstance(k, dict):
                        continue
                    series = self._series_of(k, payload)
                    if series is None:
                        continue
                    try:
                        await self._on_kline(series, k)
                    except (KeyError, TypeError, ValueError):
                        self.stats.malformed += 1
                        continue
                    got_kline = True
                elif event == "serverShutdown":
                    self._note("server announced shutdown; reconnecting")
                    return True  # not a failure of ours: reconnect without growing the backoff
                elif ("code" in payload and "msg" in payload) or "error" in payload:
                    self._note(f"stream error message: {payload}")
                    return got_kline
        return got_kline

    def _series_of(self, k: dict[str, Any], payload: dict[str, Any]) -> _Series | None:
        if len(self._series) == 1:  # a single feed trusts its one subscription (as it always did)
            only = next(iter(self._series.values()))
            return only if str(k.get("i")) == only.options.timeframe else None
        return self._series.get((str(k.get("s") or payload.get("s") or "").upper(), str(k.get("i"))))

    def _note(self, text: str) -> None:
        log.info(text)
        self.stats.errors.append(text)
        del self.stats.errors[:-50]

    async def _on_kline(self, series: _Series, k: dict[str, Any]) -> None:
        t = int(k["t"])
        closed = bool(k["x"])
        if t % series.tf_ms:
            raise ValueError(f"kline start {t} not aligned to {series.options.timeframe}")
        last = series.last_ts
        if last is not None and t <= last:
            return  # an update of a candle already handed out (or a replayed old frame)
        # Everything strictly before the candle now in view is closed: fill any hole first.
        expected = t if last is None else last + series.tf_ms
        if last is not None and t > expected:
            await self._backfill(series, expected, t)
        if closed:
            candle = Candle(
                ts_ms=t, open=float(k["o"]), high=float(k["h"]), low=float(k["l"]), close=float(k["c"]),
                volume=float(k["v"]), source="stream",
            )
            self.stats.stream_candles += 1
            self._emit(series, [candle])

    async def _backfill(self, series: _Series, start: int, end: int) -> None:
        """Fetch and emit every closed candle with ``start <= ts < end`` (retrying transient errors)."""
        loop = asyncio.get_running_loop()
        since = start
        attempt = 0
        while since < end:
            if self._stopping.is_set():
                raise _Stop
            try:
                frame = await loop.run_in_executor(None, series.fetch, since, series.options.backfill_limit)
            except RetryableError as exc:
                self.stats.backfill_errors += 1
                self._note(f"backfill {since}: {type(exc).__name__}: {exc}; retrying")
                await self._sleep(self._delay(attempt, exc))
                attempt += 1
                continue
            attempt = 0
            if frame is None or frame.empty:
                self._note(f"backfill: exchange has no candle in [{since}, {end}); leaving the gap")
                return
            stamps = ts_ms(frame)
            keep = (stamps >= since) & (stamps < end)
            rows = frame.loc[keep]
            stamps = stamps[keep]
            if not len(rows):
                # The exchange has nothing in [since, end) although it answered: a real gap in its data.
                self._note(f"backfill: exchange has no candle in [{since}, {end}); leaving the gap")
                return
            candles = [
                Candle(ts_ms=int(s), open=float(r.open), high=float(r.high), low=float(r.low),
                       close=float(r.close), volume=float(r.volume), source="backfill")
                for s, r in zip(stamps, rows.itertuples(index=False))
            ]
            self.stats.backfilled += len(candles)
            self._emit(series, candles)
            since = int(stamps[-1]) + series.tf_ms

    def _emit(self, series: _Series, candles: list[Candle]) -> None:
        candles = [c for c in candles if series.last_ts is None or c.ts_ms > series.last_ts]
        if not candles:
            return
        if self._sink is not None:
            by_source: dict[str, list[Candle]] = {}
            for c in candles:
                by_source.setdefault(c.source, []).append(c)
            for source, group in by_source.items():
                self.stats.stored += int(
                    self._sink.upsert(series.options.symbol, series.options.timeframe, frame_from_candles(group),
                                      source=source) or 0
                )
        if self._deliver:
            for c in candles:
                self._queue.put(c)
        series.last_ts = candles[-1].ts_ms
