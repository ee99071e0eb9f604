"""Masking secrets in text that is printed, logged, raised or stored: the one place that knows how.

:func:`redact_url` hides the password of one URL (``postgresql://bot:***@db/x``); :func:`redact_text`
hides URL passwords and ``key=value`` credentials anywhere in free text (log lines, error messages,
driver errors that quote a connection string). Both only ever remove information: a string that holds
no secret comes back unchanged, and a URL they cannot parse is masked generously rather than left
alone. ``SecretStr`` settings are masked by their type where settings are shown (``thunes.config``).
"""

from __future__ import annotations

import re

__all__ = ["MASK", "is_secret_name", "redact_text", "redact_url"]

MASK = "***"

# ``scheme://user:password@`` (the password may hold anything but whitespace, even '@' or '/': the
# greedy run stops at the last '@' before whitespace, so a password is never half-shown).
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):(?P<password>[^\s'\"]*)@")
# Credentials passed as query parameters (libpq's ``?password=``, ``?sslpassword=``, tokens).
_QUERY_SECRET = re.compile(
    r"(?i)(?P<head>[?&;](?:password|passwd|pwd|sslpassword|secret|token|api[_-]?key|access[_-]?token)=)"
    r"(?P<value>[^&#\s'\"]*)"
)
# ``api_key=...``, ``secret: '...'``, ``"token": "..."``, ``password=...`` in free text. With a colon,
# a quote must be there (a dict, JSON or header dump): "exchange.api_key: must be ASCII" is prose.
_KEY_VALUE = re.compile(
    r"(?i)(?P<head>(?:api[_-]?key|api[_-]?secret|secret|signature|token|password|passphrase)"
    r"(?:\s*=\s*['\"]?|['\"]\s*[:=]\s*['\"]?|\s*:\s*['\"]))(?P<value>[^\s'\",&}]+)"
)


_SECRET_NAME = re.compile(r"secret|api[_-]?key|token|password|passwd|passphrase|signature|private",
                          re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a key name (in a dict, a JSON payload, a header) looks like it holds a credential. For
    typed settings, judge by type instead (``thunes.config.is_secret_key``)."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@``) and credential query parameters replaced by ``***``.

    Safe to print, log, put in an exception or store with a result. A URL without credentials is
    returned unchanged.
    """
    if "://" not in url:
        return _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, url)
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        # Everything before the last '@' is user information, whatever characters the password holds.
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":" + MASK
        rest = f"{creds}@{host}"
    return _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, f"{scheme}://{rest}")


def redact_text(text: str) -> str:
    """``text`` with every URL password, credential query parameter and ``key=value`` secret masked."""
    text = _URL_USERINFO.sub(lambda m: m.group("head") + ":" + MASK + "@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)
