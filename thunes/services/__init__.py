"""What a user can do, as typed functions: the one layer every edge (CLI, API, Telegram, scheduler) calls.

* :mod:`thunes.services.trading` - one strategy on one pair: a paper run on the local exchange, a testnet
  or live run (under :mod:`thunes.services.safety`).
* :mod:`thunes.services.risk` - an account's risk status, order journal, kill-switch and reduce-only.
* :mod:`thunes.services.audit` - verify an audit trail (HMAC chain, head file, anchors).
* :mod:`thunes.services.bot` - run a multi-pair bot; status, pause, resume, stop, force-exit, reload, jobs,
  kill-switch of a running (or stopped) bot.
* :mod:`thunes.services.reports` - trades (paged), profit, daily/weekly summaries, performance per pair.
* :mod:`thunes.services.optimize` - optimise -> walk-forward -> the deploy rule (the bot's re-optimisation).
* :mod:`thunes.services.safety` - the live-trading rules every surface must pass (confirmations,
  trading-only keys, the live position cap).
* :mod:`thunes.services.system` - versions, the tail of a log file, a bot's health checks.
* :mod:`thunes.services.monitor` - health (feed freshness, jobs, exchange), balance, risk state, reduce-only,
  audit check, log tail, masked settings.
* :mod:`thunes.services.history` - trades with stable ids, one trade by id, monthly profit.
* :mod:`thunes.services.catalog` - stored candle series, models, backtest/optimisation runs and reports.
* :mod:`thunes.services.tasks` / :mod:`thunes.services.research` - backtest, study and training runs as
  background tasks with progress and cancel.
* :mod:`thunes.services.runner` - one bot on a background thread of a server process (the API's start).

Requests and results are frozen dataclasses; errors are :mod:`thunes.core.errors` types with one-line
messages. The CLI's backtest/optimise/data/ML commands still carry their own code (to be moved here).
"""

from __future__ import annotations

__all__ = ["audit", "bot", "catalog", "history", "monitor", "optimize", "reports", "research", "risk", "runner",
           "safety", "system", "tasks", "trading"]
