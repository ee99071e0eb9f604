"""Download closed candles from an exchange into the store, resumably, through the exchange adapter.

``download_candles`` pages ``fetch_candles`` forward from ``since`` (or from the candle after the last
stored one, whichever is later), writes each page through the store's validation gate, and stops at
the exchange's current time. The still-open candle (``open + timeframe > server time``) is never
stored: it would be stored with partial values and then ignored by later insert-or-ignore writes.

Every exchange call goes through the exchange adapter (:class:`~thunes.exchange.ccxt_adapter.CcxtExchange`,
a :class:`KlineSource`), which translates ccxt errors into the THUNES error tree (the one place that does).
The base URL can point at a local server (``--base-url http://127.0.0.1:8765``: the exchange host, as
everywhere; ``/api/v3`` may be appended). Rate limits: ccxt's own throttle is on (``enableRateLimit``);
a 429/418 or a network failure is retried with :func:`thunes.core.backoff.retry_call` (exponential back-off from 1 s, capped at 60 s,
never shorter than the exchange's ``Retry-After``), up to ``max_retries`` times.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import pandas as pd

from thunes.core.backoff import Backoff, retry_call
from thunes.core.candles import ts_ms
from thunes.core.errors import DataError, ExchangeError
from thunes.core.timeframes import parse_timeframe
from thunes.data.store import CandleStore, normalize_symbol

__all__ = ["DownloadResult", "KlineSource", "download_candles"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadResult:
    symbol: str
    timeframe: str
    start: int
    fetched: int
    written: int
    rejected: int
    pages: int
    last: int | None
    resumed: bool
    server_time: int


class KlineSource(Protocol):
    """What a download needs of the exchange: :class:`thunes.exchange.ccxt_adapter.CcxtExchange` (built by
    the caller: this layer does not import the exchange package, which imports the data package)."""

    @property
    def exchange_id(self) -> str: ...

    def load_markets(self) -> Mapping[str, Any]: ...

    def fetch_time(self) -> int: ...

    def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                      limit: int | None = None) -> pd.DataFrame: ...


def download_candles(
    store: CandleStore,
    exchange: KlineSource,
    symbol: str,
    timeframe: str,
    *,
    since: int | None = None,
    until: int | None = None,
    limit: int = 1000,
    max_retries: int = 5,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    rng: random.Random | None = None,
) -> DownloadResult:
    """Fetch closed candles ``[start, until)`` page by page and insert them; see the module docstring.

    ``start`` is ``since``, moved forward to the candle after the last stored one when that is later
    (resume). ``progress(done_bars, total_bars)`` is called after every page. ``sleep`` and ``rng`` are
    the retry waits' clock and jitter draw (inject them for deterministic tests).
    """
    sym = normalize_symbol(symbol)
    tf = parse_timeframe(timeframe)
    step = tf.ms
    last_stored = store.last_ts(sym, str(tf))
    if since is None and last_stored is None:
        raise DataError(f"nothing stored yet for {sym} {tf}: give a start date (--since)")
    start = since if since is not None else last_stored + step  # type: ignore[operator]
    resumed = False
    if last_stored is not None and last_stored + step > start:
        start, resumed = last_stored + step, True
    start = -(-start // step) * step if not tf.is_calendar else start  # first whole candle at or after start

    policy = Backoff(initial_s=1.0, max_s=60.0, retries=max_retries)

    def call(fn: Callable[[], T], what: str) -> T:
        return retry_call(fn, policy, what=what, sleep=sleep, rng=rng)

    call(exchange.load_markets, "load_markets")
    try:
        server_time = call(exchange.fetch_time, "fetch_time")
    except ExchangeError as exc:
        log.warning("server time unavailable (%s); using the local clock", exc)
        server_time = int(time.time() * 1000)
    # A candle is closed once its whole interval lies in the past of the exchange's clock.
    end = server_time - step + 1 if until is None else min(until, server_time - step + 1)
    total = max(0, (end - start + step - 1) // step)
    log.info("downloading %s %s from %s (%s)", sym, tf, pd.Timestamp(start, unit="ms", tz="UTC"),
             "resuming after the last stored candle" if resumed else "as asked")

    source = f"download:{exchange.exchange_id}"
    cursor, fetched, written, rejected, pages, last = start, 0, 0, 0, 0, last_stored
    while cursor < end:
        fetch = partial(exchange.fetch_candles, sym, str(tf), since=cursor, limit=limit)
        page = call(fetch, f"klines {sym} {tf}")
        pages += 1
        if page.empty:
            break
        ts = ts_ms(page)
        keep = (ts >= cursor) & (ts < end)
        fetched += int(keep.sum())
        if keep.any():
            result = store.write(sym, str(tf), page[keep], mode="insert", source=source)
            written += result.written
            rejected += result.n_rejected
            last = int(ts[keep].max())
        next_cursor = int(ts.max()) + step
        if next_cursor <= cursor:  # the exchange returned nothing new; stop rather than loop forever
            break
        cursor = next_cursor
        if progress is not None:
            progress(min(total, max(0, (cursor - start) // step)), total)
    return DownloadResult(symbol=sym, timeframe=str(tf), start=start, fetched=fetched, written=written,
                          rejected=rejected, pages=pages, last=last, resumed=resumed, server_time=server_time)
