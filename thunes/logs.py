"""Logging: JSON lines to a rotating file under ``logs/`` and a readable console; secrets redacted."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from pathlib import Path

from thunes.config import LoggingSettings

__all__ = ["setup_logging", "JsonLineFormatter", "RedactingFilter"]

_SECRET_PATTERNS = [
    re.compile(r"(?i)(api[_-]?key|secret|signature|token|password)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",&]+)"),
]


class RedactingFilter(logging.Filter):
    """Masks values of key=value pairs whose key looks like a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _SECRET_PATTERNS:
            redacted = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}***", redacted)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
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
        return json.dumps(payload, default=str)


def setup_logging(settings: LoggingSettings, *, console: bool = True, component: str = "thunes") -> None:
    """Configure the root ``thunes`` logger once; safe to call repeatedly."""
    logger = logging.getLogger("thunes")
    logger.setLevel(settings.level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    redact = RedactingFilter()
    if settings.json_file:
        Path(settings.dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            Path(settings.dir) / f"{component}.jsonl", maxBytes=settings.max_bytes, backupCount=settings.backups
        )
        file_handler.setFormatter(JsonLineFormatter())
        file_handler.addFilter(redact)
        logger.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        stream.setLevel(max(logging.WARNING, logging.getLevelName(settings.level)))
        stream.addFilter(redact)
        logger.addHandler(stream)
    logger.propagate = False
