"""Replayed market data for one symbol: candles, the intra-candle price path, klines at any interval.

Inside a candle the price follows the classic OHLC path (open -> low -> high -> close for a rising candle,
open -> high -> low -> close for a falling one), piecewise linear with time proportional to distance. This gives
one deterministic "last trade price" at every millisecond, so market orders, limit-order crossings, the
forming kline and the ticker all agree with each other and with the candles that will be served later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from thunes.core.candles import ts_ms, validate_candles
from thunes.core.errors import DataError
from thunes.core.timeframes import timeframe_ms

__all__ = ["KlineRow", "MarketFeed"]

# (open_ms, open, high, low, close, volume, close_ms, quote_volume, trades, is_closed)
KlineRow = tuple[int, float, float, float, float, float, int, float, int, bool]


@dataclass(frozen=True, slots=True)
class _Path:
    times: tuple[float, ...]  # offsets in ms from the candle open
    prices: tuple[float, ...]


class MarketFeed:
    """Candles of one symbol at a base timeframe, queried as of a moment in time."""

    def __init__(self, frame: pd.DataFrame, *, symbol: str, tick: float = 0.0) -> None:
        validate_candles(frame)
        self.tick = float(tick)  # the price grid: a forming candle's prices sit on it, as Binance's always do
        if len(frame) < 2:
            raise DataError(f"{symbol}: the local exchange needs at least 2 candles, got {len(frame)}")
        self.symbol = symbol
        self.ts = ts_ms(frame)
        steps = np.diff(self.ts)
        self.tf_ms = int(np.min(steps))
        self.open = frame["open"].to_numpy(dtype="float64")
        self.high = frame["high"].to_numpy(dtype="float64")
        self.low = frame["low"].to_numpy(dtype="float64")
        self.close = frame["close"].to_numpy(dtype="float64")
        self.volume = frame["volume"].to_numpy(dtype="float64")
        self._resampled: dict[int, tuple[npt.NDArray[Any], ...]] = {}

    # -- the price path --------------------------------------------------------------------------------
    @property
    def first_ms(self) -> int:
        return int(self.ts[0])

    @property
    def end_ms(self) -> int:
        """Close time (exclusive) of the last candle."""
        return int(self.ts[-1]) + self.tf_ms

    def index_at(self, t: int) -> int:
        """Index of the candle containing ``t`` (-1 before the first, the last one after the end)."""
        return int(np.searchsorted(self.ts, t, side="right")) - 1

    def _path(self, i: int) -> _Path:
        o, h, low, c = self.open[i], self.high[i], self.low[i], self.close[i]
        pts = (o, low, h, c) if c >= o else (o, h, low, c)
        dist = [abs(pts[k + 1] - pts[k]) for k in range(3)]
        total = sum(dist)
        if total <= 0:
            return _Path((0.0, float(self.tf_ms)), (o, o))
        times = [0.0]
        for d in dist:
            times.append(times[-1] + self.tf_ms * d / total)
        return _Path(tuple(times), pts)

    def price_at(self, t: int) -> float:
        i = self.index_at(t)
        if i < 0:
            return float(self.open[0])
        if t >= self.ts[i] + self.tf_ms:  # in a gap or after the data: last close
            return float(self.close[i])
        path = self._path(i)
        return float(np.interp(t - self.ts[i], path.times, path.prices))

    def range_between(self, t0: int, t1: int) -> tuple[float, float, float]:
        """(min price, max price, traded volume) of the path over ``(t0, t1]``."""
        if t1 <= t0:
            p = self.price_at(t1)
            return p, p, 0.0
        lo = hi = self.price_at(t1)
        p0 = self.price_at(t0)
        lo, hi = min(lo, p0), max(hi, p0)
        volume = 0.0
        i0 = max(self.index_at(t0), 0)
        i1 = self.index_at(t1)
        for i in range(i0, i1 + 1):
            start, end = int(self.ts[i]), int(self.ts[i]) + self.tf_ms
            a, b = max(start, t0), min(end, t1)
            if b <= a:
                continue
            path = self._path(i)
            for off, price in zip(path.times, path.prices):
                if a < start + off < b:
                    lo, hi = min(lo, price), max(hi, price)
            volume += float(self.volume[i]) * (b - a) / self.tf_ms
        # Plain floats: callers turn them into Decimal via repr(), which numpy scalars would break.
        return float(lo), float(hi), float(volume)

    def volume_between(self, t0: int, t1: int) -> float:
        return self.range_between(t0, t1)[2]

    # -- klines ----------------------------------------------------------------------------------------
    def _partial(self, i: int, t: int) -> tuple[float, float, float, float, float]:
        """OHLCV of base candle ``i`` as seen at time ``t`` (inside it)."""
        start = int(self.ts[i])
        path = self._path(i)
        off = t - start
        prices = [p for tt, p in zip(path.times, path.prices) if tt <= off]
        last = self._on_tick(float(np.interp(off, path.times, path.prices)))
        prices.append(last)
        frac = min(max(off / self.tf_ms, 0.0), 1.0)
        return float(self.open[i]), max(prices), min(prices), last, float(self.volume[i]) * frac

    def _on_tick(self, price: float) -> float:
        """Round half up to the tick (the rule ``Engine.last_price`` uses), so klines agree with the ticker."""
        if self.tick <= 0:
            return price
        return max(math.floor(price / self.tick + 0.5), 1) * self.tick

    def _bars(self, interval_ms: int) -> tuple[npt.NDArray[Any], ...]:
        if interval_ms == self.tf_ms:
            return self.ts, self.open, self.high, self.low, self.close, self.volume
        cached = self._resampled.get(interval_ms)
        if cached is None:
            keys = self.ts - (self.ts % interval_ms)
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            cached = (
                keys[starts],
                self.open[starts],
                np.maximum.reduceat(self.high, starts),
                np.minimum.reduceat(self.low, starts),
                self.close[np.r_[starts[1:] - 1, len(self.ts) - 1]],
                np.add.reduceat(self.volume, starts),
            )
            self._resampled[interval_ms] = cached
        return cached

    def supports(self, interval_ms: int) -> bool:
        return interval_ms >= self.tf_ms and interval_ms % self.tf_ms == 0

    def klines(
        self, interval_ms: int, now: int, *, start: int | None, end: int | None, limit: int
    ) -> list[KlineRow]:
        """Binance ``GET /klines`` semantics as of ``now``; the bar containing ``now`` is partial."""
        ts, o, h, low, c, v = self._bars(interval_ms)
        upper = now if end is None else min(end, now)
        hi_idx = int(np.searchsorted(ts, upper, side="right"))  # bars with open <= upper
        if start is not None:
            lo_idx = int(np.searchsorted(ts, start, side="left"))
            hi_idx = min(hi_idx, lo_idx + limit)
        else:
            lo_idx = max(0, hi_idx - limit)
        rows: list[KlineRow] = []
        for k in range(lo_idx, hi_idx):
            open_ms = int(ts[k])
            close_ms = open_ms + interval_ms - 1
            if close_ms < now:
                bar = (float(o[k]), float(h[k]), float(low[k]), float(c[k]), float(v[k]))
                closed = True
            else:
                bar = self._forming(open_ms, interval_ms, now)
                closed = False
            mid = (bar[1] + bar[2] + bar[3]) / 3.0
            rows.append((open_ms, *bar, close_ms, bar[4] * mid, max(1, int(bar[4] * 10)), closed))
        return rows

    def _forming(self, open_ms: int, interval_ms: int, now: int) -> tuple[float, float, float, float, float]:
        i_first = int(np.searchsorted(self.ts, open_ms, side="left"))
        i_now = self.index_at(now)
        opens, highs, lows, closes, vol = [], [], [], [], 0.0
        for i in range(i_first, i_now + 1):
            if self.ts[i] + self.tf_ms <= now:
                bar = (self.open[i], self.high[i], self.low[i], self.close[i], self.volume[i])
            else:
                bar = self._partial(i, now)
            opens.append(bar[0]); highs.append(bar[1]); lows.append(bar[2]); closes.append(bar[3])
            vol += float(bar[4])
        if not opens:
            p = self._on_tick(self.price_at(now))
            return p, p, p, p, 0.0
        return float(opens[0]), float(max(highs)), float(min(lows)), float(closes[-1]), vol

    def day_stats(self, now: int) -> tuple[float, float, float, float, float]:
        """(open, high, low, last, base volume) over the 24 h before ``now``."""
        start = now - 86_400_000
        i0 = max(int(np.searchsorted(self.ts, start, side="left")), 0)
        i1 = self.index_at(now)
        last = self._on_tick(self.price_at(now))
        if i1 < i0:
            return last, last, last, last, 0.0
        hi = float(np.max(self.high[i0:i1])) if i1 > i0 else last
        lo = float(np.min(self.low[i0:i1])) if i1 > i0 else last
        _, ph, pl, _, pv = self._partial(i1, min(now, int(self.ts[i1]) + self.tf_ms))
        vol = float(np.sum(self.volume[i0:i1])) + pv
        return float(self.open[i0]), max(hi, ph, last), min(lo, pl, last), last, vol


def interval_ms(interval: str) -> int:
    """Milliseconds of a Binance kline interval (``1m`` … ``1w``); ``1M`` is not supported here."""
    return timeframe_ms(interval)
