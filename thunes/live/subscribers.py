"""Bus subscribers that persist events: the event log (JSON lines) and the audit trail.

* :class:`EventLog` appends every event to ``events.jsonl`` in the bot's state folder (flushed per
  event; a crash loses at most the line being written, and a torn last line is skipped when read).
  ``thunes bot status`` / the services read it when the bot is not running, and tests check
  "no candle skipped" against it. The daily backup job rotates it (``events-<time>.jsonl``, the
  ``jobs.events_keep`` newest kept); :func:`read_events` reads the rotated files first.
* :class:`AuditSubscriber` appends the events the safety core does not already audit (bot state, jobs,
  feed health, reconcile mismatches, pause denials, daily summaries, decisions other than hold) to the
  hash-chained :class:`~thunes.execution.audit.AuditTrail` as ``event.<Kind>`` records, so one trail tells
  the whole story of a run. Orders, fills, risk decisions and kill-switch changes are already written
  by the executor and the risk manager themselves, in the same trail.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thunes.core.events import (
    BotStateChanged,
    DailySummary,
    DecisionAction,
    Event,
    FeedReconnected,
    FeedStale,
    JobRan,
    ReconcileMismatch,
    RiskDenied,
    SignalDecided,
    event_from_json,
)

__all__ = ["AUDITED_EVENTS", "AuditSubscriber", "EventLog", "read_events", "rotated_logs"]

AUDITED_EVENTS: tuple[type[Event], ...] = (BotStateChanged, JobRan, FeedReconnected, FeedStale, ReconcileMismatch,
                                           DailySummary, RiskDenied, SignalDecided)


class EventLog:
    """Append-only JSON-lines file of events (subscribe it to the bus: ``bus.subscribe(log)``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.to_json(), separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def rotate(self, stamp: str, *, keep: int) -> Path | None:
        """Move the current file to ``events-<stamp>.jsonl`` and start a new one; keep the ``keep`` newest
        rotated files (retention). Returns the rotated file (None when the log was empty)."""
        with self._lock:
            self._fh.flush()
            if self.path.stat().st_size == 0:
                return None
            self._fh.close()
            target = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
            n = 1
            while target.exists():
                n += 1
                target = self.path.with_name(f"{self.path.stem}-{stamp}.{n}{self.path.suffix}")
            os.replace(self.path, target)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        for old in rotated_logs(self.path)[:-keep]:
            old.unlink()
        return target

    def sync(self) -> None:
        with self._lock:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


def rotated_logs(path: str | Path) -> list[Path]:
    """The rotated files of an event log, oldest first (``events-<YYYYmmdd-HHMMSS>[.n].jsonl``)."""
    p = Path(path)
    return sorted(p.parent.glob(f"{p.stem}-*{p.suffix}"))


def read_events(path: str | Path, *, kinds: set[str] | None = None) -> Iterator[Event]:
    """Events of an event log and its rotated files, in order; a torn line (a crash mid-write) is skipped."""
    for p in [*rotated_logs(path), Path(path)]:
        if not p.exists():
            continue
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if kinds is None or data.get("kind") in kinds:
                    yield event_from_json(data)


class AuditSubscriber:
    """Writes the events of :data:`AUDITED_EVENTS` to the audit trail (holds are not worth a record)."""

    def __init__(self, audit: Any) -> None:
        self.audit = audit

    def __call__(self, event: Event) -> None:
        if not isinstance(event, AUDITED_EVENTS):
            return
        if isinstance(event, SignalDecided) and event.action in (DecisionAction.HOLD, DecisionAction.WARMUP):
            return
        if isinstance(event, RiskDenied) and event.rule != "paused":
            return  # the risk manager audits its own denials
        payload = event.to_json()
        payload.pop("kind")
        self.audit.append(f"event.{event.kind}", payload)
