"""RSI/Bollinger mean reversion: buy an oversold close below the lower band, sell at the middle band.

Entry when RSI < ``rsi_low`` and the close is below the lower Bollinger band; exit when the close
reaches the middle band or RSI > ``rsi_high``. Shorts (optional) mirror it at the upper band.
"""

from __future__ import annotations

import pandas as pd

from thunes.core.errors import StrategyError
from thunes.strategies._indicators import bollinger, rsi
from thunes.strategies.base import Param, Signals, Strategy

__all__ = ["RsiBollinger"]


class RsiBollinger(Strategy):
    name = "rsi_bollinger"
    rsi_period = Param(int, default=14, low=2, high=100, doc="RSI period (bars)")
    rsi_low = Param(float, default=30.0, low=1.0, high=50.0, step=5.0, doc="oversold RSI level")
    rsi_high = Param(float, default=70.0, low=50.0, high=99.0, step=5.0, doc="overbought RSI level")
    bb_period = Param(int, default=20, low=5, high=200, doc="Bollinger period (bars)")
    bb_k = Param(float, default=2.0, low=0.5, high=4.0, step=0.5, doc="band width in standard deviations")
    short = Param(bool, default=False, doc="also fade closes above the upper band")

    def check(self) -> None:
        if self.rsi_low >= self.rsi_high:
            raise StrategyError(f"rsi_bollinger needs rsi_low < rsi_high, got {self.rsi_low} >= {self.rsi_high}")

    @property
    def warmup(self) -> int:
        return max(self.rsi_period + 1, self.bb_period)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        lower, mid, upper = bollinger(candles["close"], self.bb_period, self.bb_k)
        return {"BB lower": lower, "BB mid": mid, "BB upper": upper}

    def signals(self, candles: pd.DataFrame) -> Signals:
        close = candles["close"]
        r = rsi(close, self.rsi_period)
        lower, mid, upper = bollinger(close, self.bb_period, self.bb_k)
        entries = ((r < self.rsi_low) & (close < lower)).fillna(False)
        exits = ((close >= mid) | (r > self.rsi_high)).fillna(False)
        if not self.short:
            return Signals(entries=entries, exits=exits)
        short_entries = ((r > self.rsi_high) & (close > upper)).fillna(False)
        short_exits = ((close <= mid) | (r < self.rsi_low)).fillna(False)
        return Signals(entries=entries, exits=exits, short_entries=short_entries, short_exits=short_exits)
