"""Trades (paged, by id), profit, daily/weekly/monthly, performance per pair: the bot's ledger."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from thunes.api.context import ApiContext, plain
from thunes.api.deps import context, reader
from thunes.services import history, reports

router = APIRouter(tags=["reports"], dependencies=[Depends(reader)])


def _trade(n: history.NumberedTrade) -> dict[str, Any]:
    return {"id": n.id, **plain(n.trade)}


@router.get("/trades", summary="Round trips, newest first")
def trades(ctx: ApiContext = Depends(context), page: int = Query(1, ge=1, le=1_000_000),
           per_page: int = Query(20, ge=1, le=500),
           symbol: str | None = Query(None, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9]+/[A-Za-z0-9]+$")
           ) -> dict[str, Any]:
    res = history.trade_page(ctx.ledger, page=page, per_page=per_page, symbol=symbol)
    return {"trades": [_trade(n) for n in res.trades], "page": res.page, "per_page": res.per_page,
            "total": res.total, "pages": res.pages}


@router.get("/trades/{trade_id}", summary="One trade by id")
def trade(ctx: ApiContext = Depends(context), trade_id: int = Path(ge=1, le=2**31)) -> dict[str, Any]:
    return _trade(history.trade_by_id(ctx.ledger, trade_id))


@router.get("/profit")
def profit(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    p = reports.profit(ctx.ledger)
    return {**plain(p), "win_rate": p.win_rate}


def _now(ctx: ApiContext) -> int:
    last = reports.profit(ctx.ledger).last_ms
    return last or int(time.time() * 1000)


@router.get("/daily", summary="Realised profit per UTC day, newest first (ending at the last trade)")
def daily(ctx: ApiContext = Depends(context), days: int = Query(7, ge=1, le=366)) -> dict[str, Any]:
    return {"days": plain(reports.daily(ctx.ledger, days=days, now_ms=_now(ctx)))}


@router.get("/weekly")
def weekly(ctx: ApiContext = Depends(context), weeks: int = Query(4, ge=1, le=104)) -> dict[str, Any]:
    return {"weeks": plain(reports.weekly(ctx.ledger, weeks=weeks, now_ms=_now(ctx)))}


@router.get("/monthly")
def monthly(ctx: ApiContext = Depends(context), months: int = Query(6, ge=1, le=120)) -> dict[str, Any]:
    return {"months": plain(history.monthly(ctx.ledger, months=months, now_ms=_now(ctx)))}


@router.get("/performance", summary="Closed trades per pair, best first")
def performance(ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return {"pairs": plain(reports.performance(ctx.ledger))}
