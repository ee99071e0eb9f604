"""The background task registry: progress, results, one-line errors, cancel (queued and running)."""

from __future__ import annotations

import threading

import pytest

from thunes.core.errors import ConfigError
from thunes.services.tasks import TaskNotFound, TaskRegistry, TaskState


def test_a_task_reports_progress_and_its_result():
    reg = TaskRegistry()
    gate = threading.Event()

    def body(ctx):
        ctx.update(0.5, "half way")
        gate.wait(10)
        return {"answer": 42}

    info = reg.submit("demo", body, {"x": 1})
    assert info.state is TaskState.QUEUED and info.params == {"x": 1}
    while reg.get(info.id).message != "half way":
        pass
    assert reg.get(info.id).progress == 0.5 and reg.get(info.id).state is TaskState.RUNNING
    gate.set()
    done = reg.wait(info.id, 10)
    assert (done.state, done.progress, done.result) == (TaskState.DONE, 1.0, {"answer": 42})
    reg.close()


def test_errors_are_one_line_and_cancel_stops_running_and_queued_tasks():
    reg = TaskRegistry(max_workers=1)
    failed = reg.submit("bad", lambda ctx: (_ for _ in ()).throw(ConfigError("no such strategy\ndetails")), {})
    assert reg.wait(failed.id).error == "no such strategy" and reg.get(failed.id).state is TaskState.FAILED

    started = threading.Event()

    def loop(ctx):
        started.set()
        while True:
            ctx.check_cancel()

    running = reg.submit("loop", loop, {})
    queued = reg.submit("never", lambda ctx: {"ran": True}, {})
    started.wait(10)
    reg.cancel(queued.id)
    reg.cancel(running.id)
    assert reg.wait(running.id).state is TaskState.CANCELLED
    q = reg.wait(queued.id)
    assert q.state is TaskState.CANCELLED and q.message == "cancelled before it started" and q.result is None
    assert reg.cancel(failed.id).state is TaskState.FAILED  # a finished task stays as it was
    with pytest.raises(TaskNotFound):
        reg.get("nope")
    reg.close()
