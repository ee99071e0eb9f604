"""SQLite backend of the candle store: the embedded default.

Concurrency model: WAL journal (readers never block the writer and see a consistent snapshot), a
30 s busy timeout, and every write in a ``BEGIN IMMEDIATE`` transaction so that concurrent writers in
other processes queue on the write lock instead of failing with a lock-upgrade deadlock. Bulk writes
use ``executemany`` in one transaction (SQLite's own ceiling here is about 290k rows/s).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from itertools import chain, repeat
from pathlib import Path

import numpy as np

from thunes.core.errors import StoreError
from thunes.data._base import BATCH_ROWS, Arrays, CandleStore, SeriesInfo, WriteMode, _empty_arrays

__all__ = ["SQLiteStore", "sqlite_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ohlcv (
    id INTEGER PRIMARY KEY,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts INTEGER NOT NULL,
    open REAL NOT NULL,
    high REAL NOT NULL,
    low REAL NOT NULL,
    close REAL NOT NULL,
    volume REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'import',
    UNIQUE (symbol, timeframe, ts)
);
CREATE TABLE IF NOT EXISTS series_meta (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    version INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    first_ts INTEGER,
    last_ts INTEGER,
    PRIMARY KEY (symbol, timeframe)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = "symbol, timeframe, ts, open, high, low, close, volume, source"
_INSERT = f"INSERT INTO ohlcv ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (symbol, timeframe, ts) DO NOTHING"
_UPSERT = (
    f"INSERT INTO ohlcv ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (symbol, timeframe, ts) DO UPDATE SET "
    "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, source = excluded.source "
    # Only rows whose values change count as written (and bump the version).
    "WHERE ohlcv.open <> excluded.open OR ohlcv.high <> excluded.high OR ohlcv.low <> excluded.low "
    "OR ohlcv.close <> excluded.close OR ohlcv.volume <> excluded.volume"
)
_BUMP = (
    "INSERT INTO series_meta (symbol, timeframe, version, rows, first_ts, last_ts) VALUES (?, ?, 1, ?, ?, ?) "
    "ON CONFLICT (symbol, timeframe) DO UPDATE SET version = version + 1, rows = rows + excluded.rows, "
    "first_ts = min(coalesce(first_ts, excluded.first_ts), excluded.first_ts), "
    "last_ts = max(coalesce(last_ts, excluded.last_ts), excluded.last_ts)"
)
_RANGE = "symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?"
_MIN, _MAX = -(2**62), 2**62


def sqlite_path(url: str) -> Path | None:
    """File path of ``sqlite:///relative.sqlite`` / ``sqlite:////abs.sqlite``; None for ``:memory:``."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"SQLite URL must look like sqlite:///path/to/file.sqlite, got {url!r}")
    rest = url[len("sqlite:///"):]
    if rest in (":memory:", ""):
        return None
    return Path(rest)


class SQLiteStore(CandleStore):
    def __init__(self, url: str, path: Path | None, *, cache=None) -> None:  # noqa: ANN001
        super().__init__(url, cache=cache)
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                ":memory:" if path is None else str(path), timeout=30.0, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {url}: {exc}") from exc
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 30000")
        if path is not None:
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("PRAGMA synchronous = NORMAL")
        self._retry(self._create_schema)
        self._id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]

    @staticmethod
    def _retry(action: Callable[[], object], attempts: int = 50) -> None:
        """Schema set-up races between processes opening a new file at once; retry 'locked' briefly."""
        for attempt in range(attempts):
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise StoreError(f"SQLite set-up failed: {exc}") from exc
                time.sleep(0.05)

    def _create_schema(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ---------------------------------------------------------------- writes
    def _range_count(self, symbol: str, timeframe: str, lo: int, hi: int) -> int:
        return self._conn.execute(f"SELECT count(*) FROM ohlcv WHERE {_RANGE}", (symbol, timeframe, lo, hi)).fetchone()[0]

    def _write_arrays(self, symbol: str, timeframe: str, arrays: Arrays, *, source: str, mode: WriteMode,
                      progress: Callable[[int], None] | None) -> int:
        ts = arrays[0]
        lo, hi = int(ts[0]), int(ts[-1])
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite store {self.url} is busy: {exc}") from exc
        try:
            before = self._range_count(symbol, timeframe, lo, hi + 1) if mode == "upsert" else 0
            changes = conn.total_changes
            sql = _UPSERT if mode == "upsert" else _INSERT
            for s in range(0, len(ts), BATCH_ROWS):
                e = min(s + BATCH_ROWS, len(ts))
                conn.executemany(sql, zip(repeat(symbol), repeat(timeframe), ts[s:e].tolist(),
                                          *(a[s:e].tolist() for a in arrays[1:]), repeat(source)))
                if progress is not None:
                    progress(e - s)
            written = conn.total_changes - changes
            if written:
                new_rows = written if mode == "insert" else self._range_count(symbol, timeframe, lo, hi + 1) - before
                conn.execute(_BUMP, (symbol, timeframe, new_rows, lo, hi))
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"SQLite write of {symbol} {timeframe} failed: {exc}") from exc
            raise
        return written

    def _delete(self, symbol: str, timeframe: str, start: int | None, end: int | None) -> int:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            lo, hi = (_MIN if start is None else start), (_MAX if end is None else end)
            deleted = conn.execute(f"DELETE FROM ohlcv WHERE {_RANGE}", (symbol, timeframe, lo, hi)).rowcount
            if deleted:
                first, last, rows = conn.execute(
                    "SELECT min(ts), max(ts), count(*) FROM ohlcv WHERE symbol = ? AND timeframe = ?",
                    (symbol, timeframe)).fetchone()
                # The meta row is kept (never reset) so a version number is never reused.
                conn.execute("UPDATE series_meta SET version = version + 1, rows = ?, first_ts = ?, last_ts = ? "
                             "WHERE symbol = ? AND timeframe = ?", (rows, first, last, symbol, timeframe))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return deleted

    # ----------------------------------------------------------------- reads
    def _read_arrays(self, symbol: str, timeframe: str, start: int | None, end: int | None) -> Arrays:
        lo, hi = (_MIN if start is None else start), (_MAX if end is None else end)
        cursor = self._conn.execute(
            f"SELECT ts, open, high, low, close, volume FROM ohlcv WHERE {_RANGE} ORDER BY ts",
            (symbol, timeframe, lo, hi),
        )
        # Epoch ms fit exactly in float64 (< 2**53), so one flat float stream decodes all six columns
        # without materialising a list of row tuples first.
        flat = np.fromiter(chain.from_iterable(cursor), dtype="float64")
        if not len(flat):
            return _empty_arrays()
        matrix = flat.reshape(-1, 6)
        return (matrix[:, 0].astype("int64"),) + tuple(np.ascontiguousarray(matrix[:, i]) for i in range(1, 6))  # type: ignore[return-value]

    def _snapshot(self, symbol: str, timeframe: str) -> tuple[int, Arrays]:
        conn = self._conn
        conn.execute("BEGIN")  # deferred: the first SELECT fixes the WAL snapshot for both reads
        try:
            version = self._version(symbol, timeframe)
            arrays = self._read_arrays(symbol, timeframe, None, None)
        finally:
            conn.execute("COMMIT")
        return version, arrays

    def _version(self, symbol: str, timeframe: str) -> int:
        row = self._conn.execute("SELECT version FROM series_meta WHERE symbol = ? AND timeframe = ?",
                                 (symbol, timeframe)).fetchone()
        return int(row[0]) if row else 0

    def _store_id(self) -> str:
        return self._id

    def _series(self) -> list[SeriesInfo]:
        rows = self._conn.execute(
            "SELECT symbol, timeframe, first_ts, last_ts, rows FROM series_meta WHERE rows > 0").fetchall()
        return [SeriesInfo(symbol=s, timeframe=t, first=f, last=la, rows=n) for s, t, f, la, n in rows]

    def _series_info(self, symbol: str, timeframe: str) -> SeriesInfo | None:
        row = self._conn.execute(
            "SELECT symbol, timeframe, first_ts, last_ts, rows FROM series_meta "
            "WHERE symbol = ? AND timeframe = ? AND rows > 0", (symbol, timeframe)).fetchone()
        if row is None:
            return None
        return SeriesInfo(symbol=row[0], timeframe=row[1], first=row[2], last=row[3], rows=row[4])

    def _close(self) -> None:
        self._conn.close()
