"""The exchange base URL has one meaning everywhere: the exchange's host, ``scheme://host[:port]``.

``thunes data download --base-url``, ``exchange.base_url`` (``THUNES_EXCHANGE__BASE_URL``) for paper,
testnet and live, and the local exchange all take the same value, e.g. ``http://127.0.0.1:8765``; a
trailing ``/api/v3`` (or ``/api``), the form Binance's REST documentation prints, is accepted and means
the same. Anything else (another path, no scheme, a query) is refused when the settings load or the
option is parsed, with an example of the right form, instead of requests answered 404 and retried.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["REST_PATH", "rest_root"]

REST_PATH = "/api/v3"
_ACCEPTED_PATHS = ("", "/api", "/api/v3")
_EXAMPLE = "http://127.0.0.1:8765 or https://testnet.binance.vision (a trailing /api/v3 is accepted)"


def rest_root(url: str) -> str:
    """``url`` as the exchange host ``scheme://host[:port]``, without ``/api/v3``; ValueError (one line
    naming the problem and the expected form) when it is not a base URL."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {text!r} needs http:// or https:// and a host, e.g. {_EXAMPLE}")
    if parts.query or parts.fragment:
        raise ValueError(f"base URL {text!r} must not have a query or fragment; expected e.g. {_EXAMPLE}")
    path = parts.path.rstrip("/")
    if path not in _ACCEPTED_PATHS:
        raise ValueError(f"base URL {text!r} has the path {parts.path!r}; expected the exchange host, "
                         f"e.g. {_EXAMPLE}")
    return f"{parts.scheme}://{parts.netloc}"
