"""Shared fixtures: real sample data (or synthetic stand-ins) and a real PostgreSQL server.

PostgreSQL comes from Debian's package (``scripts/install-system-deps.sh``, run by ``make test``); the
harness runs its own cluster on a private port and data dir, as the ``postgres`` user, and removes it at
the end. Without the binaries the PostgreSQL tests are skipped locally and fail under CI (``CI=true``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from thunes.data.samples import find_sample_dir, load_sample_candles

SAMPLE_DIR = find_sample_dir()

# Commands log JSON lines under settings.logging.dir (default ./logs): keep the tests' logs out of the
# working tree. A test that checks logging sets its own directory.
os.environ.setdefault("THUNES_LOGGING__DIR", tempfile.mkdtemp(prefix="thunes-test-logs-"))


def pytest_report_header(config):  # noqa: ANN001, ANN201
    if SAMPLE_DIR is None:
        return "sample data: ../shared/data not found -> tests use synthetic candles"
    return f"sample data: real files from {SAMPLE_DIR}"


@pytest.fixture(scope="session")
def sample_dir() -> Path | None:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def btc_1h():
    """BTC/USDT 1h candles: the real file when present, synthetic otherwise (``.real`` says which)."""
    return load_sample_candles("BTC/USDT", "1h")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="thunes-pg-"))
        self.datadir = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._counter = 0

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-l", str(self.root / "log"),
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=200", "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its ``postgresql://`` URL."""
        import psycopg

        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server():
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries missing in CI: scripts/install-system-deps.sh should install them")
        pytest.skip("PostgreSQL not installed (run `make system-deps`)")
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a new empty database on the harness's PostgreSQL server."""
    return postgres_server.create_database()
