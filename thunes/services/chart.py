"""What a chart draws: the candles of a pair/timeframe with a strategy's indicator lines, and the trades and
equity of a backtest run (the dashboard's Chart and Backtest pages; the API's ``GET /candles`` and
``GET /runs/backtest/{id}/trades``).

Candles come from :func:`thunes.data.sources.load_candles`, the loader every command uses: the store
(resampled from a finer stored timeframe when needed), else the real sample files (``source="sample"``:
synthetic ones where there is none, said so in ``source``); a chart shows the same bars a backtest or a
study reads. Prices are floats here: a chart draws them,
nothing is ordered from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError, DataError
from thunes.core.timeframes import index_ms

__all__ = ["MAX_CANDLES", "ChartCandles", "chart_candles", "run_trades", "warm_up"]

#: The most candles one response carries (a year of 1h candles is 8,760).
MAX_CANDLES = 50_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartCandles:
    symbol: str
    timeframe: str
    source: str  # "store" / "sample" and what it was (real or synthetic)
    time_ms: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    indicators: dict[str, list[float | None]]  # name -> one value per candle (None during warm-up)


def _floats(values: Any) -> list[float | None]:
    import numpy as np

    arr = np.round(np.asarray(values, dtype=float), 10)
    out: list[float | None] = arr.tolist()
    for i in np.flatnonzero(~np.isfinite(arr)).tolist():  # warm-up NaNs: JSON has no NaN
        out[i] = None
    return out


def chart_candles(settings: Any, *, symbol: str, timeframe: str, source: str = "auto", since: str | None = None,
                  until: str | None = None, limit: int | None = None, strategy: str | None = None,
                  params: dict[str, Any] | None = None) -> ChartCandles:
    """The last ``limit`` candles of ``symbol``/``timeframe`` (all when None, at most :data:`MAX_CANDLES`), with
    ``strategy``'s indicator lines computed on them (the strategy's parameters validated as for a run)."""
    from pandas.errors import OutOfBoundsDatetime

    from thunes.core.timeframes import utc_ms
    from thunes.data.sources import CandleQuery, load_candles
    from thunes.strategies import get_strategy

    if limit is not None and not 1 <= limit <= MAX_CANDLES:
        raise ConfigError(f"limit must be between 1 and {MAX_CANDLES}, got {limit}")
    strat = get_strategy(strategy)(**(params or {})) if strategy else None
    for name, day in (("since", since), ("until", until)):
        try:
            if day is not None:
                utc_ms(day)
        except ValueError as exc:
            raise DataError(f"cannot read {name}={day!r} as a date (use e.g. 2024-01-31)") from exc
    try:
        data = load_candles(CandleQuery(symbol=symbol.upper(), timeframe=timeframe, source=source, since=since,
                                        until=until), settings.data)
    except (OverflowError, OutOfBoundsDatetime) as exc:  # e.g. synthetic 7M candles run past the year 2262
        raise DataError(f"cannot chart {symbol.upper()} {timeframe}: its candles run past the dates pandas "
                        f"can hold ({exc})") from exc
    frame = data.frame.iloc[-(limit or MAX_CANDLES):]
    lines: dict[str, list[float | None]] = {}
    if strat is not None:
        # Computed from `warmup` bars before the first drawn one: its first values are not warm-up artefacts.
        start = max(0, len(data.frame) - len(frame) - 2 * strat.warmup)
        for name, series in strat.indicators(data.frame.iloc[start:]).items():
            lines[name] = _floats(series.reindex(frame.index).to_numpy(dtype=float))
    times = index_ms(frame.index).tolist()
    return ChartCandles(symbol=symbol.upper(), timeframe=timeframe, source=data.source, time_ms=times,
                        open=_floats(frame["open"].to_numpy(dtype=float)),
                        high=_floats(frame["high"].to_numpy(dtype=float)),
                        low=_floats(frame["low"].to_numpy(dtype=float)),
                        close=_floats(frame["close"].to_numpy(dtype=float)),
                        volume=_floats(frame["volume"].to_numpy(dtype=float)), indicators=lines)


def warm_up() -> None:
    """Import the candle loader and compile the indicator kernels (about a second, once per process), so that
    the first chart a server draws is as fast as the next ones; the API server calls it at start-up, before it
    accepts requests (importing on a side thread while requests import the same modules is not safe)."""
    import numpy as np
    import pandas as pd

    from thunes.data import sources  # noqa: F401 - the import is the work
    from thunes.strategies import get_strategy, list_strategies

    index = pd.date_range("2024-01-01", periods=600, freq="h", tz="UTC")
    close = pd.Series(np.linspace(100.0, 110.0, len(index)), index=index)
    candles = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0})
    for name in list_strategies():
        try:
            get_strategy(name)().indicators(candles)
        except Exception:  # noqa: BLE001 - a strategy that needs a model or other inputs simply is not warmed
            continue


def run_trades(settings: Any, run_id: str) -> dict[str, Any]:
    """A backtest run's trades and equity curve (the CSVs written next to its ``run_*.json``)."""
    import pandas as pd

    from thunes.services.catalog import RunNotFound, _resolve

    run_json = _resolve(settings, "backtest", run_id)
    stem = run_json.stem.removeprefix("run_")
    trades_csv = run_json.with_name(f"trades_{stem}.csv")
    equity_csv = run_json.with_name(f"equity_{stem}.csv")
    if not trades_csv.is_file():
        raise RunNotFound(f"the backtest run {run_id!r} has no trades file")
    trades = pd.read_csv(trades_csv) if trades_csv.stat().st_size else pd.DataFrame()
    for col in ("entry_ts", "exit_ts"):
        if col in trades.columns:
            stamps = pd.to_datetime(trades[col], utc=True)
            trades[col.replace("_ts", "_ms")] = [None if pd.isna(t) else int(t.value // 1_000_000) for t in stamps]
    rows = []
    for rec in trades.to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()})
    equity: dict[str, list[Any]] = {"time_ms": [], "equity": []}
    if equity_csv.is_file():
        eq = pd.read_csv(equity_csv, index_col=0, parse_dates=True)
        if len(eq.columns):
            equity = {"time_ms": index_ms(pd.DatetimeIndex(eq.index)).tolist(),
                      "equity": _floats(eq.iloc[:, 0].to_numpy(dtype=float))}
    return {"run_id": run_id, "trades": rows, "equity": equity, "file": str(Path(trades_csv).name)}
