"""The candle store: one interface, two backends (SQLite embedded by default, PostgreSQL by URL).

::

    open_store("sqlite:///data/thunes.sqlite")        # WAL, one writer + many readers across processes
    open_store("postgresql://user@host:5432/thunes")  # psycopg 3, binary COPY in and out

Both keep the schema ``ohlcv(id, symbol, timeframe, ts, open, high, low, close, volume, source,
UNIQUE(symbol, timeframe, ts))`` plus a ``series_meta`` row per (symbol, timeframe) holding a version
counter and the row count / first / last timestamps, updated *in the same transaction* as every write.

Writes go through :func:`thunes.data.quality.split_valid` first: invalid rows are rejected with a
per-row reason (see :class:`WriteResult`) and never reach the table, so a bad row can neither be
stored nor overwrite a stored candle. ``insert`` ignores timestamps already stored; ``upsert``
replaces them (and counts only rows whose values actually changed).

Fast research reads: a full-series :meth:`CandleStore.load` is served from a columnar cache (Arrow IPC
files, see :mod:`thunes.data._cache`) named after the store's identity and the series version. A
write bumps the version in its own transaction, so a load that starts after the write returned reads
the new version and can never see a stale file. Ranged loads that miss the cache read the database
directly (an index range scan), so a trader polling the last few hundred bars of a series that grows
every minute does not rebuild a million-row cache each time.

Optional replica (``replica_url``): every accepted write is applied to the primary and then, in the
same order, to the replica.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from thunes.core.errors import StoreError
from thunes.core.redact import redact_url
from thunes.data._base import (
    BATCH_ROWS,
    Arrays,
    CandleStore,
    SeriesInfo,
    WriteMode,
    WriteResult,
    frame_arrays,
    normalize_symbol,
)
from thunes.data._cache import ColumnarCache

__all__ = [
    "BATCH_ROWS",
    "Arrays",
    "CandleStore",
    "SeriesInfo",
    "WriteMode",
    "WriteResult",
    "frame_arrays",
    "normalize_symbol",
    "open_store",
    "store_from_settings",
]


def open_store(
    url: str,
    *,
    cache_dir: str | Path | Literal["auto"] | None = "auto",
    replica_url: str | None = None,
) -> CandleStore:
    """Open (and create if needed) the store at ``url``.

    ``sqlite:///relative/or/absolute/path.sqlite`` (parent folders are created; ``sqlite:///:memory:``
    works for throw-away stores) or ``postgresql://user:pass@host:port/db``.

    ``cache_dir``: where the columnar read cache lives. ``"auto"``: beside a SQLite file
    (``<file>.cache/``), none for PostgreSQL or in-memory SQLite; ``None`` disables it.
    """
    cache: ColumnarCache | None = None
    if url.startswith("sqlite:"):
        from thunes.data._sqlite import SQLiteStore, sqlite_path

        path = sqlite_path(url)
        if cache_dir == "auto":
            cache_dir = None if path is None else path.with_name(path.name + ".cache")
        if cache_dir is not None:
            cache = ColumnarCache(Path(cache_dir))
        store: CandleStore = SQLiteStore(url, path, cache=cache)
    elif url.startswith(("postgresql://", "postgres://")):
        from thunes.data._postgres import PostgresStore

        if cache_dir not in ("auto", None):
            cache = ColumnarCache(Path(cache_dir))  # type: ignore[arg-type]
        store = PostgresStore(url, cache=cache)
    else:
        raise StoreError(f"unsupported store URL {redact_url(url)!r}: expected sqlite:///PATH or postgresql://...")
    if replica_url:
        store.attach_replica(open_store(replica_url, cache_dir=None))
    return store


def store_from_settings(data_settings: Any, *, url: str | None = None) -> CandleStore:
    """Open the store described by ``settings.data`` (``url``, ``replica_url``, ``cache_dir``)."""
    return open_store(
        url or data_settings.url,
        cache_dir=data_settings.cache_dir,
        replica_url=data_settings.replica_url,
    )
