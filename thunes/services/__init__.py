"""What a user can do, as typed functions: the one layer every edge (CLI, API, Telegram, scheduler) calls.

* :mod:`thunes.services.bot` - run a multi-pair bot; status, pause, resume, stop, force-exit, reload, jobs,
  kill-switch of a running (or stopped) bot.
* :mod:`thunes.services.reports` - trades (paged), profit, daily/weekly summaries, performance per pair.
* :mod:`thunes.services.optimize` - optimise -> walk-forward -> the deploy rule (the bot's re-optimisation).
* :mod:`thunes.services.safety` - the live-trading rules every surface must pass (confirmations,
  trading-only keys, the live position cap).
* :mod:`thunes.services.system` - versions, the tail of a log file, a bot's health checks.

Requests and results are frozen dataclasses; errors are :mod:`thunes.core.errors` types with one-line
messages. Backtest/optimise/data/ML/audit services are still the CLI modules' own code (to be moved).
"""

from __future__ import annotations

__all__ = ["bot", "optimize", "reports", "safety", "system"]
