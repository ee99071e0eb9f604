"""Alerts: which bus events become Telegram messages, and their text.

Each alert has a kind (:class:`~thunes.ops.telegram.settings.AlertKind`), switched ``on``, ``silent`` or
``off`` in the settings. The mapping from events:

=====================  ==========================================================================
entry_fill/exit_fill   ``OrderFilled`` (BUY / SELL); ``PositionClosed`` adds the realised PnL (exit)
rejection              ``OrderRejected``
risk_denial            ``RiskDenied`` (every rule, the pause included)
kill_switch            ``KillSwitchChanged``
reconcile_mismatch     ``ReconcileMismatch``
feed_stale             ``FeedStale``;  feed_reconnected: ``FeedReconnected``
job_failure            ``JobRan`` with outcome failed or missed
daily_summary          ``DailySummary``
decay_warning          ``JobRan`` of the ``decay_check`` job whose detail reports a DECAYED pair
reoptimisation         ``JobRan`` of a job named ``reoptimise*`` / ``reoptimize*`` (its result line)
bot_state              ``BotStateChanged`` to running, paused or stopped
=====================  ==========================================================================

Everything else (candles, holds, submissions) is never sent: those are for the event log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from thunes.core.events import (
    BotState,
    BotStateChanged,
    DailySummary,
    Event,
    FeedReconnected,
    FeedStale,
    JobRan,
    KillSwitchChanged,
    OrderFilled,
    OrderRejected,
    PositionClosed,
    ReconcileMismatch,
    RiskDenied,
)
from thunes.ops.telegram.settings import AlertKind

__all__ = ["ALERT_EVENTS", "Alert", "alert_for"]

ALERT_EVENTS: tuple[type[Event], ...] = (OrderFilled, PositionClosed, OrderRejected, RiskDenied, KillSwitchChanged,
                                         ReconcileMismatch, FeedStale, FeedReconnected, JobRan, DailySummary,
                                         BotStateChanged)


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    kind: AlertKind
    text: str


def _when(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts_ms / 1000))


def _qty(v: Decimal) -> str:
    return f"{v.normalize():f}"  # 0.04270000 -> 0.0427, never 4.27E-2


def _money(v: Decimal) -> str:
    return f"{v:+.4f}"


def _is_reoptimisation(job: str) -> bool:
    return job.lower().startswith(("reoptimis", "reoptimiz", "re-optimis", "re-optimiz"))


def alert_for(event: Event) -> Alert | None:
    """The alert an event raises, or None (not an alert, or an uneventful job run)."""
    match event:
        case OrderFilled(side=side, symbol=sym, qty=qty, avg_price=px, status=status):
            entry = side.upper() == "BUY"
            word = "ENTRY" if entry else "EXIT"
            return Alert(kind=AlertKind.ENTRY_FILL if entry else AlertKind.EXIT_FILL,
                         text=f"{word} {sym}: {side.upper()} {_qty(qty)} @ {px:.8g} [{status}] ({event.client_order_id})")
        case PositionClosed(symbol=sym, realised_pnl=pnl):
            return Alert(kind=AlertKind.EXIT_FILL, text=f"CLOSED {sym}: realised {_money(pnl)}")
        case OrderRejected(symbol=sym, side=side, reason=reason):
            return Alert(kind=AlertKind.REJECTION, text=f"REJECTED {sym} {side.upper()}: {reason}")
        case RiskDenied(symbol=sym, side=side, rule=rule, reason=reason):
            return Alert(kind=AlertKind.RISK_DENIAL, text=f"DENIED {sym} {side.upper()} by {rule}: {reason}")
        case KillSwitchChanged(on=on, reason=reason, operator=op):
            state = "ON: no new order on any pair" if on else "off: trading allowed again"
            who = f" by {op}" if op else ""
            return Alert(kind=AlertKind.KILL_SWITCH, text=f"KILL-SWITCH {state}{who}" + (f" ({reason})" if reason else ""))
        case ReconcileMismatch(symbol=sym, mismatch=kind, detail=detail, resolution=res):
            return Alert(kind=AlertKind.RECONCILE_MISMATCH, text=f"RECONCILE {sym}: {kind} ({res}): {detail}")
        case FeedStale(symbol=sym, timeframe=tf, silent_s=silent):
            return Alert(kind=AlertKind.FEED_STALE, text=f"FEED STALE {sym} {tf}: no data for {silent:.0f} s")
        case FeedReconnected(symbol=sym, timeframe=tf, reconnects=n):
            return Alert(kind=AlertKind.FEED_RECONNECTED, text=f"FEED RECONNECTED {sym} {tf} (reconnect #{n})")
        case JobRan(job=job, outcome=outcome, detail=detail):
            if outcome in ("failed", "missed"):
                return Alert(kind=AlertKind.JOB_FAILURE, text=f"JOB {job} {outcome.upper()}: {detail or '-'}")
            if job == "decay_check" and "DECAYED" in detail:
                return Alert(kind=AlertKind.DECAY_WARNING, text=f"DECAY WARNING: {detail}")
            if _is_reoptimisation(job):
                return Alert(kind=AlertKind.REOPTIMISATION, text=f"RE-OPTIMISATION {job}: {detail or outcome}")
            return None
        case DailySummary(day=day, trades=n, realised_pnl=pnl, fees=fees, open_positions=open_, kill_switch=ks):
            lines = [f"DAILY SUMMARY {day}: {n} trades, realised {_money(pnl)}, fees {fees:.4f}",
                     f"open positions: {', '.join(open_) or 'none'}; kill-switch {'ON' if ks else 'off'}"]
            return Alert(kind=AlertKind.DAILY_SUMMARY, text="\n".join(lines))
        case BotStateChanged(state=state, reason=reason):
            if state not in (BotState.RUNNING, BotState.PAUSED, BotState.STOPPED):
                return None
            word = {BotState.RUNNING: "STARTED" if reason == "started" else "RUNNING", BotState.PAUSED: "PAUSED",
                    BotState.STOPPED: "STOPPED"}[state]
            return Alert(kind=AlertKind.BOT_STATE, text=f"BOT {word} at {_when(event.ts_ms)}"
                                                       + (f": {reason}" if reason else ""))
    return None
