"""SMA crossover: long when the fast average crosses above the slow one, flat when it crosses below.

The seed's default strategy (BTC/USDT 1h). With ``allow_short`` in the backtest options the
crosses below also open shorts (``short=True``).
"""

from __future__ import annotations

import pandas as pd

from thunes.core.errors import StrategyError
from thunes.strategies._indicators import sma
from thunes.strategies.base import Param, Signals, Strategy, crossed_above, crossed_below

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
        close = candles["close"]
        return {f"SMA {self.fast}": sma(close, self.fast), f"SMA {self.slow}": sma(close, self.slow)}

    def signals(self, candles: pd.DataFrame) -> Signals:
        fast, slow = sma(candles["close"], self.fast), sma(candles["close"], self.slow)
        up, down = crossed_above(fast, slow), crossed_below(fast, slow)
        if self.short:
            return Signals(entries=up, exits=down, short_entries=down, short_exits=up)
        return Signals(entries=up, exits=down)
