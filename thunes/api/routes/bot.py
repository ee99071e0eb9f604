"""The bot: status, balance, risk, jobs (read); start, stop, pause, resume, force-exit, kill-switch,
reduce-only, reload (trader role). Every call goes to :mod:`thunes.services` (the same as ``thunes bot``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path as FsPath
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from thunes.api.auth import Principal
from thunes.api.context import ApiContext, plain
from thunes.api.deps import context, reader, trader
from thunes.services import bot as svc
from thunes.services import monitor
from thunes.services.runner import BotStartSpec, run_request

router = APIRouter(prefix="/bot", tags=["bot"])

_SYMBOL = r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonBody(_Body):
    reason: str | None = Field(None, max_length=500)


class ForceExitBody(_Body):
    symbol: str = Field(pattern=_SYMBOL, description="e.g. BTC/USDT")
    reason: str = Field("force exit by operator", max_length=500)


class SwitchBody(_Body):
    on: bool
    reason: str = Field(min_length=1, max_length=500, description="Why (audited)")


class StartBody(_Body):
    config: str | None = Field(None, max_length=4096, description="bot.toml on the server")
    pairs: list[str] | None = Field(None, max_length=50)
    strategy: str | None = Field(None, max_length=64)
    params: dict[str, int | float | str | bool] | None = None
    timeframe: str | None = Field(None, max_length=8)
    exchange: Literal["local", "testnet", "live"] | None = None
    bars: int | None = Field(None, ge=1, le=10_000_000)
    speed: float | None = Field(None, ge=0, le=1e9)
    synthetic: bool = False
    state_dir: str | None = Field(None, max_length=4096)
    live: bool = False
    i_understand_the_risks: bool = False
    max_quote: Decimal | None = Field(None, gt=0, le=Decimal("1e12"), allow_inf_nan=False)
    duration_s: float | None = Field(None, gt=0, le=1e9)
    max_candles: int | None = Field(None, ge=1, le=10**9)


@router.get("/status", dependencies=[Depends(reader)], summary="State, pairs, open positions, open orders")
def status(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    res = svc.bot_status(ctx.state_dir)
    return {"running": res.running, "state_dir": str(ctx.state_dir), **plain(res.status)}


@router.get("/balance", dependencies=[Depends(reader)], summary="Exchange balances seen by the running bot")
def balance(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return plain(monitor.balance(ctx.state_dir))


@router.get("/orders", dependencies=[Depends(reader)], summary="Open orders from the journal (or every order)")
def orders(ctx: ApiContext = Depends(context), all: bool = False,  # noqa: A002 - the query parameter's name
           limit: int = Query(50, ge=1, le=10_000)) -> dict[str, Any]:
    res = monitor.orders(ctx.state_dir, include_final=all, limit=limit)
    return {"total": res.total, "orders": [{**plain(e), "avg_price": plain(e.avg_price)} for e in res.orders]}


@router.get("/risk", dependencies=[Depends(reader)], summary="Risk state: mode, kill-switch, reduce-only, PnL")
def risk(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return plain(monitor.risk_state(ctx.state_dir))


@router.get("/jobs", dependencies=[Depends(reader)], summary="Scheduled jobs: last and next run, outcome")
def jobs(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return {"jobs": plain(svc.bot_jobs(ctx.state_dir))}


@router.post("/start", status_code=202, summary="Start a bot in the server process (the checks of `thunes bot run`)")
def start(body: StartBody, ctx: ApiContext = Depends(context), who: Principal = Depends(trader)) -> dict[str, Any]:
    spec = BotStartSpec(config=FsPath(body.config) if body.config else None,
                        pairs=tuple(body.pairs) if body.pairs else None, strategy=body.strategy,
                        params=body.params, timeframe=body.timeframe, exchange=body.exchange, bars=body.bars,
                        speed=body.speed, synthetic=body.synthetic,
                        state_dir=FsPath(body.state_dir) if body.state_dir else None, live=body.live,
                        understood=body.i_understand_the_risks, max_quote=body.max_quote,
                        duration_s=body.duration_s, max_candles=body.max_candles)
    return plain(ctx.runner.start(run_request(spec), ctx.settings))


@router.post("/stop", summary="Stop the running bot after its current candle")
def stop(body: ReasonBody | None = None, ctx: ApiContext = Depends(context),
         who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.stop_bot(ctx.state_dir, _why(body, who, "stop requested")))


def _why(body: ReasonBody | None, who: Principal, default: str) -> str:
    return f"{(body.reason if body and body.reason else default)} (api: {who.name})"


@router.post("/pause", summary="No new entries (exits still go out)")
def pause(body: ReasonBody | None = None, ctx: ApiContext = Depends(context),
          who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.pause_bot(ctx.state_dir, _why(body, who, "paused by operator")))


@router.post("/resume", summary="Open positions again after a pause")
def resume(body: ReasonBody | None = None, ctx: ApiContext = Depends(context),
           who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.resume_bot(ctx.state_dir, _why(body, who, "resumed by operator")))


@router.post("/force-exit", summary="Sell the whole position in a symbol now (risk, filters, journal, audit)")
def force_exit(body: ForceExitBody, ctx: ApiContext = Depends(context),
               who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.force_exit(ctx.state_dir, body.symbol, f"{body.reason} (api: {who.name})"))


@router.post("/kill-switch", summary="ON refuses every new order across all pairs (audited)")
def kill_switch(body: SwitchBody, ctx: ApiContext = Depends(context),
                who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.set_kill_switch(ctx.state_dir, body.on, reason=body.reason, operator=f"api:{who.name}",
                                     risk_settings=ctx.settings.risk, settings=ctx.settings))


@router.post("/reduce-only", summary="ON lets only exits out (audited)")
def reduce_only(body: SwitchBody, ctx: ApiContext = Depends(context),
                who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.set_reduce_only(ctx.state_dir, body.on, reason=body.reason, operator=f"api:{who.name}",
                                     risk_settings=ctx.settings.risk, settings=ctx.settings))


@router.post("/reload", summary="Reload market filters and the risk switch file")
def reload(ctx: ApiContext = Depends(context), who: Principal = Depends(trader)) -> dict[str, Any]:
    return plain(svc.reload_bot(ctx.state_dir))
