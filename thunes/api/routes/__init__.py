"""Routers by area, all mounted under /api/v1 by :func:`thunes.api.app.create_app`."""

from thunes.api.routes import auth, bot, events, reports, research, system

__all__ = ["auth", "bot", "events", "reports", "research", "system", "ROUTERS"]

ROUTERS = (auth.router, system.router, bot.router, reports.router, research.router, events.router)
