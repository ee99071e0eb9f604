"""The account lease: one trading process per execution database, and a refusal names the real holder."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from thunes.core.errors import ConfigError
from thunes.execution import Database
from thunes.execution.db import _PG_LEASE_KEY, AccountLease


def _refusal(url: str) -> str:
    with pytest.raises(ConfigError) as refused:
        AccountLease(url)
    return str(refused.value)


def test_a_second_lease_on_a_sqlite_database_is_refused_and_the_first_one_s_release_frees_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'execution.sqlite'}"
    first = AccountLease(url, what="bot")
    message = _refusal(url)
    assert "another bot is trading this account" in message and f"pid {os.getpid()} on " in message
    first.release()
    with AccountLease(url) as second:
        assert second.held


def test_a_refusal_waits_for_a_sqlite_winner_still_writing_its_name(tmp_path):
    """The winner locks, then writes: a loser reading in between must not report 'pid ?'."""
    import fcntl

    url = f"sqlite:///{tmp_path / 'execution.sqlite'}"
    path = tmp_path / "execution.sqlite.lease"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, nothing written yet
    late = json.dumps({"pid": 4242, "host": "elsewhere", "since_ms": 0, "what": "trader"}).encode()
    writer = threading.Timer(0.3, lambda: os.pwrite(fd, late, 0))
    writer.start()
    try:
        assert "pid 4242 on elsewhere" in _refusal(url)
    finally:
        writer.join()
        os.close(fd)


@pytest.mark.postgres
def test_a_postgresql_refusal_names_the_session_holding_the_lock_not_an_earlier_dead_holder(postgres_url):
    import psycopg

    Database.connect(postgres_url).close()  # the schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # A holder that died left its row; the new winner has the lock but has not written its row yet.
        conn.execute("INSERT INTO exec_lease (id, holder) VALUES (1, %s)",
                     (json.dumps({"pid": 1, "host": "dead", "since_ms": 0, "backend_pid": -1}),))
        winner = psycopg.connect(postgres_url, autocommit=True)
        try:
            assert winner.execute("SELECT pg_try_advisory_lock(%s)", (_PG_LEASE_KEY,)).fetchone()[0]
            backend = winner.execute("SELECT pg_backend_pid()").fetchone()[0]
            row = json.dumps({"pid": 777, "host": "winner", "since_ms": 0, "backend_pid": backend})
            writer = threading.Timer(0.3, lambda: winner.execute(
                "UPDATE exec_lease SET holder = %s WHERE id = 1", (row,)))
            writer.start()
            started = time.monotonic()
            message = _refusal(postgres_url)
            writer.join()
            assert "pid 777 on winner" in message, message
            assert time.monotonic() - started < 2.0
        finally:
            winner.close()
    # The lock went with the winner's connection: the next process takes the lease and writes its own row.
    with AccountLease(postgres_url) as lease, Database.connect(postgres_url) as db:
        assert lease.held
        holder = json.loads(db.query_one("SELECT holder FROM exec_lease WHERE id = 1")[0])
        assert holder["pid"] == os.getpid()
