"""Typed events and the small in-process bus that carries them.

Everything a trading process does that someone may want to watch is published as one frozen event:
the audit trail, the event log, and later alerts, metrics and the dashboard subscribe to the bus
instead of being called from the trading code::

    bot loop ── publish(CandleClosed) ──> EventBus ──> subscriber 1 (event log)
             ── publish(SignalDecided) ──>          ──> subscriber 2 (audit trail)
             ── publish(OrderFilled)   ──>          ──> subscriber 3 (a queue drained by its own thread)

Rules of the bus:

* **A failing subscriber never stops trading.** Each handler runs inside its own ``try``; an exception
  is logged with the subscriber's name, counted (:attr:`Subscription.failures`) and swallowed.
  :meth:`EventBus.publish` never raises.
* Delivery is synchronous, in subscription order, on the publishing thread: an event is seen by every
  subscriber before ``publish`` returns, so an audit subscriber has written it before the next order.
  A slow consumer (a network alert) subscribes through :class:`QueuedSubscriber`, which hands events to
  its own thread and drops (and counts) them when its queue is full rather than blocking trading.
* Subscribers filter by type: ``bus.subscribe(handler, OrderFilled, RiskDenied)``; no types = all events.
* ``publish`` may be called from any thread (the bot's loop, a websocket feed's pump thread), so a
  subscriber must be thread-safe (the event log and the audit trail lock).

Event kinds are closed sets (:class:`DecisionAction`, :class:`BotState`), never free strings. ``kind`` is
the class name, and :meth:`Event.to_json` gives a JSON-safe dict (Decimals as strings).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

__all__ = [
    "EVENT_TYPES",
    "BotState",
    "BotStateChanged",
    "CandleClosed",
    "DailySummary",
    "DecisionAction",
    "Event",
    "EventBus",
    "FeedReconnected",
    "FeedStale",
    "JobRan",
    "KillSwitchChanged",
    "OrderFilled",
    "OrderRejected",
    "OrderSubmitted",
    "PositionClosed",
    "PositionOpened",
    "QueuedSubscriber",
    "ReconcileMismatch",
    "RiskDenied",
    "SignalDecided",
    "Subscription",
    "event_from_json",
]

log = logging.getLogger(__name__)


class DecisionAction(StrEnum):
    """What a trader did with one closed candle (replaces the free strings of ``BarDecision.action``)."""

    WARMUP = "warmup"
    HOLD = "hold"
    BUY = "buy"
    SELL = "sell"
    SKIP = "skip"


class BotState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"  # candles are processed and exits go out; no new entry
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event: ``ts_ms`` is the publisher's clock (market time in a replay)."""

    ts_ms: int

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) if isinstance(v, Decimal) else v for v in value]
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleClosed(Event):
    symbol: str
    timeframe: str
    bar_ts: int  # open time of the closed candle
    close: float
    source: str = "stream"  # stream | backfill | replay


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalDecided(Event):
    symbol: str
    timeframe: str
    strategy: str
    bar_ts: int
    action: DecisionAction
    reason: str = ""
    latency_s: float | None = None  # candle received -> order handed to the exchange port


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSubmitted(Event):
    symbol: str
    side: str
    client_order_id: str
    bar_ts: int
    strategy: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(Event):
    symbol: str
    side: str
    client_order_id: str
    qty: Decimal
    avg_price: Decimal
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(Event):
    symbol: str
    side: str
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskDenied(Event):
    symbol: str
    side: str
    rule: str  # the risk rule (kill_switch, max_positions, duplicate_symbol, ...) or "paused"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchChanged(Event):
    on: bool
    reason: str | None = None
    operator: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionOpened(Event):
    symbol: str
    qty: Decimal
    avg_price: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionClosed(Event):
    symbol: str
    realised_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileMismatch(Event):
    symbol: str
    mismatch: str  # the reconciler's discrepancy kind
    detail: str
    resolution: str  # adopted | flagged


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedReconnected(Event):
    symbol: str
    timeframe: str
    reconnects: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStale(Event):
    symbol: str
    timeframe: str
    silent_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRan(Event):
    job: str
    outcome: str  # ok | failed | missed
    detail: str = ""
    duration_s: float = 0.0
    scheduled_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BotStateChanged(Event):
    state: BotState
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DailySummary(Event):
    day: str  # YYYY-MM-DD (UTC) the summary covers
    trades: int
    realised_pnl: Decimal
    fees: Decimal
    open_positions: tuple[str, ...] = ()
    kill_switch: bool = False


EVENT_TYPES: dict[str, type[Event]] = {t.__name__: t for t in (
    CandleClosed, SignalDecided, OrderSubmitted, OrderFilled, OrderRejected, RiskDenied, KillSwitchChanged,
    PositionOpened, PositionClosed, ReconcileMismatch, FeedReconnected, FeedStale, JobRan, BotStateChanged,
    DailySummary,
)}
_DECIMAL_FIELDS = {"qty", "avg_price", "realised_pnl", "fees"}


def event_from_json(data: dict[str, Any]) -> Event:
    """The inverse of :meth:`Event.to_json` (the event log is read back with it)."""
    cls = EVENT_TYPES[data["kind"]]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in _DECIMAL_FIELDS and value is not None:
            value = Decimal(value)
        elif f.name == "action" and cls is SignalDecided:
            value = DecisionAction(value)
        elif f.name == "state":
            value = BotState(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


Handler = Callable[[Event], None]


@dataclass(slots=True, eq=False)
class Subscription:
    name: str
    handler: Handler
    types: tuple[type[Event], ...]
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None

    def wants(self, event: Event) -> bool:
        return not self.types or isinstance(event, self.types)


@dataclass(slots=True)
class EventBus:
    """Synchronous publish/subscribe with isolated subscribers (see the module docstring)."""

    _subs: tuple[Subscription, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)
    published: int = 0

    def subscribe(self, handler: Handler, *types: type[Event], name: str | None = None) -> Subscription:
        label = name or str(getattr(handler, "__qualname__", repr(handler)))
        sub = Subscription(label, handler, tuple(types))
        with self._lock:
            self._subs = (*self._subs, sub)  # copy-on-write: publish iterates a snapshot without the lock
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subs

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            if not sub.wants(event):
                continue
            try:
                sub.handler(event)
                sub.delivered += 1
            except Exception as exc:  # noqa: BLE001 - isolation is the point: trading goes on
                sub.failures += 1
                sub.last_error = f"{type(exc).__name__}: {exc}"
                log.error("event subscriber %s failed on %s: %s", sub.name, event.kind, sub.last_error,
                          exc_info=sub.failures == 1)

    def publish_all(self, events: Iterable[Event]) -> None:
        for e in events:
            self.publish(e)


class QueuedSubscriber:
    """Runs a slow handler on its own thread; the publishing thread only enqueues (never blocks).

    When the queue is full the event is dropped and counted in :attr:`dropped`; :meth:`close` drains
    what is queued and stops the thread.
    """

    def __init__(self, handler: Handler, *, maxsize: int = 10_000, name: str = "queued-subscriber") -> None:
        self.handler = handler
        self.name = name
        self.dropped = 0
        self.failures = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.handler(event)
            except Exception:  # noqa: BLE001 - same isolation as the bus
                self.failures += 1
                log.exception("queued subscriber %s failed on %s", self.name, event.kind)

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
