"""Logging: JSON lines to a rotating file under ``logs/`` and a readable console; secrets redacted.

Redaction happens on the way out, in both formatters, over everything a record carries (message,
extra fields, traceback), with :func:`thunes.core.redact.redact_text`: ``key=value`` credentials and
URL passwords never reach a log sink. A log folder that cannot be written is a
:class:`~thunes.core.errors.ConfigError` naming ``logging.dir``, not a traceback and not a silent
fallback.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

from thunes.config import LoggingSettings
from thunes.core.errors import ConfigError
from thunes.core.redact import MASK, is_secret_name, redact_text

__all__ = ["JsonLineFormatter", "RedactingFilter", "RedactingFormatter", "setup_logging"]


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message (for handlers that are not set up by :func:`setup_logging`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class RedactingFormatter(logging.Formatter):
    """The console format, with secrets masked in the whole formatted text (traceback included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: MASK if isinstance(v, str) and v and is_secret_name(str(k)) else _redacted(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_text(str(value))


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's ``fields`` and any traceback, with
    secrets masked in every string."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(_redacted(payload), default=str)


def setup_logging(settings: LoggingSettings, *, console: bool = True, component: str = "thunes") -> None:
    """Configure the root ``thunes`` logger once; safe to call repeatedly."""
    logger = logging.getLogger("thunes")
    logger.setLevel(settings.level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if settings.json_file:
        path = Path(settings.dir) / f"{component}.jsonl"
        try:
            Path(settings.dir).mkdir(parents=True, exist_ok=True)
            file_handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=settings.max_bytes, backupCount=settings.backups
            )
        except OSError as exc:
            raise ConfigError(
                f"logging.dir {settings.dir}: cannot write {path.name} there ({exc.strerror or exc}); "
                "set logging.dir to a writable folder, or logging.json_file=false to log to the console only"
            ) from exc
        file_handler.setFormatter(JsonLineFormatter())
        logger.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        stream.setLevel(max(logging.WARNING, logging.getLevelName(settings.level)))
        logger.addHandler(stream)
    logger.propagate = False
