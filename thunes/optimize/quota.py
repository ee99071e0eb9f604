"""Run a study's trials in this process until it has completed its share (its quota)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from thunes.optimize.evaluator import TrialEvaluator
from thunes.optimize.write_behind import WriteBehind, writes_behind

__all__ = ["optimize_quota"]

def optimize_quota(
    study: optuna.Study,
    evaluator: TrialEvaluator,
    quota: int,
    *,
    on_trial: Callable[[int], None] | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    flush_every_s: float = 1.0,
) -> int:
    """Run trials until this process has completed ``quota`` of them; returns how many it completed.
    ``on_trial(completed_so_far)`` is called after every trial.

    Pruned (invalid) trials do not count, but at most ``3 × quota + 10`` trials are attempted so a space
    that is mostly invalid cannot loop for ever. A study in a SQLite file runs in memory and is written
    to the file every ``flush_every_s`` seconds and at the end (:class:`WriteBehind`); the callbacks
    then see the in-memory study."""
    done = 0
    limit = 3 * quota + 10
    behind = WriteBehind(study, flush_every_s=flush_every_s) if writes_behind(study) else None
    running = behind.mirror if behind is not None else study

    def count(_: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal done
        done += trial.state == TrialState.COMPLETE
        if behind is not None:
            behind.maybe_flush()
        if on_trial is not None:
            on_trial(done)
        if done >= quota:
            running.stop()

    quiet = _QuietInterrupt()
    # A logger's filters see only the records logged on it: Optuna reports trials from its _optimize module.
    loggers = [logging.getLogger(name) for name in ("optuna.study._optimize", "optuna")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        running.optimize(evaluator, n_trials=limit, callbacks=[count, *callbacks], catch=())
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
        if behind is not None:
            behind.flush()  # on Ctrl-C too: the finished trials are kept and the next run resumes them
    return done


class _QuietInterrupt(logging.Filter):
    """Drop Optuna's report of a trial stopped by Ctrl-C (a warning with the whole traceback, then "failed
    with value None"): the trial is recorded as failed in the study, and the interrupt itself reaches
    the caller, which says in one line what was kept."""

    def __init__(self) -> None:
        super().__init__()
        self._interrupted: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if isinstance(exc, KeyboardInterrupt) or "KeyboardInterrupt" in message:
            self._interrupted.add(message.split(" failed", 1)[0])
            return False
        return message.split(" failed", 1)[0] not in self._interrupted
