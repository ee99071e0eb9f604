"""Validate a settings file's text before it is used: every problem at once, or the effective settings it
gives with the source of each value, secrets masked (``thunes config check``; the API's ``POST /config/check``;
the dashboard's Config page)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from thunes.core.errors import ConfigError
from thunes.services.monitor import _mask

__all__ = ["MAX_TEXT", "check_settings_text"]

MAX_TEXT = 200_000


def _unpath(problem: str, path: Path) -> str:
    return (problem.replace(f"config file {path}", "the file").replace(f"file:{path}", "the file")
            .replace(str(path), "the file"))


def check_settings_text(text: str, *, fmt: Literal["toml", "json"] = "toml") -> dict[str, Any]:
    """``{"ok": False, "problems": [...]}`` or ``{"ok": True, "rows": [{"key", "value", "source"}]}``: the text
    layered with ``.env`` and the ``THUNES_*`` environment exactly as ``thunes --config FILE`` would load it."""
    from thunes.config import load_settings

    if len(text) > MAX_TEXT:
        raise ConfigError(f"a settings file is at most {MAX_TEXT} characters")
    with tempfile.TemporaryDirectory(prefix="thunes-config-") as tmp:
        path = Path(tmp) / f"settings.{fmt}"
        path.write_text(text, encoding="utf-8")
        try:
            loaded = load_settings(path)
        except ConfigError as exc:
            problems = exc.problems or [str(exc)]
            return {"ok": False, "problems": [_unpath(p, path) for p in problems]}
    # show() masks SecretStr values; URL passwords and secret-named keys are masked as by GET /settings.
    rows = [{"key": k, "value": _mask(v, k.rpartition(".")[2]), "source": "file" if s.startswith("file:") else s}
            for k, v, s in loaded.show()]
    return {"ok": True, "rows": rows}
