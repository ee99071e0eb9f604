"""SMA crossover: long when the fast average crosses above the slow one, flat when it crosses below.

The trader's default strategy (``settings.trader.strategy``, on BTC/USDT 1h). With ``allow_short`` in
the backtest options the crosses below also open shorts (``short=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.errors import StrategyError
from thunes.features.streaming import StreamingSma
from thunes.strategies._indicators import sma
from thunes.strategies.base import (
    BarSignals,
    CrossGrid,
    Param,
    Signals,
    Strategy,
    crossed_above,
    crossed_below,
)

__all__ = ["SmaCross"]


class SmaCross(Strategy):
    name = "sma_cross"
    fast = Param(int, default=10, low=2, high=200, doc="fast SMA period (bars)")
    slow = Param(int, default=50, low=5, high=500, doc="slow SMA period (bars)")
    short = Param(bool, default=False, doc="also trade the cross below as a short entry")

    def check(self) -> None:
        if self.fast >= self.slow:
            raise StrategyError(f"sma_cross needs fast < slow, got fast={self.fast}, slow={self.slow}")

    @property
    def warmup(self) -> int:
        return self.slow + 1

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The two moving averages (what ``thunes plot`` draws over the candles)."""
        close = candles["close"]
        return {f"sma_{self.fast}": sma(close, self.fast), f"sma_{self.slow}": sma(close, self.slow)}

    def signals(self, candles: pd.DataFrame) -> Signals:
        fast, slow = self.indicators(candles).values()  # fast < slow (check), so the keys differ
        up, down = crossed_above(fast, slow), crossed_below(fast, slow)
        if self.short:
            return Signals(entries=up, exits=down, short_entries=down, short_exits=up)
        return Signals(entries=up, exits=down)

    # The incremental protocol (thunes.execution.incremental): the live trader advances two streamed SMAs by
    # one candle instead of recomputing signals() on its window; the same signals (test_incremental.py).
    def stream_init(self) -> dict[str, Any]:
        return {"fast": StreamingSma(self.fast), "slow": StreamingSma(self.slow), "prev": (np.nan, np.nan)}

    def stream_advance(self, state: dict[str, Any], ts_ms: int, open: float, high: float, low: float,
                       close: float, volume: float) -> BarSignals:
        f, s = state["fast"].update(close), state["slow"].update(close)
        pf, ps = state["prev"]
        state["prev"] = (f, s)
        up = f > s and pf <= ps  # NaN compares False: no cross while either side is unknown (crossed_above)
        down = f < s and pf >= ps
        if self.short:
            return BarSignals(entry=up, exit=down, short_entry=down, short_exit=up)
        return BarSignals(entry=up, exit=down)

    @classmethod
    def signal_grid(cls, combos: Sequence[Mapping[str, Any]]) -> CrossGrid | None:
        """A long-only grid as crossings of one SMA per distinct period (a sweep computes each once, on the
        bare closes: the same SMA as :meth:`signals`, without the Series wrapper that cost 3x the kernel
        on 1M bars). None with shorts, or for a subclass that changes the signals or their lines."""
        if cls.signals is not SmaCross.signals or cls.indicators is not SmaCross.indicators:
            return None
        if any(c["short"] for c in combos):
            return None
        periods = sorted({c["fast"] for c in combos} | {c["slow"] for c in combos})
        row = {period: i for i, period in enumerate(periods)}
        return CrossGrid(lines=tuple(partial(sma, period=period) for period in periods),
                         fast=tuple(row[c["fast"]] for c in combos),
                         slow=tuple(row[c["slow"]] for c in combos))
