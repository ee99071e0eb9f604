"""Domain types, enums, errors, clock, ids and timeframes. No I/O lives here."""

from thunes.core.candles import OHLCV, candles_frame, ts_ms, validate_candles
from thunes.core.clock import Clock, LiveClock, SimulatedClock
from thunes.core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingMode, check_transition
from thunes.core.errors import *  # noqa: F403 - the error tree is part of the core surface
from thunes.core.errors import __all__ as _errors_all
from thunes.core.ids import client_order_id
from thunes.core.markets import Market, SymbolFilters, parse_exchange_info, round_down_to_step, round_to_tick
from thunes.core.timeframes import (
    Timeframe,
    align_ms,
    parse_timeframe,
    resample,
    timeframe_ms,
    timeframe_seconds,
    utc_ms,
)

__all__ = [
    "OHLCV", "candles_frame", "ts_ms", "validate_candles",
    "Clock", "LiveClock", "SimulatedClock",
    "OrderStatus", "OrderType", "Side", "TimeInForce", "TradingMode", "check_transition",
    "client_order_id",
    "Market", "SymbolFilters", "parse_exchange_info", "round_down_to_step", "round_to_tick",
    "Timeframe", "align_ms", "parse_timeframe", "resample", "timeframe_ms", "timeframe_seconds", "utc_ms",
    *_errors_all,
]
