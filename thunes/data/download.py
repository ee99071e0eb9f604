"""Download closed candles from an exchange through ccxt into the store, resumably.

``download_candles`` pages ``fetch_ohlcv`` forward from ``since`` (or from the candle after the last
stored one, whichever is later), writes each page through the store's validation gate, and stops at
the exchange's current time. The still-open candle (``open + timeframe > server time``) is never
stored: it would be stored with partial values and then ignored by later insert-or-ignore writes.

Every exchange call goes through a base URL that can point at a local server
(``--base-url http://127.0.0.1:8765``: the exchange host, as everywhere; ``/api/v3`` may be appended). Rate limits: ccxt's own throttle is on
(``enableRateLimit``); a 429/418 or a network failure is retried with exponential back-off, honouring
``Retry-After`` when the exchange sends it, up to ``max_retries`` times. ccxt errors are translated into
the THUNES error tree here (``raise translate(e) from e``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from thunes.core.candles import candles_frame
from thunes.core.errors import (
    AuthenticationError,
    ConfigError,
    DataError,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    RequestTimeout,
    RetryableError,
)
from thunes.core.timeframes import parse_timeframe
from thunes.data.store import CandleStore, normalize_symbol

__all__ = ["SPOT_OPTIONS", "DownloadResult", "download_candles", "make_exchange", "translate_ccxt_error"]

log = logging.getLogger(__name__)

#: Keep ``load_markets`` to a single ``GET /api/v3/exchangeInfo`` (no sapi/fapi/dapi calls).
SPOT_OPTIONS: dict[str, Any] = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


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


def make_exchange(
    exchange_id: str = "binance",
    *,
    base_url: str | None = None,
    timeout_s: float = 10.0,
    api_key: str | None = None,
    secret: str | None = None,
) -> ccxt.Exchange:
    """A sync ccxt exchange, spot-only, rate-limited; ``base_url`` (the exchange host, see
    :mod:`thunes.core.urls`) replaces the public/private REST base with ``HOST/api/v3``."""
    cls = getattr(ccxt, exchange_id, None)
    if cls is None or not isinstance(cls, type):
        raise ExchangeError(f"unknown ccxt exchange id {exchange_id!r}")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(timeout_s * 1000),
        "options": dict(SPOT_OPTIONS),
    }
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    exchange = cls(config)
    if base_url:
        from thunes.core.urls import REST_PATH, rest_root

        try:
            base = rest_root(base_url) + REST_PATH
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        api = exchange.urls.get("api")
        if isinstance(api, dict):
            for key in ("public", "private"):
                api[key] = base
        else:
            exchange.urls["api"] = base
    return exchange


def translate_ccxt_error(exc: Exception) -> Exception:
    """Map a ccxt exception onto the THUNES error tree (retryable branch first)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return RateLimited(text)
    if isinstance(exc, ccxt.RequestTimeout):
        return RequestTimeout(text)
    if isinstance(exc, ccxt.NetworkError):  # ExchangeNotAvailable, OnMaintenance, connection errors
        return ExchangeUnavailable(text)
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthenticationError(text)
    if isinstance(exc, ccxt.BadSymbol):
        return DataError(text)
    return ExchangeError(text)


def _retry_after(exchange: ccxt.Exchange) -> float | None:
    """Seconds from the last response's ``Retry-After`` header (Binance sends it with 429/418)."""
    headers = getattr(exchange, "last_response_headers", None) or {}
    value = None
    for key, val in dict(headers).items():
        if str(key).lower() == "retry-after":
            value = val
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _call(fn: Callable[[], Any], *, exchange: ccxt.Exchange, what: str, max_retries: int,
          sleep: Callable[[float], None]) -> Any:
    """Run one exchange call, retrying only the retryable branch with exponential back-off."""
    delay = 1.0
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except ccxt.BaseError as exc:
            err = translate_ccxt_error(exc)
            if not isinstance(err, RetryableError) or attempt == max_retries:
                raise err from exc
            retry_after = _retry_after(exchange) if isinstance(err, RateLimited) else None
            wait = retry_after if retry_after is not None else delay
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, err, attempt + 1, max_retries, wait)
            sleep(wait)
            delay = min(delay * 2, 60.0)
    raise AssertionError("unreachable")  # pragma: no cover


def download_candles(
    store: CandleStore,
    exchange: ccxt.Exchange,
    symbol: str,
    timeframe: str,
    *,
    since: int | None = None,
    until: int | None = None,
    limit: int = 1000,
    max_retries: int = 5,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Fetch closed candles ``[start, until)`` page by page and insert them; see the module docstring.

    ``start`` is ``since``, moved forward to the candle after the last stored one when that is later
    (resume). ``progress(done_bars, total_bars)`` is called after every page.
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

    _call(exchange.load_markets, exchange=exchange, what="load_markets", max_retries=max_retries, sleep=sleep)
    try:
        server_time = int(_call(exchange.fetch_time, exchange=exchange, what="fetch_time",
                                max_retries=max_retries, sleep=sleep))
    except ExchangeError as exc:
        log.warning("server time unavailable (%s); using the local clock", exc)
        server_time = int(exchange.milliseconds())
    # A candle is closed once its whole interval lies in the past of the exchange's clock.
    end = server_time - step + 1 if until is None else min(until, server_time - step + 1)
    total = max(0, (end - start + step - 1) // step)
    log.info("downloading %s %s from %s (%s)", sym, tf, pd.Timestamp(start, unit="ms", tz="UTC"),
             "resuming after the last stored candle" if resumed else "as asked")

    cursor, fetched, written, rejected, pages, last = start, 0, 0, 0, 0, last_stored
    while cursor < end:
        rows = _call(lambda: exchange.fetch_ohlcv(sym, str(tf), since=cursor, limit=limit),
                     exchange=exchange, what=f"fetch_ohlcv {sym} {tf}", max_retries=max_retries, sleep=sleep)
        pages += 1
        if not rows:
            break
        arr = np.asarray([r[:6] for r in rows], dtype="float64")
        ts = arr[:, 0].astype("int64")
        keep = (ts >= cursor) & (ts < end)
        fetched += int(keep.sum())
        if keep.any():
            frame = candles_frame(ts[keep], *(arr[keep, i] for i in range(1, 6)))
            result = store.write(sym, str(tf), frame, mode="insert", source=f"download:{exchange.id}")
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
