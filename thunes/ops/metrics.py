"""Prometheus metrics of the trading bot, fed by its event bus (see docs/observability.md).

::

    Bot loop ── publish(event) ──> EventBus ──> BotMetrics.handle ──> counters, gauges, histograms
    exchange calls ──> InstrumentedPort ─────────────────────────────> requests, errors, weight, round trip
    ledger rows ─────> BotMetrics.on_ledger_row ─────────────────────> fills, fees
    scrape ──> _StateCollector reads risk state, reconcile count, breaker, bus ──> kill-switch, ...
                                                           │
                   serve_metrics(registry) ── GET /metrics ┘  (127.0.0.1, prometheus_client's server)

Naming follows Prometheus practice: one ``thunes_`` prefix, base units (``_seconds``, ratios 0-1),
amounts in quote currency end in ``_quote``, counters in ``_total``, build data in ``thunes_build_info``,
and "when did X last happen" is a Unix timestamp (``_timestamp_seconds``; age = ``time() - it``).
Labels are bounded: ``symbol`` takes only the configured pairs (anything else is ``other``), order ids
and free-text reasons never become labels.

Every registry is private (:class:`~prometheus_client.CollectorRegistry`), never the global one, so
tests and several bots in one process do not collide.

Where a value is read matters: positions, PnL and equity are refreshed on the bot's own thread (after
each candle's decision, from the position tracker and at most once per ``equity_refresh_s`` from the
exchange balance), because the database and the ccxt client belong to that thread; the scrape thread
only reads the risk manager (its own lock), plain counters and the breaker's status.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from thunes.core.errors import ThunesError
from thunes.core.events import (
    BotState,
    BotStateChanged,
    CandleClosed,
    DecisionAction,
    Event,
    FeedReconnected,
    FeedStale,
    JobRan,
    KillSwitchChanged,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    ReconcileMismatch,
    RiskDenied,
    SignalDecided,
)
from thunes.core.timeframes import parse_timeframe
from thunes.ops._server import MetricsServer, serve_metrics

__all__ = [
    "CLOSE_TO_ORDER_BUCKETS",
    "JOB_BUCKETS",
    "LATENCY_BUCKETS",
    "OTHER",
    "PREDICTION_BUCKETS",
    "ROUND_TRIP_BUCKETS",
    "BotMetrics",
    "InstrumentedPort",
]

log = logging.getLogger(__name__)

# The *_created series double the series count and Prometheus 2.42 ignores them in the text format.
prometheus_client.disable_created_metrics()

OTHER = "other"  # the symbol label of anything outside the configured pairs (keeps the label bounded)
ZERO = Decimal(0)
# Candle handed to the bot -> order handed to the exchange port: sub-millisecond to a few ms in practice.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# One exchange request (network + exchange): a few ms locally, 50-500 ms to Binance.
ROUND_TRIP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Candle close -> order sent, on the publisher's clock (ms resolution): feed delay + decision, live 0.1-5 s.
CLOSE_TO_ORDER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0)
PREDICTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_PORT_METHODS = frozenset({"load_markets", "fetch_candles", "fetch_ticker", "fetch_balance", "place_order",
                           "cancel_order", "fetch_order", "fetch_open_orders", "fetch_my_trades"})
_WEIGHT_HEADER = "x-mbx-used-weight-1m"


def _error_code(exc: BaseException) -> str:
    """The exchange's error code when it gave one (-2010, 429), else the error class: a bounded set."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return str(code)
    return type(exc).__name__


class InstrumentedPort:
    """The exchange port, passed through, timing and counting every port call (see :class:`BotMetrics`).

    Only the port's own methods are timed (a closed set: the ``method`` label stays bounded); after
    each call the weight the exchange says we used in the last minute (``X-MBX-USED-WEIGHT-1M``, which
    ccxt keeps in ``client.last_response_headers``) is read. Errors are re-raised untouched.
    """

    def __init__(self, inner: Any, metrics: BotMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in _PORT_METHODS or not callable(attr):
            return attr
        m = self._metrics

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                m.exchange_errors.labels(name, _error_code(exc)).inc()
                raise
            finally:
                m.exchange_requests.labels(name).inc()
                m.exchange_round_trip.labels(name).observe(time.perf_counter() - t0)
                m._read_weight(getattr(self._inner, "client", None))
        return call


class BotMetrics:
    """Every metric of one bot, in its own registry; :meth:`bind` subscribes it to the bot's bus.

    ``pairs`` are the configured (symbol, timeframe) streams: the only values the ``symbol`` and
    ``timeframe`` labels take (anything else is counted under ``other``).
    """

    def __init__(self, *, pairs: Iterable[tuple[str, str]], exchange: str = "local",
                 registry: CollectorRegistry | None = None, process: bool = True,
                 equity_refresh_s: float = 60.0, wall: Callable[[], float] = time.time) -> None:
        from thunes import __version__

        self.registry = registry if registry is not None else CollectorRegistry()
        self.pairs = tuple(sorted(set(pairs)))
        self._symbols = {s for s, _ in self.pairs}
        self._streams = set(self.pairs)
        self._tf_ms = {tf: parse_timeframe(tf).ms for _, tf in self.pairs}
        self.equity_refresh_s = float(equity_refresh_s)
        self._wall = wall
        self._bot: Any = None
        self._mark: dict[str, Decimal] = {}
        self._quote = self.pairs[0][0].split("/")[1] if self.pairs and "/" in self.pairs[0][0] else None
        self._equity_at: float | None = None
        self._peak: Decimal | None = None
        self._feed_reconnects: dict[tuple[str, str], int] = {}
        r = self.registry
        if process:
            ProcessCollector(registry=r)

        # build and state
        self.build = Info("thunes_build", "THUNES version, Python version and the exchange traded (value 1)",
                          registry=r)
        self.build.info({"version": __version__, "python": sys.version.split()[0], "exchange": exchange})
        self.bot_state = Gauge("thunes_bot_state", "1 for the bot's current state, 0 for the others", ["state"],
                               registry=r)
        self._set_state(BotState.STOPPED)

        # candles and feeds
        self.candles = Counter("thunes_candles_processed_total", "Closed candles handed to the traders",
                               ["symbol", "timeframe"], registry=r)
        self.candle_lag = Gauge("thunes_candle_lag_seconds",
                                "Last candle: its close time to the bot taking it (the publisher's clock)",
                                ["symbol", "timeframe"], registry=r)
        self.candle_received = Gauge("thunes_candle_last_received_timestamp_seconds",
                                     "Unix time (wall clock) the bot last took a candle of the stream "
                                     "(bot start before the first one)", ["symbol", "timeframe"], registry=r)
        self.candle_interval = Gauge("thunes_candle_interval_seconds", "The stream's timeframe in seconds",
                                     ["symbol", "timeframe"], registry=r)
        self.feed_reconnects = Counter("thunes_feed_reconnects_total", "Websocket reconnections of the feed",
                                       ["symbol", "timeframe"], registry=r)
        self.feed_stale = Counter("thunes_feed_stale_total", "Times the feed went silent past its staleness limit",
                                  ["symbol", "timeframe"], registry=r)

        # decisions and orders
        self.signals = Counter("thunes_signals_total", "Decisions on closed candles by action",
                               ["symbol", "action"], registry=r)
        self.orders_submitted = Counter("thunes_orders_submitted_total", "Orders handed to the exchange",
                                        ["symbol", "side", "type"], registry=r)
        self.orders = Counter("thunes_orders_total",
                              "Orders by outcome (filled, partially_filled, rejected); "
                              "submitted minus these = still open", ["symbol", "side", "type", "outcome"], registry=r)
        self.order_latency = Histogram("thunes_order_send_latency_seconds",
                                       "Candle taken by the bot -> its order handed to the exchange port",
                                       ["symbol"], buckets=LATENCY_BUCKETS, registry=r)
        self.close_to_order = Histogram("thunes_candle_close_to_order_seconds",
                                        "Candle close -> its order sent, on the bot's clock (market time in a "
                                        "replay; ms resolution)", ["symbol"], buckets=CLOSE_TO_ORDER_BUCKETS,
                                        registry=r)
        self.fills = Counter("thunes_fills_total", "Fills (trades) booked in the ledger", ["symbol", "side"],
                             registry=r)
        self.filled_quote = Counter("thunes_filled_quote_total", "Traded notional of booked fills, quote currency",
                                    ["symbol", "side"], registry=r)
        self.fees = Counter("thunes_fees_quote_total",
                            "Fees of booked fills in quote currency (base-asset fees valued at the fill price)",
                            ["symbol"], registry=r)
        self.fees_unpriced = Counter("thunes_fees_unpriced_fills_total",
                                     "Fills whose fee was paid in a third asset (e.g. BNB), not in fees_quote",
                                     ["symbol"], registry=r)

        # risk and book
        self.denials = Counter("thunes_risk_denials_total", "Trade intents refused, by risk rule (or paused)",
                               ["symbol", "rule"], registry=r)
        self.kill_switch_changes = Counter("thunes_kill_switch_changes_total", "Kill-switch flips", ["to"],
                                           registry=r)
        self.position_open = Gauge("thunes_position_open", "1 while the bot holds a position in the symbol",
                                   ["symbol"], registry=r)
        self.exposure = Gauge("thunes_exposure_quote", "Position quantity x last close, quote currency",
                              ["symbol"], registry=r)
        self.unrealised = Gauge("thunes_unrealised_pnl_quote", "Open position's PnL at the last close, quote",
                                ["symbol"], registry=r)
        self.realised = Gauge("thunes_realised_pnl_quote", "Realised PnL of every pair since the books began, quote",
                              registry=r)
        self.equity = Gauge("thunes_equity_quote",
                            "Quote balance + traded base assets at the last close (refreshed at most every "
                            "equity_refresh_s)", registry=r)
        self.drawdown = Gauge("thunes_drawdown_ratio", "1 - equity / peak equity since the bot started (0-1)",
                              registry=r)

        # reconciliation
        self.mismatches = Counter("thunes_reconcile_mismatches_total", "Reconciliation discrepancies",
                                  ["mismatch", "resolution"], registry=r)

        # exchange
        self.exchange_requests = Counter("thunes_exchange_requests_total", "Exchange port calls", ["method"],
                                         registry=r)
        self.exchange_errors = Counter("thunes_exchange_errors_total",
                                       "Failed exchange port calls by the exchange's code (else the error class)",
                                       ["method", "code"], registry=r)
        self.exchange_round_trip = Histogram("thunes_exchange_request_duration_seconds",
                                             "Exchange port call round trip (network + exchange)", ["method"],
                                             buckets=ROUND_TRIP_BUCKETS, registry=r)
        self.weight_used = Gauge("thunes_exchange_weight_used",
                                 "Request weight used in the current minute, as the exchange reported it "
                                 "(X-MBX-USED-WEIGHT-1M)", registry=r)

        # jobs and models
        self.job_runs = Counter("thunes_job_runs_total", "Scheduled job runs by outcome (ok, failed, missed)",
                                ["job", "outcome"], registry=r)
        self.job_duration = Histogram("thunes_job_duration_seconds", "Scheduled job run time", ["job"],
                                      buckets=JOB_BUCKETS, registry=r)
        self.job_success = Gauge("thunes_job_last_success_timestamp_seconds",
                                 "Unix time (wall clock) of the job's last successful run", ["job"], registry=r)
        self.model_trained = Gauge("thunes_model_trained_timestamp_seconds",
                                   "Unix time the symbol's model was trained (age = time() - this)", ["symbol"],
                                   registry=r)
        self.prediction = Histogram("thunes_model_prediction_duration_seconds", "One model inference call",
                                    ["symbol"], buckets=PREDICTION_BUCKETS, registry=r)
        self._collector = _StateCollector(self)
        r.register(self._collector)
        now = self._wall()
        for sym, tf in self.pairs:
            self.candle_interval.labels(sym, tf).set(self._tf_ms[tf] / 1000)
            self.candle_received.labels(sym, tf).set(now)  # staleness counts from the start
            self.candles.labels(sym, tf)
            self.position_open.labels(sym).set(0)

    # -- wiring ----------------------------------------------------------------------------------------
    def bind(self, bot: Any) -> BotMetrics:
        """Watch ``bot``: subscribe to its bus, read its risk manager, book and models (call before run)."""
        self._bot = bot
        stack = bot.stack
        for sym in stack.risk.state.open_positions:
            self.position_open.labels(self._sym(sym)).set(1)
        listeners = getattr(stack.ledger, "listeners", None)
        if listeners is not None:
            listeners.append(self.on_ledger_row)
        else:
            log.warning("metrics: the bot's ledger takes no listeners; fills and fees will not be counted")
        for key, trader in stack.traders.items():
            self.instrument_model(key.symbol, trader.strategy)
        self._refresh_realised()
        self._set_state(bot.state)
        bot.bus.subscribe(self.handle, name="metrics")
        return self

    def instrument_port(self, port: Any) -> InstrumentedPort:
        """Wrap the exchange port so that every call is counted and timed (before the bot is built on it)."""
        return InstrumentedPort(port, self)

    def serve(self, *, port: int, host: str = "127.0.0.1") -> MetricsServer:
        return serve_metrics(self.registry, port=port, host=host)

    def render(self) -> bytes:
        """The exposition, as a scrape gets it."""
        return generate_latest(self.registry)

    # -- events ----------------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """The bus subscriber: one event -> its metrics (unknown kinds are ignored)."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _sym(self, symbol: str) -> str:
        return symbol if symbol in self._symbols else OTHER

    def _stream(self, symbol: str, timeframe: str) -> tuple[str, str]:
        return (symbol, timeframe) if (symbol, timeframe) in self._streams else (OTHER, OTHER)

    def _set_state(self, state: BotState) -> None:
        for s in BotState:
            self.bot_state.labels(str(s)).set(1 if s is state else 0)

    def _on_state(self, e: BotStateChanged) -> None:
        self._set_state(e.state)
        if e.state is BotState.STOPPING:
            self._equity_at = None  # the final equity, while the exchange is still there
            self._maybe_refresh_equity()

    def _on_candle(self, e: CandleClosed) -> None:
        sym, tf = self._stream(e.symbol, e.timeframe)
        self.candles.labels(sym, tf).inc()
        self.candle_received.labels(sym, tf).set(self._wall())
        tf_ms = self._tf_ms.get(e.timeframe)
        if tf_ms is not None:
            self.candle_lag.labels(sym, tf).set(max(0.0, (e.ts_ms - (e.bar_ts + tf_ms)) / 1000))
        if sym != OTHER:
            self._mark[sym] = Decimal(repr(float(e.close)))

    def _on_signal(self, e: SignalDecided) -> None:
        sym = self._sym(e.symbol)
        self.signals.labels(sym, str(e.action)).inc()
        if e.latency_s is not None:
            self.order_latency.labels(sym).observe(e.latency_s)
            tf_ms = self._tf_ms.get(e.timeframe)
            if tf_ms is not None:
                self.close_to_order.labels(sym).observe(max(0.0, (e.ts_ms - (e.bar_ts + tf_ms)) / 1000))
        if e.action is DecisionAction.SELL:
            self._refresh_realised()
        if sym != OTHER:
            self._refresh_position(sym)
            self._maybe_refresh_equity()

    def _order_type(self) -> str:
        options = getattr(getattr(getattr(self._bot, "stack", None), "executor", None), "options", None)
        kind = getattr(options, "order_type", None)
        return str(getattr(kind, "value", kind) or "market").lower()

    def _on_submitted(self, e: OrderSubmitted) -> None:
        self.orders_submitted.labels(self._sym(e.symbol), e.side.lower(), self._order_type()).inc()

    def _on_filled(self, e: OrderFilled) -> None:
        outcome = "partially_filled" if e.status.upper() == "PARTIALLY_FILLED" else "filled"
        self.orders.labels(self._sym(e.symbol), e.side.lower(), self._order_type(), outcome).inc()

    def _on_rejected(self, e: OrderRejected) -> None:
        self.orders.labels(self._sym(e.symbol), e.side.lower(), self._order_type(), "rejected").inc()

    def _on_denied(self, e: RiskDenied) -> None:
        self.denials.labels(self._sym(e.symbol), e.rule).inc()

    def _on_kill(self, e: KillSwitchChanged) -> None:
        self.kill_switch_changes.labels("on" if e.on else "off").inc()

    def _on_opened(self, e: PositionOpened) -> None:
        sym = self._sym(e.symbol)
        self.position_open.labels(sym).set(1)
        if sym != OTHER:
            self._refresh_position(sym)

    def _on_closed(self, e: PositionClosed) -> None:
        sym = self._sym(e.symbol)
        self.position_open.labels(sym).set(0)
        if sym != OTHER:
            self._refresh_position(sym)
        self._refresh_realised()

    def _refresh_realised(self) -> None:
        stack = getattr(self._bot, "stack", None)
        if stack is not None:
            self.realised.set(float(stack.positions.realised_since(0)))

    def _on_mismatch(self, e: ReconcileMismatch) -> None:
        self.mismatches.labels(e.mismatch, e.resolution).inc()

    def _on_reconnect(self, e: FeedReconnected) -> None:
        key = self._stream(e.symbol, e.timeframe)
        # the event carries the feed's running count: add what is new (a restarted feed counts from 0)
        seen = self._feed_reconnects.get(key, 0)
        self.feed_reconnects.labels(*key).inc(e.reconnects - seen if e.reconnects > seen else 1)
        self._feed_reconnects[key] = e.reconnects

    def _on_stale(self, e: FeedStale) -> None:
        self.feed_stale.labels(*self._stream(e.symbol, e.timeframe)).inc()

    def _on_job(self, e: JobRan) -> None:
        self.job_runs.labels(e.job, e.outcome).inc()
        if e.outcome != "missed":
            self.job_duration.labels(e.job).observe(e.duration_s)
        if e.outcome == "ok":
            self.job_success.labels(e.job).set(self._wall())

    # -- the book (bot thread) -------------------------------------------------------------------------
    def on_ledger_row(self, row: Any) -> None:
        """A fill booked in the ledger: fills, traded notional and fees (in quote)."""
        sym = self._sym(row.symbol)
        side = str(getattr(row.side, "value", row.side)).lower()
        self.fills.labels(sym, side).inc()
        self.filled_quote.labels(sym, side).inc(float(row.qty * row.price))
        base, _, quote = row.symbol.partition("/")
        if row.fee == 0:
            self.fees.labels(sym).inc(0)
        elif row.fee_asset == quote:
            self.fees.labels(sym).inc(float(row.fee))
        elif row.fee_asset == base:
            self.fees.labels(sym).inc(float(row.fee * row.price))
        else:
            self.fees_unpriced.labels(sym).inc()

    def _refresh_position(self, symbol: str) -> None:
        stack = getattr(self._bot, "stack", None)
        if stack is None:
            return
        pos = stack.positions.position(symbol)
        mark = self._mark.get(symbol)
        if pos is None:
            self.exposure.labels(symbol).set(0)
            self.unrealised.labels(symbol).set(0)
            return
        held = pos.qty > 0 and mark is not None
        self.exposure.labels(symbol).set(float(pos.qty * mark) if held else 0.0)
        self.unrealised.labels(symbol).set(float(pos.unrealised(mark)) if held else 0.0)

    def _maybe_refresh_equity(self) -> None:
        now = time.monotonic()
        if self._equity_at is not None and now - self._equity_at < self.equity_refresh_s:
            return
        self._equity_at = now
        try:
            self.refresh_equity()
        except ThunesError as exc:  # an exchange hiccup: the next refresh will do (not a subscriber failure)
            log.warning("metrics: equity refresh failed: %s", exc)

    def refresh_equity(self) -> Decimal | None:
        """Quote balance + every traded base asset at its last close; sets equity and drawdown (bot thread)."""
        stack = getattr(self._bot, "stack", None)
        if stack is None or self._quote is None:
            return None
        balances = stack.exchange.fetch_balance()
        total = ZERO
        for asset, bal in balances.items():
            if asset == self._quote:
                total += bal.total
            else:
                mark = self._mark.get(f"{asset}/{self._quote}")
                if mark is not None:
                    total += bal.total * mark
        self.equity.set(float(total))
        if self._peak is None or total > self._peak:
            self._peak = total
        self.drawdown.set(float(1 - total / self._peak) if self._peak > 0 else 0.0)
        return total

    def instrument_model(self, symbol: str, strategy: Any) -> bool:
        """A model strategy: export its training time and time its inference calls (False: not a model).

        The forecaster's ``predict_frame`` is wrapped on the instance (the strategy's code is unchanged).
        """
        from datetime import datetime

        if getattr(strategy, "name", "") != "model":
            return False
        sym = self._sym(symbol)
        forecaster = strategy.forecaster
        trained = getattr(getattr(forecaster, "meta", None), "trained_at", None)
        if trained:
            self.model_trained.labels(sym).set(datetime.fromisoformat(trained).timestamp())
        predict = forecaster.predict_frame
        hist = self.prediction.labels(sym)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with hist.time():
                return predict(*args, **kwargs)
        object.__setattr__(forecaster, "predict_frame", timed)
        return True

    def _read_weight(self, client: Any) -> None:
        headers = getattr(client, "last_response_headers", None)
        if not headers:
            return
        for k, v in headers.items():
            if str(k).lower() == _WEIGHT_HEADER:
                try:
                    self.weight_used.set(float(v))
                except (TypeError, ValueError):
                    pass
                return


_HANDLERS: dict[type[Event], Callable[[BotMetrics, Any], None]] = {
    BotStateChanged: BotMetrics._on_state, CandleClosed: BotMetrics._on_candle, SignalDecided: BotMetrics._on_signal,
    OrderSubmitted: BotMetrics._on_submitted, OrderFilled: BotMetrics._on_filled,
    OrderRejected: BotMetrics._on_rejected, RiskDenied: BotMetrics._on_denied, KillSwitchChanged: BotMetrics._on_kill,
    PositionOpened: BotMetrics._on_opened, PositionClosed: BotMetrics._on_closed,
    ReconcileMismatch: BotMetrics._on_mismatch, FeedReconnected: BotMetrics._on_reconnect,
    FeedStale: BotMetrics._on_stale, JobRan: BotMetrics._on_job,
}


class _StateCollector(Collector):
    """Values read at scrape time from objects that are safe to read from another thread."""

    def __init__(self, metrics: BotMetrics) -> None:
        self.m = metrics

    def describe(self) -> Iterator[Any]:
        return iter(self._families())

    def _families(self) -> list[Any]:
        return [
            GaugeMetricFamily("thunes_kill_switch_active", "1 while the kill-switch halts every new order"),
            GaugeMetricFamily("thunes_reduce_only_active", "1 while risk allows exits only (reduce-only mode)"),
            GaugeMetricFamily("thunes_daily_pnl_quote", "Today's PnL the daily-loss limit counts (realised + "
                              "unrealised), quote"),
            GaugeMetricFamily("thunes_max_daily_loss_quote", "The daily-loss limit that trips the kill-switch, quote"),
            CounterMetricFamily("thunes_reconcile_runs", "Reconciliations of the books with the exchange"),
            GaugeMetricFamily("thunes_circuit_breaker_state", "1 for the breaker's current state (closed, open, "
                              "half_open)", labels=["breaker", "state"]),
            CounterMetricFamily("thunes_events_published", "Events published on the bot's bus"),
            CounterMetricFamily("thunes_event_subscriber_failures", "Events a bus subscriber failed on",
                                labels=["subscriber"]),
        ]

    def collect(self) -> Iterator[Any]:
        fams = {f.name: f for f in self._families()}
        bot = self.m._bot
        if bot is not None:
            stack = bot.stack
            try:
                snap = stack.risk.state
                fams["thunes_kill_switch_active"].add_metric([], 1.0 if snap.kill_switch else 0.0)
                fams["thunes_reduce_only_active"].add_metric([], 1.0 if snap.reduce_only else 0.0)
                fams["thunes_daily_pnl_quote"].add_metric([], float(snap.daily_pnl))
                fams["thunes_max_daily_loss_quote"].add_metric([], float(snap.max_daily_loss))
            except Exception:  # noqa: BLE001 - a scrape never fails because one source did
                log.warning("metrics: reading the risk state failed", exc_info=True)
            fams["thunes_reconcile_runs"].add_metric([], float(bot.report.reconciles))
            breaker = getattr(getattr(stack.executor, "inner", None), "breaker", None)
            if breaker is not None:
                current = str(breaker.status().state).lower()
                for s in ("closed", "open", "half_open"):
                    fams["thunes_circuit_breaker_state"].add_metric([breaker.name, s], 1.0 if s == current else 0.0)
            fams["thunes_events_published"].add_metric([], float(bot.bus.published))
            for sub in bot.bus.subscriptions:
                fams["thunes_event_subscriber_failures"].add_metric([sub.name], float(sub.failures))
        yield from fams.values()
