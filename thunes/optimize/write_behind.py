"""A study in a SQLite file runs in memory and is written to the file in batches of finished trials."""

from __future__ import annotations

import time

import optuna

from thunes.core.errors import StoreError

__all__ = ["WriteBehind", "writes_behind"]

class WriteBehind:
    """A SQLite study run in memory and copied to its file in batches (finished trials only).

    Why: Optuna's relational storage issues about 57 SQL statements per trial (creating it, every
    ``suggest``, the sampler reading the trials back, the heartbeat, the result), which made a SQLite
    study several times slower than the same study in memory, and the backtest a small part of a
    trial. SQLite allows one writer, so a study in a SQLite file has one worker: this process. The
    trials then run against an in-memory copy of the study (same trial numbers, same sampler), and every
    ``flush_every_s`` seconds, and when the run ends or is interrupted, the finished trials are appended
    to the file, one transaction each.

    What it changes: a crash (power cut, ``kill -9``) loses at most the last ``flush_every_s`` seconds of
    trials, which the resumed study runs again; a trial is never left RUNNING in the file, so no
    heartbeat is needed. Before each write it checks that nobody else added trials to the study meanwhile
    (a second process on the same file) and stops with an error instead of mixing trial numbers.
    """

    def __init__(self, study: optuna.Study, *, flush_every_s: float = 1.0) -> None:
        self.target = study
        self.flush_every_s = flush_every_s
        mirror = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=study.sampler,
                                     directions=study.directions, study_name=study.study_name)
        for key, value in study.user_attrs.items():
            mirror.set_user_attr(key, value)
        for key, value in study._storage.get_study_system_attrs(study._study_id).items():  # e.g. NSGA-II's
            mirror._storage.set_study_system_attr(mirror._study_id, key, value)
        existing = study.get_trials(deepcopy=False)
        mirror.add_trials(existing)  # numbers 0..n-1, as in the file
        self.mirror = mirror
        self.flushed = len(existing)  # trials [0, flushed) are in the file
        self._last = time.monotonic()
        self.writes = 0

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        pending = []
        for t in self.mirror.get_trials(deepcopy=False)[self.flushed:]:
            if not t.state.is_finished():
                break  # keep the order: a later trial waits for this one
            pending.append(t)
        if not pending:
            return
        in_file = len(self.target._storage.get_all_trials(self.target._study_id, deepcopy=False))
        if in_file != self.flushed:
            raise StoreError(
                f"study {self.target.study_name!r}: another process added {in_file - self.flushed} "
                f"trial(s) to the SQLite file while this one ran; SQLite studies take one worker "
                f"(use PostgreSQL with --workers N to share a study); this run's last {len(pending)} "
                f"trial(s) were not saved"
            )
        self.target.add_trials(pending)
        self.flushed += len(pending)
        self.writes += 1


def writes_behind(study: optuna.Study) -> bool:
    """True for a study in a SQLite file (one writer: see :class:`WriteBehind`)."""
    backend = getattr(study._storage, "_backend", study._storage)
    return (isinstance(backend, optuna.storages.RDBStorage)
            and backend.engine.url.get_backend_name() == "sqlite")
