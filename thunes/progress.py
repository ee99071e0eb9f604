"""Progress bars for every command: shown on a terminal, silent everywhere else.

A bar redraws itself with carriage returns; in a log file, a CI job or a pipe that is thousands of
lines of noise. :func:`progress_bar` is the one way the package makes a bar: on stderr, only when
stderr is a terminal (and the caller has not turned bars off), and cleared when done.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar", "show_progress"]


def show_progress(enabled: bool = True) -> bool:
    """Whether a bar would be drawn now: asked for and stderr is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(enabled and isatty is not None and isatty())


def progress_bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str | None = None,
                 unit: str = "it", initial: int = 0, enabled: bool = True) -> Any:
    """A tqdm bar on stderr, disabled unless :func:`show_progress`; usable as an iterable wrapper or
    updated by hand (``update``, ``n`` + ``refresh``, ``close``) like tqdm itself."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                disable=not show_progress(enabled), dynamic_ncols=True, leave=False)
