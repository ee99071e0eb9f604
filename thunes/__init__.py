"""THUNES: quantitative crypto trading, from research to live, safety first.

The package is layered; dependencies point inward toward :mod:`thunes.core`::

    core  <-  config  <-  data, exchange, features  <-  strategies, backtest  <-  optimize, ml
                                                    <-  execution (risk, audit, trader)  <-  cli, api

Research starts with one call: ``thunes.backtest_strategy(candles, SmaCross, fast=10, slow=50)``
(see :mod:`thunes.backtest.facade`).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "backtest_strategy"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import thunes`` stays light for the trading core.
    if name == "backtest_strategy":
        from thunes.backtest.facade import backtest_strategy

        return backtest_strategy
    raise AttributeError(f"module 'thunes' has no attribute {name!r}")
