"""THUNES: quantitative crypto trading, from research to live, safety first.

The package is layered; dependencies point inward toward :mod:`thunes.core`::

    core  <-  config  <-  data, exchange, features  <-  strategies, backtest  <-  optimize, ml
                                                    <-  execution (risk, audit, trader)  <-  cli, api
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
