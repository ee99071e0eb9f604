"""The trading loop's home: the single-pair trader, its state and assembly, candle sources, the multi-pair bot.

The safety core the loop drives (risk, filters, journal, positions, audit trail, ledger, reconciliation)
is :mod:`thunes.execution`; the functions every edge calls are :mod:`thunes.services`.

* :mod:`thunes.live.trader` - :class:`~thunes.live.trader.Trader`: one strategy on one pair, one step per
  closed candle, and its loop.
* :mod:`thunes.live.state` - a trader's restart state (the last decided candle), written atomically.
* :mod:`thunes.live.assembly` - :func:`~thunes.live.assembly.build_stack` (one trader on the safety core),
  ``feed_for``, ``warm_up``, ``ReplayClock``.
* :mod:`thunes.live.feed` - :class:`~thunes.live.feed.CandleFeed`: websocket klines with reconnect and backfill.
* :mod:`thunes.live.sources` - the :class:`CandleSource` protocol; websocket and lockstep replay sources.
* :mod:`thunes.live.stack` - :func:`build_bot`: one safety core (risk, executor, journal, audit, ledger)
  shared by one :class:`~thunes.live.trader.Trader` per pair.
* :mod:`thunes.live.bot` - :class:`Bot`: one thread trading every pair's candles in the order they close.
* :mod:`thunes.live.jobs` - scheduled jobs on APScheduler triggers, run between candles.
* :mod:`thunes.live.control` - the local control socket (status, pause, resume, stop, force-exit).
* :mod:`thunes.live.config` - ``bot.toml``.
"""

from __future__ import annotations

from thunes.live.bot import Bot, BotReport, BotStatus
from thunes.live.config import Assignment, BotSettings, load_bot_settings
from thunes.live.sources import CandleSource, ReplaySource, SourcedCandle, StreamKey, WebsocketSource
from thunes.live.stack import BotStack, GatedExecutor, build_bot

__all__ = [
           "Assignment",
           "Bot",
           "BotReport",
           "BotSettings",
           "BotStack",
           "BotStatus",
           "CandleSource",
           "GatedExecutor",
           "ReplaySource",
           "SourcedCandle",
           "StreamKey",
           "WebsocketSource",
           "build_bot",
           "load_bot_settings",
]
