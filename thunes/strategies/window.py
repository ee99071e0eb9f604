"""How many trailing candles a strategy is given at each decision: the one rule, used everywhere.

Four warm-ups, so that recursive indicators (EMA, RSI's Wilder smoothing, ATR) converge to the values a
backtest over the full history computes, and never fewer than the warm-up plus 250 bars. The trader's
rolling window, the paper replay's first traded bar and the bot's history request all read this.
"""

from __future__ import annotations

from thunes.strategies.base import Strategy

__all__ = ["trailing_window", "window_for_warmup"]

CONVERGENCE_WARMUPS = 4
MIN_EXTRA_BARS = 250


def window_for_warmup(warmup: int) -> int:
    """``max(4 * warmup, warmup + 250)`` bars."""
    return max(CONVERGENCE_WARMUPS * warmup, warmup + MIN_EXTRA_BARS)


def trailing_window(strategy: Strategy) -> int:
    """The trailing window of ``strategy`` (see the module docstring)."""
    return window_for_warmup(strategy.warmup)
