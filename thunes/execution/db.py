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

import fcntl
import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError, StoreError
from thunes.core.redact import redact_url as _mask

__all__ = ["AccountLease", "Database"]

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
    # Outside holdings per base asset, for reconciliation (see reconcile.Baseline): beside the positions, so
    # that a dust write-off and its baseline share one commit.
    """CREATE TABLE IF NOT EXISTS exec_baseline (
        scope TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount TEXT NOT NULL,
        PRIMARY KEY (scope, asset)
    )""",
    # Who holds the account lease on PostgreSQL (the lock itself is an advisory lock; see AccountLease).
    """CREATE TABLE IF NOT EXISTS exec_lease (
        id INTEGER PRIMARY KEY,
        holder TEXT NOT NULL
    )""",
]


# Advisory lock keys (advisory locks are per database): the account lease ("THUNESAC") and schema creation.
_PG_LEASE_KEY = 0x5448554E45534143
_PG_SCHEMA_KEY = 0x5448554E45534348
# How long a refused process waits for the lease winner to write its name (it does so right after locking).
_HOLDER_WAIT_S = 2.0


def _await_holder(read: Callable[[], tuple[str | None, bool]]) -> str | None:
    """The lease holder's record as ``read`` returns it, read again every 10 ms until ``read`` says it is the
    lock's real holder or :data:`_HOLDER_WAIT_S` has passed (a refused process names what it found then)."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        holder, settled = read()
        if settled or time.monotonic() > deadline:
            return holder
        time.sleep(0.01)


def _parsed(holder: str | None) -> dict[str, Any]:
    """The lease holder's JSON record, or {} when absent or not (yet) whole."""
    try:
        h = json.loads(holder) if holder else {}
    except json.JSONDecodeError:
        return {}
    return h if isinstance(h, dict) else {}


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

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for messages."""
        return _mask(self.url)

    @classmethod
    def connect(cls, url: str, *, durable: bool = True) -> Database:
        return cls(url, durable=durable)

    def _create_schema(self) -> None:
        autoinc = "AUTOINCREMENT" if self.kind == "sqlite" else ""
        with self.transaction():
            if self.kind == "postgresql":
                # CREATE TABLE IF NOT EXISTS is not safe against itself on PostgreSQL: two processes creating
                # the schema at once fail on pg_type's unique index. Serialise them (released at COMMIT).
                self.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_KEY,))
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
    def transaction(self) -> Iterator[Database]:
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

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class AccountLease:
    """One trading process per execution database: the account's limits are enforced in one place.

    Risk limits (open positions, the day's loss) are held by one :class:`~thunes.execution.risk.RiskManager`;
    a second trading process on the same database would keep its own, and six processes could open six
    positions under ``max_positions = 3``. So a trader takes this lease at start and a second one is refused
    with an error naming the holder (pid, host, since when). The lease dies with its process (a SIGKILLed
    trader does not block its restart): on SQLite an ``flock`` on ``<database>.lease`` next to the file,
    on PostgreSQL ``pg_try_advisory_lock`` on a dedicated connection (released by the server when the
    connection drops). Read-only tools (``thunes risk status``) and operator commands do not take it.
    """

    def __init__(self, url: str, *, what: str = "trader") -> None:
        self.url = url
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "since_ms": int(time.time() * 1000),
                       "what": what}
        self._fd = -1
        self._conn: Any = None
        if url.startswith("sqlite://"):
            path = _sqlite_path(url)
            if path == ":memory:":
                raise ConfigError("an in-memory database belongs to one process; it needs no account lease")
            self.path: Path | None = Path(path + ".lease")
            self._acquire_file(self.path)
        elif url.startswith(("postgresql://", "postgres://")):
            self.path = None
            self._acquire_pg(url)
        else:
            raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")

    def _refused(self, holder: str | None) -> ConfigError:
        h = _parsed(holder)
        since = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(h["since_ms"] / 1000))
                 if isinstance(h.get("since_ms"), int) else "an unknown time")
        who = f"pid {h.get('pid', '?')} on {h.get('host', '?')} since {since}"
        return ConfigError(f"another {h.get('what', 'trader')} is trading this account ({_mask(self.url)}): {who}; "
                           "one trading process per account (stop it first, or use another state folder)")

    def _acquire_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # The winner writes its name right after taking the lock: give it a moment to land.
            def read() -> tuple[str | None, bool]:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                return holder, bool(_parsed(holder))

            holder = _await_holder(read)
            os.close(fd)
            raise self._refused(holder) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder).encode(), 0)
        self._fd = fd

    def _acquire_pg(self, url: str) -> None:
        try:
            import psycopg

            conn = psycopg.connect(url, autocommit=True)
        except Exception as exc:  # psycopg.OperationalError and friends
            raise StoreError(f"cannot connect to PostgreSQL at {_mask(url)}: {exc}") from exc
        try:
            lock_row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_PG_LEASE_KEY,)).fetchone()
            if not (lock_row and lock_row[0]):
                holder = _await_holder(lambda: self._pg_holder(conn))
                conn.close()
                raise self._refused(holder)
            backend_row = conn.execute("SELECT pg_backend_pid()").fetchone()
            backend = backend_row[0] if backend_row else None
            conn.execute("INSERT INTO exec_lease (id, holder) VALUES (1, %s) "
                         "ON CONFLICT (id) DO UPDATE SET holder = excluded.holder",
                         (json.dumps({**self.holder, "backend_pid": backend}),))
        except ConfigError:
            raise
        except Exception as exc:
            conn.close()
            raise StoreError(f"account lease on PostgreSQL at {_mask(url)} failed: {exc}") from exc
        self._conn = conn

    @staticmethod
    def _pg_holder(conn: Any) -> tuple[str | None, bool]:
        """The lease row, and whether it is the row of the session holding the advisory lock (the row of an
        earlier, dead holder names the wrong process; a winner may not have written its row yet)."""
        row = conn.execute("SELECT holder FROM exec_lease WHERE id = 1").fetchone()
        owner = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid = %s::oid AND objid = %s::oid"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (_PG_LEASE_KEY >> 32, _PG_LEASE_KEY & 0xFFFFFFFF)).fetchone()
        holder = row[0] if row else None
        named = _parsed(holder)
        return holder, bool(named) and (owner is None or named.get("backend_pid") == owner[0])

    @property
    def held(self) -> bool:
        return self._fd >= 0 or self._conn is not None

    def release(self) -> None:
        """Give the lease back (closing the file or the connection is what releases it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self) -> AccountLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
