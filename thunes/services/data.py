"""The candle store seen from an edge: the quality report of a stored series (``thunes data check --symbol``;
the API's ``GET /data/quality``; the dashboard's Prepare page)."""

from __future__ import annotations

from typing import Any

from thunes.core.errors import DataError

__all__ = ["series_quality"]


def series_quality(data_settings: Any, symbol: str, timeframe: str) -> dict[str, Any]:
    """Gaps, duplicates, misaligned or out-of-order timestamps, bad OHLC, NaN/inf, zero-volume flat runs and
    price jumps of the stored ``symbol``/``timeframe`` series (:func:`thunes.data.quality.check_candles`)."""
    from thunes.core.timeframes import parse_timeframe
    from thunes.data.quality import check_candles
    from thunes.data.store import store_from_settings

    tf = str(parse_timeframe(timeframe))
    name = f"{symbol.upper()} {tf}"
    with store_from_settings(data_settings) as store:
        table = store.load(symbol.upper(), tf)
    if table.empty:
        raise DataError(f"nothing stored for {name}; import or download it first (thunes data import/download)")
    return {"name": name, **check_candles(table, tf).to_dict()}
