"""PostgreSQL backend of the candle store (psycopg 3).

Bulk paths use binary COPY in both directions, encoded and decoded with numpy structured dtypes (no
per-row Python): a write COPYs into a temporary staging table and then runs one
``INSERT … SELECT … ON CONFLICT`` into ``ohlcv``; a read COPYs the query result out and views it as a
record array. Writers to the same series are serialised by a row lock on its ``series_meta`` row, which
also carries the version bumped in the write's transaction. Snapshot reads (version + rows for the
cache) run in one REPEATABLE READ transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from thunes.core.errors import StoreError
from thunes.core.redact import redact_url
from thunes.data._base import BATCH_ROWS, Arrays, CandleStore, SeriesInfo, WriteMode, _empty_arrays

__all__ = ["PostgresStore", "decode_copy_binary", "encode_copy_binary"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ohlcv (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        ts BIGINT NOT NULL,
        open DOUBLE PRECISION NOT NULL,
        high DOUBLE PRECISION NOT NULL,
        low DOUBLE PRECISION NOT NULL,
        close DOUBLE PRECISION NOT NULL,
        volume DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL DEFAULT 'import',
        UNIQUE (symbol, timeframe, ts))""",
    """CREATE TABLE IF NOT EXISTS series_meta (
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        version BIGINT NOT NULL,
        rows BIGINT NOT NULL,
        first_ts BIGINT,
        last_ts BIGINT,
        PRIMARY KEY (symbol, timeframe))""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('store_id', md5(random()::text || clock_timestamp()::text)) "
    "ON CONFLICT (key) DO NOTHING",
)
_SCHEMA_LOCK = 0x7448554E  # advisory lock id: concurrent first opens create the schema once

_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_FIELDS = ("ts", "open", "high", "low", "close", "volume")
# One binary COPY tuple of (int8, 5 x float8): field count, then (length, value) per field, big-endian.
_ROW = np.dtype(
    [("nfields", ">i2")]
    + [item for i, name in enumerate(_FIELDS) for item in ((f"len{i}", ">i4"), (name, ">i8" if i == 0 else ">f8"))]
)
_RANGE = "symbol = %s AND timeframe = %s AND ts >= %s AND ts < %s"
_MIN, _MAX = -(2**62), 2**62


def encode_copy_binary(arrays: Arrays) -> bytes:
    """Rows as a PostgreSQL binary COPY body (header + tuples + trailer)."""
    rec = np.empty(len(arrays[0]), dtype=_ROW)
    rec["nfields"] = len(_FIELDS)
    for i, (name, values) in enumerate(zip(_FIELDS, arrays)):
        rec[f"len{i}"] = 8
        rec[name] = values
    return _HEADER + rec.tobytes() + _TRAILER


def decode_copy_binary(data: bytes) -> Arrays:
    """Inverse of :func:`encode_copy_binary` for a ``COPY (SELECT ts, open, …) TO STDOUT (FORMAT BINARY)``."""
    if not data.startswith(_HEADER[:11]):
        raise StoreError("unexpected COPY BINARY header from PostgreSQL")
    ext = int.from_bytes(data[15:19], "big")
    offset = 19 + ext
    body = len(data) - offset - len(_TRAILER)
    if body % _ROW.itemsize:
        raise StoreError("COPY BINARY body is not a whole number of (ts, 5 floats) rows")
    rec = np.frombuffer(data, dtype=_ROW, count=body // _ROW.itemsize, offset=offset)
    if len(rec) and ((rec["nfields"] != 6).any() or any((rec[f"len{i}"] != 8).any() for i in range(6))):
        raise StoreError("COPY BINARY rows have an unexpected shape (NULL values?)")
    return (rec["ts"].astype("int64"),) + tuple(rec[name].astype("float64") for name in _FIELDS[1:])  # type: ignore[return-value]


class PostgresStore(CandleStore):
    def __init__(self, url: str, *, cache=None) -> None:  # noqa: ANN001
        super().__init__(url, cache=cache)
        import psycopg

        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL store {redact_url(url)}: {exc}") from exc
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                self._conn.execute(statement)
        self._id = self._conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]

    def _range_count(self, symbol: str, timeframe: str, lo: int, hi: int) -> int:
        return self._conn.execute(f"SELECT count(*) FROM ohlcv WHERE {_RANGE}", (symbol, timeframe, lo, hi)).fetchone()[0]

    def _write_arrays(self, symbol: str, timeframe: str, arrays: Arrays, *, source: str, mode: WriteMode,
                      progress: Callable[[int], None] | None) -> int:
        ts = arrays[0]
        lo, hi = int(ts[0]), int(ts[-1])
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE _stage (ts BIGINT, open FLOAT8, high FLOAT8, low FLOAT8, "
                             "close FLOAT8, volume FLOAT8) ON COMMIT DROP")
                with conn.cursor() as cur, cur.copy("COPY _stage FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(_HEADER)
                    for s in range(0, len(ts), BATCH_ROWS):
                        e = min(s + BATCH_ROWS, len(ts))
                        body = encode_copy_binary(tuple(a[s:e] for a in arrays))  # type: ignore[arg-type]
                        copy.write(body[len(_HEADER):-len(_TRAILER)])
                        if progress is not None:
                            progress(e - s)
                    copy.write(_TRAILER)
                conn.execute("INSERT INTO series_meta (symbol, timeframe, version, rows) VALUES (%s, %s, 0, 0) "
                             "ON CONFLICT (symbol, timeframe) DO NOTHING", (symbol, timeframe))
                conn.execute("SELECT version FROM series_meta WHERE symbol = %s AND timeframe = %s FOR UPDATE",
                             (symbol, timeframe))
                before = self._range_count(symbol, timeframe, lo, hi + 1) if mode == "upsert" else 0
                select = ("INSERT INTO ohlcv (symbol, timeframe, ts, open, high, low, close, volume, source) "
                          "SELECT %s, %s, ts, open, high, low, close, volume, %s FROM _stage "
                          "ON CONFLICT (symbol, timeframe, ts) ")
                if mode == "upsert":
                    select += ("DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, "
                               "close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source "
                               "WHERE (ohlcv.open, ohlcv.high, ohlcv.low, ohlcv.close, ohlcv.volume) "
                               "IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, "
                               "EXCLUDED.volume)")
                else:
                    select += "DO NOTHING"
                written = conn.execute(select, (symbol, timeframe, source)).rowcount
                if written:
                    new_rows = written if mode == "insert" else self._range_count(symbol, timeframe, lo, hi + 1) - before
                    conn.execute(
                        "UPDATE series_meta SET version = version + 1, rows = rows + %s, "
                        "first_ts = LEAST(coalesce(first_ts, %s), %s), last_ts = GREATEST(coalesce(last_ts, %s), %s) "
                        "WHERE symbol = %s AND timeframe = %s",
                        (new_rows, lo, lo, hi, hi, symbol, timeframe),
                    )
        except self._psycopg.Error as exc:
            raise StoreError(f"PostgreSQL write of {symbol} {timeframe} failed: {exc}") from exc
        return written

    def _delete(self, symbol: str, timeframe: str, start: int | None, end: int | None) -> int:
        conn = self._conn
        lo, hi = (_MIN if start is None else start), (_MAX if end is None else end)
        with conn.transaction():
            conn.execute("SELECT version FROM series_meta WHERE symbol = %s AND timeframe = %s FOR UPDATE",
                         (symbol, timeframe))
            deleted = conn.execute(f"DELETE FROM ohlcv WHERE {_RANGE}", (symbol, timeframe, lo, hi)).rowcount
            if deleted:
                first, last, rows = conn.execute(
                    "SELECT min(ts), max(ts), count(*) FROM ohlcv WHERE symbol = %s AND timeframe = %s",
                    (symbol, timeframe)).fetchone()
                conn.execute("UPDATE series_meta SET version = version + 1, rows = %s, first_ts = %s, last_ts = %s "
                             "WHERE symbol = %s AND timeframe = %s", (rows, first, last, symbol, timeframe))
        return deleted

    def _read_arrays(self, symbol: str, timeframe: str, start: int | None, end: int | None) -> Arrays:
        lo, hi = (_MIN if start is None else start), (_MAX if end is None else end)
        query = f"COPY (SELECT ts, open, high, low, close, volume FROM ohlcv WHERE {_RANGE} ORDER BY ts) " \
                "TO STDOUT (FORMAT BINARY)"
        with self._conn.cursor() as cur, cur.copy(query, (symbol, timeframe, lo, hi)) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        if not data:
            return _empty_arrays()
        return decode_copy_binary(data)

    def _snapshot(self, symbol: str, timeframe: str) -> tuple[int, Arrays]:
        with self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            version = self._version(symbol, timeframe)
            arrays = self._read_arrays(symbol, timeframe, None, None)
        return version, arrays

    def _version(self, symbol: str, timeframe: str) -> int:
        row = self._conn.execute("SELECT version FROM series_meta WHERE symbol = %s AND timeframe = %s",
                                 (symbol, timeframe)).fetchone()
        return int(row[0]) if row else 0

    def _store_id(self) -> str:
        return self._id

    def _series(self) -> list[SeriesInfo]:
        rows = self._conn.execute(
            "SELECT symbol, timeframe, first_ts, last_ts, rows FROM series_meta WHERE rows > 0").fetchall()
        return [SeriesInfo(symbol=s, timeframe=t, first=int(f), last=int(la), rows=int(n)) for s, t, f, la, n in rows]

    def _series_info(self, symbol: str, timeframe: str) -> SeriesInfo | None:
        row = self._conn.execute(
            "SELECT symbol, timeframe, first_ts, last_ts, rows FROM series_meta "
            "WHERE symbol = %s AND timeframe = %s AND rows > 0", (symbol, timeframe)).fetchone()
        if row is None:
            return None
        return SeriesInfo(symbol=row[0], timeframe=row[1], first=int(row[2]), last=int(row[3]), rows=int(row[4]))

    def _close(self) -> None:
        self._conn.close()
