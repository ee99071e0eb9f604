"""One call from candles and a strategy to a result: the research entry point, exported as
``thunes.backtest_strategy``.

>>> import thunes
>>> from thunes.strategies.sma_cross import SmaCross
>>> result = thunes.backtest_strategy(candles, SmaCross, fast=10, slow=50)      # doctest: +SKIP
>>> print(result)                  # metrics, the risk preset, which limits bound  # doctest: +SKIP
>>> result.stats, result.trades, result.equity, result.plot()                    # doctest: +SKIP

Nothing is silent: the timeframe is inferred from the candles' index (or checked against it), the risk
preset is a named choice printed in every summary (``"research"``: no limits; ``"live"``: the live
risk manager's), and sizing, fees and slippage are the documented :class:`BacktestOptions` defaults.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from thunes.backtest.engine import BacktestOptions, BacktestResult, RiskLimits
from thunes.backtest.prepared import run_backtest
from thunes.core.errors import StrategyError
from thunes.strategies.base import Strategy

__all__ = ["backtest_strategy"]


def backtest_strategy(
    candles: pd.DataFrame,
    strategy: type[Strategy] | Strategy | str,
    /,
    *,
    risk: str | RiskLimits | None = "research",
    timeframe: str | None = None,
    symbol: str = "BTC/USDT",
    options: BacktestOptions | None = None,
    **params: Any,
) -> BacktestResult:
    """Backtest ``strategy`` (a class, built with ``params``; an instance; or a registered name) on
    ``candles``. ``risk``: ``"research"`` (no limits, the default), ``"live"`` (the live risk manager's
    default limits) or a :class:`RiskLimits`; it replaces ``options.risk``. Returns the
    :class:`BacktestResult` (``stats``, ``trades``, ``equity``, ``plot()``, ``summary()``)."""
    if isinstance(strategy, str):
        from thunes.strategies import get_strategy

        strategy = get_strategy(strategy)
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        strategy = strategy(**params)
    elif params:
        raise StrategyError(f"parameters {sorted(params)} need a strategy class or name, not an instance")
    if not isinstance(strategy, Strategy):
        raise StrategyError(f"backtest_strategy needs a Strategy class, instance or name, got {strategy!r}")
    options = (options or BacktestOptions()).replace(risk=risk)
    return run_backtest(candles, strategy, options=options, symbol=symbol, timeframe=timeframe)
