"""Where studies live: an Optuna relational storage behind one URL.

Why: a study must survive an interruption (resume where it stopped) and must be shareable between
worker processes, on one machine or many. Optuna's RDB storage gives both; this module only turns the
user's URL into one Optuna can open:

* ``sqlite:///artifacts/optuna/studies.sqlite`` (the default): one file, created with its folder on
  first use; one writer at a time, so one worker.
* ``postgresql://user:pass@host/db`` (or ``postgres://``): a server several workers share. SQLAlchemy
  needs a driver in the scheme; psycopg 3 is what THUNES installs, so the scheme becomes
  ``postgresql+psycopg://`` internally. A URL that already names a driver is left alone.

Trials record a heartbeat, so a worker that dies in the middle of a trial (power cut, ``kill -9``)
leaves a trial that another run marks FAILED once the grace period has passed, instead of a trial stuck
in RUNNING forever.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url

from thunes.core.errors import ConfigError, StoreError
from thunes.core.redact import redact_url

__all__ = [
    "DEFAULT_STORAGE",
    "MEMORY",
    "StorageOptions",
    "fail_orphaned_trials",
    "is_memory",
    "is_sqlite",
    "list_studies",
    "normalize_storage_url",
    "open_storage",
]

DEFAULT_STORAGE = "sqlite:///artifacts/optuna/studies.sqlite"
# Trials in this process only: no resume, no workers, no storage round trips (~4x the trials/s of SQLite
# for a 58 000-bar SMA study; see benchmarks/bench_optimize.py).
MEMORY = "memory"


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageOptions:
    """Heartbeat settings: a RUNNING trial silent for ``grace_period_s`` is failed by the next run."""

    heartbeat_interval_s: int = 30
    grace_period_s: int = 120


def normalize_storage_url(url: str) -> str:
    """The SQLAlchemy URL for a user's storage URL (adds the psycopg driver to plain PostgreSQL URLs)."""
    url = url.strip()
    if not url:
        raise ConfigError("optimize storage URL is empty; e.g. sqlite:///artifacts/optuna/studies.sqlite")
    if url == MEMORY:
        return url
    if re.match(r"^(postgresql|postgres)://", url):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:", "postgresql+", "mysql")):
        return url
    raise ConfigError(
        f"unsupported optimize storage URL {redact_url(url)!r}: use sqlite:///PATH, "
        f"postgresql://user@host/db or {MEMORY!r}"
    )


def is_sqlite(url: str) -> bool:
    return url.strip().startswith("sqlite:")


def is_memory(url: str) -> bool:
    return url.strip() == MEMORY


def _ensure_sqlite_folder(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def open_storage(url: str, *, options: StorageOptions | None = None) -> optuna.storages.BaseStorage:
    """Open (creating tables and, for SQLite, the folder) the storage at ``url``; ``memory`` gives a new
    empty in-process storage."""
    options = options or StorageOptions()
    sa_url = normalize_storage_url(url)
    if is_memory(sa_url):
        return optuna.storages.InMemoryStorage()
    engine_kwargs: dict = {"pool_pre_ping": True}
    if is_sqlite(sa_url):
        _ensure_sqlite_folder(sa_url)
        database = make_url(sa_url).database
        if database and database != ":memory:":
            engine_kwargs = {"creator": _sqlite_creator(str(Path(database).expanduser()))}
        else:
            engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():
            # Optuna flags heartbeats as "experimental"; they are what makes crashed trials recoverable.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb(sa_url, engine_kwargs, options)
    except Exception as exc:  # SQLAlchemy/driver errors: unreachable server, bad credentials, bad path
        raise StoreError(f"cannot open optimize storage {redact_url(url)}: {exc}") from exc


def _sqlite_creator(path: str):  # noqa: ANN202 - a DB-API connection factory
    import sqlite3

    def connect() -> sqlite3.Connection:
        # timeout: wait for a concurrent writer instead of failing with "database is locked".
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        # Optuna commits ~14 times per trial; with the default rollback journal each commit is an fsync,
        # which made the storage, not the backtest, the cost of a trial. WAL with synchronous=NORMAL
        # syncs at checkpoints only: a power cut may lose the last trials, never corrupts the file, and
        # a study resumes anyway.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


def _rdb(sa_url: str, engine_kwargs: dict, options: StorageOptions) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(
        sa_url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=options.heartbeat_interval_s,
        grace_period=options.grace_period_s,
    )


def fail_orphaned_trials(study: optuna.Study, grace_period_s: float) -> list[int]:
    """Fail the RUNNING trials that never recorded a heartbeat and started over ``grace_period_s`` ago;
    returns their numbers.

    Why: Optuna creates a trial, then starts its heartbeat thread, and fails stale trials only by their
    last heartbeat. A process killed between the two (the kill -9 test found it) leaves a trial with no
    heartbeat at all, which Optuna would keep RUNNING for ever. ``datetime_start`` is the creating
    machine's clock, so the grace period also absorbs clock differences between machines.
    """
    from datetime import datetime, timedelta

    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    backend = getattr(study._storage, "_backend", study._storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return []
    cutoff = datetime.now() - timedelta(seconds=grace_period_s)
    candidates = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                  if t.datetime_start is not None and t.datetime_start.replace(tzinfo=None) < cutoff]
    if not candidates:
        return []
    session = backend.scoped_session()
    try:
        silent = [t for t in candidates
                  if models.TrialHeartbeatModel.where_trial_id(t._trial_id, session) is None]
    finally:
        session.close()
    failed = []
    for t in silent:
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            pass
    return failed


def list_studies(url: str) -> list[optuna.study.StudySummary]:
    """Summaries of every study in the storage (name, directions, trial count, best value)."""
    storage = open_storage(url)
    return list(optuna.get_all_study_summaries(storage, include_best_trial=False))
