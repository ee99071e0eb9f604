"""Scheduled jobs of the bot, on APScheduler's triggers, run by the bot's own thread.

APScheduler computes *when* (``IntervalTrigger``, ``CronTrigger`` in UTC); :class:`JobScheduler` decides
*whether* and runs the job from :meth:`JobScheduler.tick`, which the bot loop calls between two candles.
Jobs therefore never run concurrently with an order (the ccxt client and SQLite connections stay on one
thread), and time comes from the injected clock: market time in a replay (a replayed day has its daily
summary), wall time live, a hand-moved clock in the tests.

Missed runs (the documented rule; the same as APScheduler's ``coalesce=True`` + ``misfire_grace_time``):

* A job whose scheduled time has passed by at most ``grace_s`` runs **once**, however many runs fell in
  the gap (coalesced): a bot down for three reconcile periods reconciles once when it comes back.
* A run late by more than ``grace_s`` is **not** run late; it is recorded as ``missed`` (one
  :class:`~thunes.core.events.JobRan` with ``outcome="missed"`` for the whole gap) and the job waits for
  its next scheduled time. A daily backup missed by a day-long outage is taken the next night, not at
  a random hour.
* The next run time of every job is saved in ``jobs.json`` after each tick that changed it, so a restart
  knows what it missed while it was down. A job new to the file is scheduled from now.

Every run publishes :class:`~thunes.core.events.JobRan` (``ok`` / ``failed`` with the error, its duration);
a failing job is logged and counted, never raised into the trading loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thunes.core.clock import Clock
from thunes.core.errors import ConfigError
from thunes.core.events import EventBus, JobRan
from thunes.execution.risk import write_risk_state as write_json_atomic

__all__ = ["JobRecord", "JobScheduler", "backup_sqlite", "crontab", "daily_at", "interval"]

log = logging.getLogger(__name__)


def interval(minutes: float) -> Any:
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=max(1, int(minutes * 60)), start_date=datetime(2000, 1, 1, tzinfo=UTC),
                           timezone=UTC)


def daily_at(hhmm: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    h, _, m = hhmm.partition(":")
    return CronTrigger(hour=int(h), minute=int(m), timezone=UTC)


def crontab(expr: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(expr, timezone=UTC)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


@dataclass(slots=True, kw_only=True)
class JobRecord:
    """What ``thunes bot jobs`` shows of one job."""

    name: str
    schedule: str
    next_run_ms: int | None = None
    last_run_ms: int | None = None
    last_outcome: str | None = None
    last_detail: str = ""
    runs: int = 0
    failures: int = 0
    missed: int = 0


@dataclass(slots=True)
class _Job:
    record: JobRecord
    trigger: Any
    func: Callable[[], str]
    grace_s: float


class JobScheduler:
    """Tick-driven job runner (see the module docstring for the missed-run rule)."""

    def __init__(self, clock: Clock, *, bus: EventBus | None = None, state_path: Path | None = None) -> None:
        self.clock = clock
        self.bus = bus
        self.state_path = Path(state_path) if state_path is not None else None
        self._jobs: dict[str, _Job] = {}
        self._saved: dict[str, Any] = {}
        if self.state_path is not None and self.state_path.exists():
            try:
                self._saved = json.loads(self.state_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ConfigError(f"job state {self.state_path} is unreadable ({exc}); move it away") from exc

    def add(self, name: str, trigger: Any, func: Callable[[], str], *, grace_s: float = 3600.0) -> JobRecord:
        if name in self._jobs:
            raise ConfigError(f"job {name!r} is already scheduled")
        now = self.clock.now_ms()
        saved = self._saved.get(name, {})
        record = JobRecord(name=name, schedule=str(trigger))
        for k in ("last_run_ms", "last_outcome", "last_detail", "runs", "failures", "missed"):
            if k in saved:
                setattr(record, k, saved[k])
        record.next_run_ms = saved.get("next_run_ms") or _ms(trigger.get_next_fire_time(None, _dt(now + 1)))
        self._jobs[name] = _Job(record, trigger, func, float(grace_s))
        return record

    def jobs(self) -> list[JobRecord]:
        return [JobRecord(**asdict(j.record)) for j in self._jobs.values()]

    def _next_after(self, job: _Job, after_ms: int) -> int | None:
        """The first fire time strictly after ``after_ms``."""
        return _ms(job.trigger.get_next_fire_time(None, _dt(after_ms + 1)))

    def tick(self) -> list[JobRan]:
        """Run the jobs that are due now; returns the events published."""
        events: list[JobRan] = []
        changed = False
        for job in self._jobs.values():
            r = job.record
            now = self.clock.now_ms()
            if r.next_run_ms is None or r.next_run_ms > now:
                continue
            changed = True
            scheduled = r.next_run_ms
            if (now - scheduled) / 1000 > job.grace_s:
                r.missed += 1
                late = f"late by {(now - scheduled) / 1000:.0f}s > grace {job.grace_s:.0f}s"
                r.last_outcome, r.last_detail = "missed", late
                event = JobRan(ts_ms=now, job=r.name, outcome="missed", detail=r.last_detail, scheduled_ms=scheduled)
            else:
                started = time.perf_counter()
                try:
                    detail = job.func() or ""
                    outcome = "ok"
                except Exception as exc:  # noqa: BLE001 - a failing job is reported, never kills trading
                    log.exception("job %s failed", r.name)
                    detail, outcome = f"{type(exc).__name__}: {exc}", "failed"
                    r.failures += 1
                r.runs += 1
                r.last_run_ms, r.last_outcome, r.last_detail = now, outcome, detail
                event = JobRan(ts_ms=now, job=r.name, outcome=outcome, detail=detail,
                               duration_s=round(time.perf_counter() - started, 6), scheduled_ms=scheduled)
            # Coalesce: whatever number of runs fell before now, the next one is the first after now.
            r.next_run_ms = self._next_after(job, max(now, scheduled))
            events.append(event)
            if self.bus is not None:
                self.bus.publish(event)
        if changed:
            self.save()
        return events

    def save(self) -> None:
        if self.state_path is None:
            return
        write_json_atomic(self.state_path, {name: asdict(j.record) for name, j in self._jobs.items()})


def backup_sqlite(source: Path, folder: Path, *, keep: int, stamp_ms: int) -> Path:
    """A consistent copy of a live SQLite database (the online backup API), keeping the ``keep`` newest."""
    if not source.exists():
        raise ConfigError(f"nothing to back up: {source} does not exist")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt(stamp_ms).strftime("%Y%m%d-%H%M%S")
    target = folder / f"{source.stem}-{stamp}{source.suffix}"
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    copies = sorted(folder.glob(f"{source.stem}-*{source.suffix}"))
    for old in copies[:-keep]:
        old.unlink()
    return target
