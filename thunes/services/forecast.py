"""A trained model's latest forecast: the next ``horizon`` bars' return and volatility from the newest candles,
with the price interval they imply (the dashboard's Forecast page; ``GET /forecast``; ``thunes forecast``
prints the same numbers).

The interval is the model's own: the predicted log return ± 1 and 2 predicted standard deviations, turned
into prices from the last close. Candles come from the store or the real sample files, never synthetic ones
(as for training: a forecast from made-up candles would look like one from the market).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError

__all__ = ["LatestForecast", "latest_forecast", "latest_model"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatestForecast:
    model: str
    backend: str
    symbol: str
    timeframe: str
    as_of_ms: int  # open time of the last candle used
    horizon_bars: int
    target_ms: int  # open time of the candle the forecast ends at
    last_close: float
    pred_return: float  # log return over the horizon
    pred_return_pct: float
    pred_vol: float
    price: float  # last close x exp(pred_return)
    band_1s: tuple[float, float]  # prices at pred_return -/+ 1 pred_vol
    band_2s: tuple[float, float]
    model_trained_at: str | None
    model_data_until: str | None
    candles_source: str


def latest_model(root: Path, symbol: str | None, timeframe: str | None) -> Path:
    """The newest model folder under ``root`` (by training time) for ``symbol``/``timeframe`` (None: any)."""
    candidates = []
    for meta_path in Path(root).glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if symbol and meta.get("symbol") not in (None, symbol):
            continue
        if timeframe and meta.get("timeframe") not in (None, timeframe):
            continue
        candidates.append((str(meta.get("trained_at") or ""), meta_path.parent))
    if not candidates:
        what = " ".join(x for x in (symbol, timeframe) if x)
        raise ConfigError(f"no trained model {('for ' + what + ' ') if what else ''}under {root}; run `thunes train` "
                          "or pass --model DIR")
    return max(candidates)[1]


def _named_model(root: Path, name: str) -> Path:
    base = Path(root).resolve()
    folder = (base / name).resolve()
    if "\x00" in name or not folder.is_relative_to(base) or folder == base or not (folder / "meta.json").is_file():
        raise ConfigError(f"no trained model {name!r} under {root}")
    return folder


def latest_forecast(settings: Any, *, model: str | None = None, symbol: str | None = None,
                    timeframe: str | None = None, source: str = "auto") -> LatestForecast:
    """Load the model (by folder name under ``ml.artifacts_dir``, else the newest for the pair/timeframe) and
    forecast from the newest candles of its pair and timeframe."""
    from thunes.core.timeframes import timeframe_ms
    from thunes.data.sources import CandleQuery, load_candles
    from thunes.ml.serving import Forecaster

    root = Path(settings.ml.artifacts_dir)
    folder = _named_model(root, model) if model else latest_model(root, symbol, timeframe)
    forecaster = Forecaster.load(folder)
    sym = symbol or forecaster.meta.symbol or "BTC/USDT"
    tf = timeframe or forecaster.meta.timeframe or "1h"
    if forecaster.meta.timeframe and tf != forecaster.meta.timeframe:
        raise ConfigError(f"model {folder.name} was trained on {forecaster.meta.timeframe} candles, not {tf}")
    loaded = load_candles(CandleQuery(symbol=sym, timeframe=tf, source=source), settings.data)
    fc = forecaster.predict_latest(loaded.frame)
    close = float(loaded.frame["close"].iloc[-1])
    as_of = int(fc.as_of.value // 1_000_000)

    def price(k: float) -> float:
        return close * math.exp(fc.ret + k * fc.vol)

    return LatestForecast(model=folder.name, backend=forecaster.backend, symbol=sym, timeframe=tf, as_of_ms=as_of,
                          horizon_bars=fc.horizon, target_ms=as_of + fc.horizon * timeframe_ms(tf), last_close=close,
                          pred_return=fc.ret, pred_return_pct=(math.exp(fc.ret) - 1) * 100, pred_vol=fc.vol,
                          price=price(0), band_1s=(price(-1), price(1)), band_2s=(price(-2), price(2)),
                          model_trained_at=fc.model_trained_at, model_data_until=fc.model_last_candle,
                          candles_source=str(loaded.source))
