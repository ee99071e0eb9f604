"""Streaming half of the exchange port: order updates over ccxt.pro, with reconnection.

Candles do not come from here: the one websocket kline client is :class:`thunes.live.feed.CandleFeed` (closed
klines only, REST backfill of every gap), used by the trader and the stream ingest alike.

ccxt.pro (4.5.90) has no background reconnect: a dropped socket rejects the pending ``watch_*`` with a
``NetworkError`` and the *next* call reconnects. Worse, a frame it cannot parse kills its receive loop
silently, so the watch simply never resolves (found with the local exchange's ``malformed_frames`` fault).
:class:`CcxtStreams` therefore wraps every watch in a loop that

* retries the retryable errors (a dropped socket is ``NetworkError``, translated once by
  :func:`thunes.exchange.errors.translate`) with :class:`thunes.core.backoff.Backoff` (``initial_backoff_s``
  doubling to ``max_backoff_s``, optional jitter, a server's ``Retry-After`` honoured);
* treats silence longer than ``stale_after_s`` as a dead connection: it closes ccxt's websocket clients and
  watches again (a fresh connection and SUBSCRIBE);
* translates anything else once into the THUNES error tree.

``reconnects`` counts the reconnections; after one, reconcile orders over REST (``fetch_open_orders``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ccxt

from thunes.core.backoff import Backoff
from thunes.core.errors import RetryableError
from thunes.exchange.ccxt_adapter import CcxtOptions, make_ccxt_client, order_result
from thunes.exchange.errors import translate
from thunes.exchange.types import OrderResult

if TYPE_CHECKING:  # pragma: no cover
    from thunes.exchange.sim import LocalExchange

__all__ = ["CcxtStreams", "StreamOptions"]

log = logging.getLogger("thunes.exchange.streams")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOptions:
    stale_after_s: float = 90.0
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 30.0
    jitter: float = 0.0

    def backoff(self) -> Backoff:
        """The reconnect waits (:mod:`thunes.core.backoff`): no retry limit, a stream reconnects for ever."""
        return Backoff(initial_s=self.initial_backoff_s, max_s=self.max_backoff_s, jitter=self.jitter,
                       retries=None)


class CcxtStreams:
    """Async iterators of order updates. One instance per event loop."""

    def __init__(self, options: CcxtOptions, stream_options: StreamOptions | None = None, *,
                 client: Any | None = None) -> None:
        self.options = options
        self.stream_options = stream_options or StreamOptions()
        self.client = client if client is not None else make_ccxt_client(options, pro=True)
        self.reconnects = 0
        self._rng = random.Random()
        self._closed = False

    @classmethod
    def for_local(cls, sim: LocalExchange, stream_options: StreamOptions | None = None) -> CcxtStreams:
        return cls(CcxtOptions(mode="local", base_url=sim.base_url, api_key=sim.api_key, secret=sim.secret,
                               timeout_s=5, enable_rate_limit=False), stream_options)

    async def _reset_connections(self) -> None:
        for ws_client in list(getattr(self.client, "clients", {}).values()):
            try:
                await ws_client.close()
            except Exception:  # noqa: BLE001 - the socket may already be gone
                pass
        if hasattr(self.client, "clients"):
            self.client.clients = {}

    async def _watch(self, call: Callable[[], Awaitable[Any]]) -> AsyncIterator[Any]:
        opts = self.stream_options
        policy = opts.backoff()
        attempt = 0
        while not self._closed:
            try:
                result = await asyncio.wait_for(call(), opts.stale_after_s)
            except TimeoutError:
                log.warning("stream silent for %.1fs: reconnecting", opts.stale_after_s)
                self.reconnects += 1
                await self._reset_connections()
                continue
            except ccxt.BaseError as exc:
                err = translate(exc)
                if not isinstance(err, RetryableError):
                    raise err from exc
                if self._closed:
                    return
                wait = policy.wait(attempt, err, self._rng.random())
                log.warning("stream dropped (%s): reconnecting in %.2fs", err, wait)
                self.reconnects += 1
                await asyncio.sleep(wait)
                attempt += 1
                continue
            attempt = 0
            yield result

    async def orders(self, symbol: str | None = None) -> AsyncIterator[list[OrderResult]]:
        """Our order updates (from Binance ``executionReport`` events) as typed results."""
        await self._load()
        async for rows in self._watch(lambda: self.client.watch_orders(symbol)):
            yield [order_result(r, r.get("symbol") or symbol or "") for r in rows]

    async def _load(self) -> None:
        try:
            await self.client.load_markets()
        except ccxt.BaseError as exc:
            raise translate(exc) from exc

    async def close(self) -> None:
        self._closed = True
        await self.client.close()

    async def __aenter__(self) -> CcxtStreams:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
