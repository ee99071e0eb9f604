"""Backtest/optimisation runs and their reports (read); backtest, optimisation and training as background
tasks with progress and cancel (trader role)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from thunes.api.context import ApiContext, plain
from thunes.api.deps import context, reader, trader
from thunes.services import catalog, research

router = APIRouter(tags=["research"])

_SYMBOL = r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_RUN_ID = r"^[A-Za-z0-9_.\-/]{1,300}$"
Kind = Literal["backtest", "optimize"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field("BTC/USDT", pattern=_SYMBOL)
    timeframe: str = Field("1h", pattern=r"^\d{1,3}[mhdwM]$")
    since: str | None = Field(None, pattern=_DATE)
    until: str | None = Field(None, pattern=_DATE)
    source: Literal["auto", "store", "sample"] = "auto"


class BacktestBody(_Body):
    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, int | float | str | bool] = Field(default_factory=dict, max_length=50)
    report: bool = True


class OptimizeBody(_Body):
    strategy: str = Field(min_length=1, max_length=64)
    trials: int = Field(20, ge=1, le=10_000)
    objective: str = Field("sharpe", max_length=40, pattern=r"^[a-z_]+(:(max|min))?$")
    params: dict[str, int | float | str | bool] = Field(default_factory=dict, max_length=50,
                                                        description="Fixed (not searched) parameters")
    seed: int = Field(42, ge=0, le=2**31)


class TrainBody(_Body):
    model: Literal["lstm", "xgb"] = "xgb"
    epochs: int = Field(5, ge=1, le=1000)


@router.get("/runs", dependencies=[Depends(reader)], summary="Backtest and optimisation runs, newest first")
def runs(ctx: ApiContext = Depends(context), kind: Kind | None = None) -> dict[str, Any]:
    return {"runs": plain(catalog.runs(ctx.settings, kind=kind))}


@router.get("/runs/{kind}/{run_id:path}/report", dependencies=[Depends(reader)], summary="A run's HTML report",
            response_class=FileResponse)
def run_report(kind: Kind, run_id: str = Path(pattern=_RUN_ID), ctx: ApiContext = Depends(context)) -> FileResponse:
    return FileResponse(catalog.run_report(ctx.settings, kind, run_id), media_type="text/html")


@router.get("/runs/{kind}/{run_id:path}", dependencies=[Depends(reader)], summary="A run's results (JSON)")
def run_detail(kind: Kind, run_id: str = Path(pattern=_RUN_ID), ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return plain(catalog.run_detail(ctx.settings, kind, run_id))


@router.get("/tasks", dependencies=[Depends(reader)], summary="Background tasks with their progress")
def tasks(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    assert ctx.tasks is not None
    return {"tasks": plain(ctx.tasks.list())}


@router.get("/tasks/{task_id}", dependencies=[Depends(reader)])
def task(task_id: str = Path(pattern=r"^[0-9a-f]{1,32}$"), ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    assert ctx.tasks is not None
    return plain(ctx.tasks.get(task_id))


@router.post("/tasks/{task_id}/cancel", dependencies=[Depends(trader)], summary="Cancel a queued or running task")
def cancel(task_id: str = Path(pattern=r"^[0-9a-f]{1,32}$"), ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    assert ctx.tasks is not None
    return plain(ctx.tasks.cancel(task_id))


@router.post("/tasks/backtest", status_code=202, dependencies=[Depends(trader)])
def start_backtest(body: BacktestBody, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    job = research.BacktestJob(strategy=body.strategy, symbol=body.symbol, timeframe=body.timeframe,
                               params=body.params, since=body.since, until=body.until, source=body.source,
                               report=body.report)
    assert ctx.tasks is not None
    return plain(ctx.tasks.submit("backtest", research.backtest_task(job, ctx.settings), body.model_dump()))


@router.post("/tasks/optimize", status_code=202, dependencies=[Depends(trader)])
def start_optimize(body: OptimizeBody, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    job = research.OptimizeJob(strategy=body.strategy, symbol=body.symbol, timeframe=body.timeframe,
                               trials=body.trials, objectives=body.objective, params=body.params, since=body.since,
                               until=body.until, source=body.source, seed=body.seed)
    assert ctx.tasks is not None
    return plain(ctx.tasks.submit("optimize", research.optimize_task(job, ctx.settings), body.model_dump()))


@router.post("/tasks/train", status_code=202, dependencies=[Depends(trader)])
def start_train(body: TrainBody, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    job = research.TrainJob(symbol=body.symbol, timeframe=body.timeframe, model=body.model, epochs=body.epochs,
                            source=body.source, since=body.since, until=body.until)
    assert ctx.tasks is not None
    return plain(ctx.tasks.submit("train", research.train_task(job, ctx.settings), body.model_dump()))
