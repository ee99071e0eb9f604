"""Strategies: the :class:`Strategy` base with typed parameters, built-ins and a name registry.

``get_strategy("sma_cross")`` returns the class; ``list_strategies()`` the registered names.
Entries are ``"module:Class"`` strings imported on first use, so an optional strategy whose module
is absent (``model``, written by the ML layer) is simply not listed.
"""

from __future__ import annotations

import difflib
import importlib

from thunes.core.errors import StrategyError
from thunes.strategies.base import (
    CrossGrid,
    Param,
    SignalArrays,
    Signals,
    Strategy,
    crossed_above,
    crossed_below,
)

__all__ = [
    "CrossGrid",
    "Param",
    "SignalArrays",
    "Signals",
    "Strategy",
    "crossed_above",
    "crossed_below",
    "get_strategy",
    "list_strategies",
    "register_strategy",
]

_REGISTRY: dict[str, str | type[Strategy]] = {
    "sma_cross": "thunes.strategies.sma_cross:SmaCross",
    "rsi_bollinger": "thunes.strategies.rsi_bollinger:RsiBollinger",
    "model": "thunes.strategies.model_signal:ModelSignalStrategy",
}


def register_strategy(cls: type[Strategy], name: str | None = None) -> type[Strategy]:
    """Add a strategy class to the registry (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"{cls!r} is not a Strategy subclass")
    _REGISTRY[name or cls.name] = cls
    return cls


def _load(name: str) -> type[Strategy] | None:
    entry = _REGISTRY[name]
    if isinstance(entry, type):
        return entry
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # optional strategy not part of this build
        raise
    cls = getattr(module, attr)
    _REGISTRY[name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``; StrategyError with a hint otherwise."""
    cls = _load(name) if name in _REGISTRY else None
    if cls is None:
        available = list_strategies()
        close = difflib.get_close_matches(name, available, n=1, cutoff=0.4)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise StrategyError(f"unknown strategy {name!r}{hint}; available: {', '.join(available)}")
    return cls


def list_strategies() -> list[str]:
    """Names of the strategies that can be loaded in this build, sorted."""
    return sorted(n for n in list(_REGISTRY) if _load(n) is not None)
