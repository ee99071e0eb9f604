"""Assembly of the single-pair trader: one function builds the same trader for paper (local exchange,
testnet), live, tests and the benchmark, so no code path exists only in one of them.

* :func:`build_stack` - the safety core (:func:`thunes.execution.account.open_account`: lease, journal,
  positions, risk, executor, audit trail) plus ledger, reconciler and one :class:`~thunes.live.trader.Trader`.
* :func:`feed_for` - the websocket candle feed (:class:`~thunes.live.feed.CandleFeed`) for one pair, its REST
  backfill through the exchange port and its closed candles upserted into the candle store.
* :func:`warm_up` - a trader's window seeded up to its last processed candle (a restart decides the rest).
* :class:`ReplayClock` - market time from the local exchange, wall-clock waits.

The multi-pair bot's assembly is :func:`thunes.live.stack.build_bot` (the same safety core, shared).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import ConfigError
from thunes.execution.account import close_all
from thunes.execution.ledger import Ledger
from thunes.live.feed import CandleFeed
from thunes.live.trader import RecordingPort, Trader, TraderOptions
from thunes.strategies.base import Strategy

__all__ = ["ReplayClock", "TradingStack", "build_stack", "feed_for", "warm_up"]

log = logging.getLogger(__name__)


class ReplayClock:
    """Market time from the local exchange's simulated clock; waiting uses the wall clock.

    Timestamps (journal, positions, risk cool-down, signal age) must be market time in a replay, but
    a component that sleeps (the executor settling a lost order) must not move the market.
    """

    def __init__(self, market_clock: Clock) -> None:
        self._market = market_clock

    def now_ms(self) -> int:
        return self._market.now_ms()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass(slots=True, kw_only=True)
class TradingStack:
    """A trader with every collaborator it was built from (closed together by :meth:`close`)."""

    trader: Trader
    exchange: RecordingPort
    executor: Any
    risk: Any
    journal: Any
    positions: Any
    audit: Any
    ledger: Ledger
    reconciler: Any
    db: Any
    markets: dict[str, Any]
    lease: Any = None  # the AccountLease held while this stack trades (None: an in-memory database)

    def close(self) -> None:
        close_all(self.ledger.close, getattr(self.audit, "close", None), getattr(self.db, "close", None),
                  getattr(self.lease, "release", None))


def build_stack(
    exchange: Any,
    *,
    strategy: Strategy,
    options: TraderOptions,
    risk_settings: Any,
    audit_path: Path,
    ledger_path: Path,
    clock: Clock | None = None,
    audit_fsync: str = "always",
    settle_ms: int | None = None,
    db_url: str | None = None,
    durable: bool = True,
    risk_state_path: Path | None = None,
    settings: Any = None,
    config_source: str = "trader start",
) -> TradingStack:
    """Build journal, positions, risk manager, executor, audit trail, ledger, reconciler and trader.

    The execution database (journal and positions) lives in ``options.state_dir`` unless ``db_url``
    is given; so does the operator state (kill-switch, reduce-only: ``risk_state.json``) unless
    ``risk_state_path`` is given. Before anything trades, the stack takes the account lease (a second
    trading process on the same database is refused, see :class:`~thunes.execution.db.AccountLease`),
    writes a ``config_change`` audit record of ``settings`` (the whole tree, else the risk section: the
    effective settings' hash of every start), and restores every risk state that spans a day from the
    database and the state file (:meth:`RiskManager.restore_from`): open positions, the day's realised
    PnL, the cool-down of the last losing trade, the kill-switch, reduce-only and the manual-reset baseline.
    """
    from thunes.execution import TradeIntent
    from thunes.execution.account import open_account
    from thunes.execution.reconcile import Baseline, Reconciler

    clock = clock or LiveClock()
    state_dir = Path(options.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    port = exchange if isinstance(exchange, RecordingPort) else RecordingPort(exchange)
    markets = port.load_markets()
    if options.symbol not in markets:
        raise ConfigError(f"the exchange has no market {options.symbol!r}")
    account = open_account(port, markets, risk_settings=risk_settings,
                           db_url=db_url or f"sqlite:///{(state_dir / 'execution.sqlite').resolve()}",
                           audit_path=audit_path, risk_state_path=risk_state_path or state_dir / "risk_state.json",
                           clock=clock, audit_fsync=audit_fsync, settle_ms=settle_ms, settings=settings,
                           config_source=config_source, durable=durable)
    db, lease, journal, positions = account.db, account.lease, account.journal, account.positions
    audit, risk, executor = account.audit, account.risk, account.executor
    ledger = Ledger(ledger_path)
    market = markets[options.symbol]
    scope = options.symbol.replace("/", "")
    baseline = Baseline(db, scope, legacy_json=state_dir / f"baseline_{scope}.json")
    tolerance = market.filters.market_step_size if market.filters.market_step_size > 0 else market.filters.step_size
    reconciler = Reconciler(port, journal=journal, positions=positions, symbols=[options.symbol], baseline=baseline,
                            executor=executor, audit=audit, clock=clock, tolerance={options.symbol: tolerance})
    trader = Trader(exchange=port, strategy=strategy, options=options, executor=executor, positions=positions,
                    ledger=ledger, audit=audit, clock=clock, reconciler=reconciler, intent_factory=TradeIntent,
                    dust_sink=lambda symbol, qty: baseline.add(symbol.split("/")[0], qty))
    return TradingStack(trader=trader, exchange=port, executor=executor, risk=risk, journal=journal,
                        positions=positions, audit=audit, ledger=ledger, reconciler=reconciler, db=db,
                        markets=markets, lease=lease)


def feed_for(exchange: Any, *, ws_url: str, symbol: str, timeframe: str, store_url: str | None = None,
             stale_after_s: float = 60.0, seed: int | None = None, **feed_options: Any) -> CandleFeed:
    """A :class:`CandleFeed` whose REST backfill goes through ``exchange`` (the port) and whose closed
    candles are upserted into the candle store at ``store_url`` (opened in the feed thread)."""
    from thunes.live.feed import FeedOptions

    markets = exchange.load_markets()
    market = markets.get(symbol)
    if market is None:
        raise ConfigError(f"the exchange has no market {symbol!r}")
    fetch_lock = threading.Lock()

    def fetch(since: int, limit: int) -> pd.DataFrame:
        with fetch_lock:  # the ccxt client is not thread-safe; the trading thread uses it too
            return exchange.fetch_candles(symbol, timeframe, since=since, limit=limit)

    sink_factory = None
    if store_url:
        def sink_factory() -> Any:  # a CandleStore
            from thunes.data.store import open_store

            return open_store(store_url)

    opts = FeedOptions(ws_url=ws_url, symbol=symbol, exchange_symbol=market.exchange_symbol, timeframe=timeframe,
                       stale_after_s=stale_after_s, **feed_options)
    return CandleFeed(opts, fetch=fetch, sink_factory=sink_factory, rng=np.random.default_rng(seed))


def warm_up(trader: Any, port: Any, now_ms: int) -> int:
    """Seed a trader's window with the closed candles up to its last processed one (or up to now on a first start).

    Stopping the history at the last processed candle is what makes a restart process every candle that
    closed while the trader was down (the feed or source backfills from the window's last candle and hands
    them out next), instead of silently skipping them. Used by ``thunes paper``/``live`` and the bot.
    """
    tf = trader.tf_ms
    last = trader.state.last_bar_ts
    end = last + tf if last is not None else (now_ms // tf) * tf
    since = end - trader.window_bars * tf
    frame = port.fetch_candles(trader.options.symbol, trader.options.timeframe, since=since,
                               limit=min(1000, trader.window_bars))
    if frame is None or frame.empty:
        return 0
    stamps = ts_ms(frame)
    kept: int = trader.warm_up(frame[(stamps >= since) & (stamps < end)])
    return kept
