"""Routers by area, all mounted under /api/v1 by :func:`thunes.api.app.create_app`."""

from thunes.api.routes import auth, bot, charts, events, reports, research, system

__all__ = ["ROUTERS", "auth", "bot", "charts", "events", "reports", "research", "system"]

# charts before research: /runs/backtest/{id}/trades must match before /runs/{kind}/{id:path}.
ROUTERS = (auth.router, system.router, bot.router, reports.router, charts.router, research.router, events.router)
