"""Writing files atomically with the permissions a user expects.

Every file the package writes for people and tools to read (reports, artifacts, caches, model metadata)
is written to a temporary file in the same folder and renamed over the target, so a reader never sees
half a file and a crash leaves the previous version. ``tempfile.mkstemp`` creates that temporary file
with mode 0600, which the rename would carry to the result; here the result gets the mode an ordinary
``open()`` would give it (0666 minus the umask), unless ``secret=True`` (a file that may hold API keys
or passwords, e.g. a written config file), which stays 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "file_mode"]

SECRET_MODE = 0o600


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would briefly change it for every thread)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(*, secret: bool = False) -> int:
    """The mode a new file gets: 0600 for a secret, else what ``open()`` would create (0666 & ~umask)."""
    return SECRET_MODE if secret else 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | Path, *, secret: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (by any writer: pandas, pyarrow, torch); on a clean
    exit it gets :func:`file_mode` and replaces ``path``; on an error it is removed and ``path`` kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode(secret=secret))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | Path, data: str | bytes, *, secret: bool = False, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` atomically (fsynced before the rename); returns ``path``."""
    path = Path(path)
    with atomic_path(path, secret=secret) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data.encode(encoding) if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
    return path
