"""The REST API: watch and steer a bot from a browser or a phone (docs/api.md).

Thin, like the CLI: every route calls :mod:`thunes.services`; the event stream follows the bot's
:class:`~thunes.core.events.EventBus`. Secure by default: loopback only, no default secret, JWT access and
refresh tokens plus revocable API tokens, two roles (read, trader), login rate limit, CORS closed.

Needs the ``api`` extra (``pip install -e ".[api]"``).
"""

from thunes.api.app import PREFIX, ServerThread, build_server, check_bind, create_app, serve
from thunes.api.context import ApiContext
from thunes.api.settings import ApiSettings, load_api_settings

__all__ = [
           "PREFIX",
           "ApiContext",
           "ApiSettings",
           "ServerThread",
           "build_server",
           "check_bind",
           "create_app",
           "load_api_settings",
           "serve",
]
