"""Ping, version, health, settings (masked), logs, audit check, stored data, models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from thunes import __version__
from thunes.api.context import ApiContext, plain
from thunes.api.deps import context, json_params, reader, trader
from thunes.services import audits, catalog, monitor
from thunes.services import config as config_svc
from thunes.services import data as data_svc

router = APIRouter(tags=["system"])


@router.get("/ping", summary="Liveness (no token needed)")
def ping() -> dict[str, str]:
    return {"status": "pong"}


@router.get("/version", dependencies=[Depends(reader)])
def version() -> dict[str, str]:
    return {"version": __version__, "api": "v1"}


@router.get("/health", dependencies=[Depends(reader)],
            summary="Feed freshness and last candle per pair, scheduler, exchange reachability")
def health(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return plain(monitor.health(ctx.state_dir))


@router.get("/settings", dependencies=[Depends(reader)], summary="Effective settings, secrets masked")
def settings(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return monitor.masked_settings(ctx.settings, api=ctx.api)


class ConfigText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=config_svc.MAX_TEXT, description="the settings file's content")
    format: Literal["toml", "json"] = "toml"


# The trader role, as for every POST (the API's rule, checked over the whole schema), though it changes nothing.
@router.post("/config/check", dependencies=[Depends(trader)],
             summary="Validate a settings file's text (changes nothing): every problem, or the values with sources")
def config_check(body: ConfigText) -> dict[str, Any]:
    return config_svc.check_settings_text(body.text, fmt=body.format)


@router.get("/logs", dependencies=[Depends(reader)], summary="The last lines of the JSON logs")
def logs(ctx: ApiContext = Depends(context), lines: int = Query(100, ge=1, le=10_000),
         component: str | None = Query(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
         level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None) -> dict[str, Any]:
    rows = monitor.tail_logs(Path(ctx.settings.logging.dir), lines=lines, component=component, min_level=level)
    return {"lines": plain(rows)}


@router.get("/audit/verify", dependencies=[Depends(reader)], summary="Verify the bot's audit trail")
def audit_verify(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return plain(monitor.audit_check(ctx.state_dir / "audit.jsonl", settings=ctx.settings))


@router.get("/audit/lookahead", dependencies=[Depends(reader)],
            summary="Look-ahead audit of a strategy's signals or a feature set (prefix invariance)")
def audit_lookahead(ctx: ApiContext = Depends(context),
                    target: str = Query("sma_cross", pattern=r"^(features(:[a-z0-9_]{1,64})?|[a-z0-9_]{1,64})$"),
                    symbol: str = Query("BTC/USDT", pattern=r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$"),
                    timeframe: str = Query("1h", pattern=r"^\d{1,3}[mhdwM]$"),
                    source: Literal["auto", "store", "sample"] = "auto",
                    params: str | None = Query(None, max_length=2000, description="JSON object"),
                    prefixes: int = Query(20, ge=1, le=audits.MAX_PREFIXES),
                    rows: int = Query(3000, ge=50, le=audits.MAX_ROWS)) -> dict[str, Any]:
    values = json_params(params)
    return plain(audits.lookahead_audit(ctx.settings, target=target, symbol=symbol, timeframe=timeframe,
                                        source=source, params=values, prefixes=prefixes, rows=rows))


@router.get("/data", dependencies=[Depends(reader)], summary="Candle series in the store")
def data(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return {"series": plain(catalog.data_summary(ctx.settings.data))}


@router.get("/data/quality", dependencies=[Depends(reader)],
            summary="Quality report of a stored series: gaps, duplicates, bad OHLC, flat runs, jumps")
def data_quality(ctx: ApiContext = Depends(context),
                 symbol: str = Query(pattern=r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$"),
                 timeframe: str = Query(pattern=r"^\d{1,3}[smhdwM]$")) -> dict[str, Any]:
    return plain(data_svc.series_quality(ctx.settings.data, symbol, timeframe))


@router.get("/models", dependencies=[Depends(reader)], summary="Trained model artifacts")
def models(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return {"models": plain(catalog.models(Path(ctx.settings.ml.artifacts_dir)))}
