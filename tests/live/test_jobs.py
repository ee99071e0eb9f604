"""Scheduled jobs with an injected clock: when they run, what a downtime does, failures, persistence."""

from __future__ import annotations

import sqlite3

import pytest

from thunes.core.clock import SimulatedClock
from thunes.core.events import EventBus, JobRan
from thunes.live.jobs import JobScheduler, backup_sqlite, daily_at, interval

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000


def test_an_interval_job_runs_once_per_period_on_the_injected_clock():
    clock = SimulatedClock(T0)
    runs: list[int] = []
    jobs = JobScheduler(clock)
    jobs.add("reconcile", interval(5), lambda: runs.append(clock.now_ms()) or "ok", grace_s=60)
    for minute in range(0, 21):
        clock.set_ms(T0 + minute * MIN)
        jobs.tick()
    assert runs == [T0 + 5 * MIN, T0 + 10 * MIN, T0 + 15 * MIN, T0 + 20 * MIN]


def test_runs_missed_within_the_grace_time_are_coalesced_into_one():
    """Down for 3 periods but back within the grace time: the job runs once, then on schedule again."""
    clock = SimulatedClock(T0)
    runs: list[int] = []
    jobs = JobScheduler(clock)
    jobs.add("reconcile", interval(5), lambda: runs.append(clock.now_ms()) or "", grace_s=3600)
    clock.set_ms(T0 + 17 * MIN)
    events = jobs.tick()
    assert runs == [T0 + 17 * MIN]
    assert [(e.outcome, e.scheduled_ms) for e in events] == [("ok", T0 + 5 * MIN)]
    assert jobs.jobs()[0].next_run_ms == T0 + 20 * MIN


def test_a_run_later_than_the_grace_time_is_recorded_missed_and_not_run_late():
    clock = SimulatedClock(T0)
    runs: list[int] = []
    bus = EventBus()
    seen: list[JobRan] = []
    bus.subscribe(seen.append, JobRan)
    jobs = JobScheduler(clock, bus=bus)
    jobs.add("backup", daily_at("02:00"), lambda: runs.append(clock.now_ms()) or "", grace_s=3600)
    clock.set_ms(T0 + 10 * 60 * MIN)  # 10:00, eight hours after the 02:00 run
    jobs.tick()
    assert runs == []
    assert [(e.job, e.outcome) for e in seen] == [("backup", "missed")]
    record = jobs.jobs()[0]
    assert record.missed == 1 and record.next_run_ms == T0 + (24 + 2) * 60 * MIN


def test_a_failing_job_is_reported_and_the_others_still_run():
    clock = SimulatedClock(T0)
    jobs = JobScheduler(clock)
    jobs.add("broken", interval(1), lambda: 1 / 0, grace_s=60)
    ok: list[int] = []
    jobs.add("fine", interval(1), lambda: ok.append(1) or "done", grace_s=60)
    clock.set_ms(T0 + MIN)
    events = jobs.tick()
    assert [(e.job, e.outcome) for e in events] == [("broken", "failed"), ("fine", "ok")]
    assert "ZeroDivisionError" in events[0].detail
    assert ok == [1] and jobs.jobs()[0].failures == 1


def test_the_next_run_survives_a_restart_so_a_downtime_is_seen(tmp_path):
    state = tmp_path / "jobs.json"
    clock = SimulatedClock(T0)
    first = JobScheduler(clock, state_path=state)
    first.add("summary", daily_at("00:05"), lambda: "", grace_s=3600)
    clock.set_ms(T0 + 5 * MIN)
    first.tick()  # ran at 00:05; next is tomorrow 00:05, saved
    clock.set_ms(T0 + (24 + 3) * 60 * MIN)  # the process was down over the next 00:05 and comes back at 03:00
    again = JobScheduler(clock, state_path=state)
    again.add("summary", daily_at("00:05"), lambda: "", grace_s=3600)
    events = again.tick()
    assert [e.outcome for e in events] == ["missed"]
    assert again.jobs()[0].runs == 1 and again.jobs()[0].missed == 1


def test_backup_copies_a_live_sqlite_database_and_keeps_the_newest(tmp_path):
    src = tmp_path / "execution.sqlite"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (42)")
    con.commit()  # the connection stays open, as the bot's does
    for day in range(4):
        backup_sqlite(src, tmp_path / "backups", keep=2, stamp_ms=T0 + day * 24 * 60 * MIN)
    copies = sorted((tmp_path / "backups").iterdir())
    assert [c.name for c in copies] == ["execution-20240103-000000.sqlite", "execution-20240104-000000.sqlite"]
    assert sqlite3.connect(copies[-1]).execute("SELECT x FROM t").fetchall() == [(42,)]
    con.close()


def test_a_job_name_twice_is_refused():
    from thunes.core.errors import ConfigError

    jobs = JobScheduler(SimulatedClock(T0))
    jobs.add("x", interval(1), lambda: "")
    with pytest.raises(ConfigError, match="already scheduled"):
        jobs.add("x", interval(1), lambda: "")


def test_the_event_log_rotates_and_is_read_back_whole_in_order(tmp_path):
    from thunes.core.events import CandleClosed
    from thunes.live.subscribers import EventLog, read_events, rotated_logs

    log = EventLog(tmp_path / "events.jsonl")
    for day in range(4):
        for i in range(3):
            log(CandleClosed(ts_ms=day * 10 + i, symbol="BTC/USDT", timeframe="5m", bar_ts=day * 10 + i, close=1.0))
        log.rotate(f"2024010{day + 1}-020000", keep=2)
    log(CandleClosed(ts_ms=99, symbol="BTC/USDT", timeframe="5m", bar_ts=99, close=1.0))
    assert log.rotate("20240105-020000", keep=2) is not None
    assert log.rotate("20240105-020001", keep=2) is None  # nothing new: no empty file
    log.close()
    assert [p.name for p in rotated_logs(tmp_path / "events.jsonl")] == [
        "events-20240104-020000.jsonl", "events-20240105-020000.jsonl"]
    assert [e.bar_ts for e in read_events(tmp_path / "events.jsonl")] == [30, 31, 32, 99]
