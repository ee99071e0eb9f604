"""The database layer under the order journal and the position tracker: SQLite by default, PostgreSQL option.

URLs follow the candle store's scheme: ``sqlite:///relative/path.sqlite``, ``sqlite:////absolute/path``,
``sqlite:///:memory:`` or ``postgresql://user@host:port/db``. One :class:`Database` wraps one connection
behind a re-entrant lock (the journal is written by the trading loop, read by API handlers), and
:meth:`Database.transaction` groups the journal update and the position update of a fill into one
atomic commit, which is what makes "apply each fill exactly once" hold across crashes.

SQLite runs in WAL mode with ``synchronous=FULL``: a committed journal row survives a process kill and a
power cut. Money is stored as TEXT holding the exact decimal string (identical on both engines; nothing
ever sums money in SQL). SQL is written with ``?`` placeholders and translated for psycopg.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from thunes.core.errors import ConfigError, StoreError
from thunes.core.redact import redact_url as _mask

__all__ = ["Database"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS exec_orders (
        client_order_id TEXT PRIMARY KEY,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        order_type TEXT NOT NULL,
        qty TEXT NOT NULL,
        price TEXT,
        ref_price TEXT NOT NULL,
        status TEXT NOT NULL,
        exchange_order_id TEXT,
        filled_qty TEXT NOT NULL,
        cum_quote TEXT NOT NULL,
        fee TEXT NOT NULL,
        strategy TEXT NOT NULL,
        reason TEXT NOT NULL,
        bar_ts BIGINT NOT NULL,
        is_exit INTEGER NOT NULL,
        error TEXT,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS exec_orders_status ON exec_orders (status)",
    """CREATE TABLE IF NOT EXISTS exec_positions (
        symbol TEXT PRIMARY KEY,
        qty TEXT NOT NULL,
        cost TEXT NOT NULL,
        realised_pnl TEXT NOT NULL,
        fees TEXT NOT NULL,
        opened_ms BIGINT,
        updated_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS exec_pnl (
        id INTEGER PRIMARY KEY {autoinc},
        ts_ms BIGINT NOT NULL,
        symbol TEXT NOT NULL,
        client_order_id TEXT NOT NULL,
        pnl TEXT NOT NULL,
        closed INTEGER NOT NULL,
        trade_pnl TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS exec_pnl_ts ON exec_pnl (ts_ms)",
]


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://"):]
    if not rest.startswith("/"):
        raise ConfigError(f"SQLite URL {url!r} must look like sqlite:///path (three slashes)")
    path = rest[1:]
    if path in (":memory:", ""):
        return ":memory:"
    return path


class Database:
    """One connection (SQLite or PostgreSQL) behind a lock, with the execution schema created on open."""

    def __init__(self, url: str, *, durable: bool = True) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._depth = 0
        if url.startswith("sqlite://"):
            self.kind = "sqlite"
            path = _sqlite_path(url)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._conn: Any = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                                  timeout=30.0)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
        elif url.startswith(("postgresql://", "postgres://")):
            self.kind = "postgresql"
            try:
                import psycopg

                self._conn = psycopg.connect(url, autocommit=True)
            except Exception as exc:  # psycopg.OperationalError and friends
                raise StoreError(f"cannot connect to PostgreSQL at {_mask(url)}: {exc}") from exc
        else:
            raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
        self._create_schema()

    @classmethod
    def connect(cls, url: str, *, durable: bool = True) -> "Database":
        return cls(url, durable=durable)

    def _create_schema(self) -> None:
        autoinc = "AUTOINCREMENT" if self.kind == "sqlite" else ""
        with self.transaction():
            for stmt in _SCHEMA:
                if self.kind == "postgresql":
                    stmt = stmt.replace("INTEGER PRIMARY KEY {autoinc}", "BIGSERIAL PRIMARY KEY")
                self.execute(stmt.replace("{autoinc}", autoinc))

    def _sql(self, sql: str) -> str:
        return sql if self.kind == "sqlite" else re.sub(r"\?", "%s", sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; returns the rows (empty for writes)."""
        with self._lock:
            try:
                cur = self._conn.execute(self._sql(sql), tuple(params))
                rows = cur.fetchall() if cur.description is not None else []
                return [tuple(r) for r in rows]
            except (sqlite3.Error, Exception) as exc:
                if isinstance(exc, (StoreError, ConfigError)):
                    raise
                raise StoreError(f"database error on {sql.split()[0]} ({self.kind}): {exc}") from exc

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        """Atomic block; nested calls join the outer transaction. Commits on exit, rolls back on error."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

