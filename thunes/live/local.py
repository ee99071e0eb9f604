"""The local exchange for a multi-pair bot: several stored series replayed in lockstep.

:func:`replay_markets` loads every pair's candles (the candle store, else the real sample files, else
synthetic candles; or generated markets on request), cuts them to their common span and picks the
replay window: it starts late enough for every pair to have its warm-up behind it and, with ``bars``,
early enough for ``bars`` candles to follow. The local exchange serves all of them from one market
clock, so a step of the clock closes the same candle on every pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError
from thunes.core.timeframes import parse_timeframe
from thunes.live.config import Assignment

__all__ = ["ReplayPlan", "replay_markets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayPlan:
    frames: dict[str, pd.DataFrame]  # by symbol, at its assignment's timeframe
    sources: dict[str, str]  # where each came from (store, sample file, synthetic)
    start_ms: int  # the market clock starts here: every earlier candle is history
    end_ms: int  # the replay stops before stepping past this (the end of the shortest series)
    bars: int  # candles of the coarsest timeframe between start and end


def _load(symbol: str, timeframe: str, *, store_url: str | None, synthetic: bool,
          rows: int) -> tuple[pd.DataFrame, str]:
    from thunes.data.samples import _START_PRICE, load_sample_candles  # one table of plausible start prices
    from thunes.data.synthetic import generate_candles

    if synthetic:
        price = _START_PRICE.get(symbol.split("/")[0].upper(), 100.0)
        seed = 7 + sum(map(ord, symbol))
        frame = generate_candles(rows, timeframe=timeframe, start_price=price, seed=seed,
                                 price_decimals=2 if price >= 10 else 5)
        return frame, f"synthetic(seed={seed}, rows={rows})"
    if store_url:
        from thunes.data.store import open_store

        with open_store(store_url) as store:
            frame = store.load(symbol, timeframe)
        if not frame.empty:
            return frame, f"store {store_url}"
    loaded = load_sample_candles(symbol, timeframe, synthetic_rows=rows)  # real files: whole, cut to the common span
    return loaded.frame, ("" if loaded.real else "SYNTHETIC ") + loaded.source


def replay_markets(assignments: Sequence[Assignment], *, warmups: Mapping[str, int], bars: int | None = None,
                   store_url: str | None = None, synthetic: bool = False,
                   frames: Mapping[str, pd.DataFrame] | None = None) -> ReplayPlan:
    """Candles for every assignment and the common replay window (see the module docstring).

    ``warmups`` gives each symbol's window (candles the trader needs before its first decision);
    ``frames`` skips loading (tests hand their own).
    """
    out: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    tf_max = max(parse_timeframe(a.timeframe).ms for a in assignments)
    rows = max(warmups.values(), default=300) * 2 + (bars or 2000) * tf_max // min(
        parse_timeframe(a.timeframe).ms for a in assignments) + 10
    for a in assignments:
        if frames is not None and a.symbol in frames:
            out[a.symbol], sources[a.symbol] = frames[a.symbol], "given"
        else:
            out[a.symbol], sources[a.symbol] = _load(a.symbol, a.timeframe, store_url=store_url, synthetic=synthetic,
                                                     rows=rows)
    first = max(int(ts_ms(f)[0]) for f in out.values())
    last = min(int(ts_ms(f)[-1]) for f in out.values())
    if last <= first:
        raise ConfigError("the pairs' candles do not overlap in time: "
                          + ", ".join(f"{s}: {sources[s]}" for s in out))
    start = first
    for a in assignments:
        stamps = ts_ms(out[a.symbol])
        stamps = stamps[stamps >= first]
        need = warmups.get(a.symbol, 0)
        if len(stamps) <= need + 1:
            raise ConfigError(f"{a.symbol}: {len(stamps)} candles in the common span, the warm-up needs {need + 2}")
        start = max(start, int(stamps[need]))
    end = last + parse_timeframe(assignments[0].timeframe).ms  # the last candle closes here
    if bars is not None:
        end = min(end, start + bars * tf_max)
        if start >= last:
            raise ConfigError("no candle left to replay after the warm-up")
    # The clock starts on a boundary of the coarsest timeframe, so every pair's candles close together.
    start = -(-start // tf_max) * tf_max
    if end <= start:
        raise ConfigError("no candle left to replay after the warm-up")
    return ReplayPlan(frames=out, sources=sources, start_ms=start, end_ms=end, bars=(end - start) // tf_max)
