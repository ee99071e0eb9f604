"""What the dashboard's charts draw: candles with a strategy's indicators, a backtest run's trades and equity,
a model's latest forecast with its interval."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from thunes.api.context import ApiContext, plain
from thunes.api.deps import context, json_params, reader
from thunes.services import chart, forecast

router = APIRouter(tags=["charts"], dependencies=[Depends(reader)])


@router.get("/candles", summary="Candles of a pair/timeframe (store, else samples) with a strategy's indicators")
def candles(ctx: ApiContext = Depends(context),
            symbol: str = Query("BTC/USDT", pattern=r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$"),
            timeframe: str = Query("1h", pattern=r"^\d{1,3}[mhdwM]$"),
            source: Literal["auto", "store", "sample"] = "auto",
            since: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
            until: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
            limit: int | None = Query(None, ge=1, le=chart.MAX_CANDLES),
            strategy: str | None = Query(None, pattern=r"^[a-z0-9_]{1,64}$"),
            params: str | None = Query(None, max_length=2000, description='JSON object, e.g. {"fast": 5}')
            ) -> JSONResponse:
    values = json_params(params)
    data = plain(chart.chart_candles(ctx.settings, symbol=symbol, timeframe=timeframe, source=source, since=since,
                                     until=until, limit=limit, strategy=strategy, params=values))
    # Tens of thousands of plain floats: encoded once by json, not walked by FastAPI's encoder (3x faster).
    return JSONResponse(data)


@router.get("/runs/backtest/{run_id:path}/trades", summary="A backtest run's trades and equity curve")
def run_trades(run_id: str = Path(pattern=r"^[A-Za-z0-9_.\-/]{1,300}$"),
               ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return plain(chart.run_trades(ctx.settings, run_id))


@router.get("/forecast", summary="A trained model's latest return and volatility forecast with its price interval")
def latest_forecast(ctx: ApiContext = Depends(context),
                    model: str | None = Query(None, pattern=r"^[A-Za-z0-9_.\-]{1,200}$",
                                              description="model folder name (GET /models); default: the newest"),
                    symbol: str | None = Query(None, pattern=r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$"),
                    timeframe: str | None = Query(None, pattern=r"^\d{1,3}[mhdwM]$"),
                    source: Literal["auto", "store", "sample"] = "auto") -> dict[str, Any]:
    return plain(forecast.latest_forecast(ctx.settings, model=model, symbol=symbol, timeframe=timeframe,
                                          source=source))
