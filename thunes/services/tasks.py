"""Background tasks (a backtest, a study, a training run) with progress and cancel, for remote surfaces.

A surface submits a task and returns at once; the user polls :meth:`TaskRegistry.get` (or lists them)
and may cancel it. A task body is a plain function ``body(ctx) -> dict`` that reports progress with
``ctx.update(fraction, message)`` and checks ``ctx.check_cancel()`` (raises :class:`TaskCancelled`)
where stopping is safe. Bodies run on a small thread pool (``max_workers``, default 1: research is
CPU-bound and the machine also trades); a body that cannot check for cancellation often (training) runs
its work in a child process that :meth:`TaskContext.run_process` terminates on cancel.

States: ``queued -> running -> done | failed | cancelled``; a queued task cancelled never starts. Errors
are kept as one line (a :class:`~thunes.core.errors.ThunesError` message, else ``Type: message``).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from thunes.core.errors import ConfigError, ThunesError

__all__ = ["TaskCancelled", "TaskContext", "TaskInfo", "TaskNotFound", "TaskRegistry", "TaskState"]

log = logging.getLogger(__name__)


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_FINAL = {TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED}


class TaskCancelled(ThunesError):
    """The task was cancelled at the user's request."""


class TaskNotFound(ConfigError):
    """No task has this id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    id: str
    kind: str
    params: dict[str, Any]
    state: TaskState
    progress: float  # 0..1
    message: str
    created_ms: int
    started_ms: int | None = None
    finished_ms: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested: bool = False


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class TaskContext:
    """Handed to a task body: progress reports and the cancel flag."""

    task_id: str
    _registry: TaskRegistry
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise TaskCancelled("cancelled")

    def update(self, fraction: float, message: str = "") -> None:
        self._registry._update(self.task_id, progress=min(1.0, max(0.0, float(fraction))), message=message)

    def run_process(self, target: Callable[..., Any], *args: Any, poll_s: float = 0.1) -> Any:
        """Run ``target(*args)`` in a spawned child process; terminate it on cancel. Returns its result."""
        mp = multiprocessing.get_context("spawn")
        out: Any = mp.Queue(maxsize=1)
        proc = mp.Process(target=_child, args=(out, target, args), daemon=True)
        proc.start()
        try:
            while True:
                try:
                    ok, value = out.get(timeout=poll_s)
                    break
                except queue.Empty:
                    pass
                if self.cancel_event.is_set():
                    proc.terminate()
                    raise TaskCancelled("cancelled (child process terminated)")
                if not proc.is_alive() and out.empty():
                    raise ConfigError(f"the task's process died (exit code {proc.exitcode})")
        finally:
            proc.join(5)
        if not ok:
            raise ConfigError(value)
        return value


def _child(out: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        out.put((True, target(*args)))
    except ThunesError as exc:
        out.put((False, str(exc).splitlines()[0]))
    except Exception as exc:  # noqa: BLE001 - reported as the task's error line
        out.put((False, f"{type(exc).__name__}: {exc}"))


class TaskRegistry:
    """Submit, list, inspect and cancel background tasks (module docstring)."""

    def __init__(self, *, max_workers: int = 1, keep: int = 200) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="thunes-task")
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskInfo] = {}
        self._contexts: dict[str, TaskContext] = {}
        self._keep = keep

    def submit(self, kind: str, body: Callable[[TaskContext], dict[str, Any]], params: dict[str, Any]) -> TaskInfo:
        task_id = secrets.token_hex(6)
        info = TaskInfo(id=task_id, kind=kind, params=dict(params), state=TaskState.QUEUED, progress=0.0,
                        message="queued", created_ms=_now_ms())
        ctx = TaskContext(task_id, self)
        with self._lock:
            self._tasks[task_id] = info
            self._contexts[task_id] = ctx
            self._trim()
        self._pool.submit(self._run, ctx, body)
        return info

    def _trim(self) -> None:
        done = [t for t in self._tasks.values() if t.state in _FINAL]
        for t in sorted(done, key=lambda t: t.created_ms)[:max(0, len(self._tasks) - self._keep)]:
            self._tasks.pop(t.id, None)
            self._contexts.pop(t.id, None)

    def _update(self, task_id: str, **changes: Any) -> TaskInfo:
        with self._lock:
            info = replace(self._tasks[task_id], **changes)
            self._tasks[task_id] = info
            return info

    def _run(self, ctx: TaskContext, body: Callable[[TaskContext], dict[str, Any]]) -> None:
        if ctx.cancelled:
            self._update(ctx.task_id, state=TaskState.CANCELLED, message="cancelled before it started",
                         finished_ms=_now_ms())
            return
        self._update(ctx.task_id, state=TaskState.RUNNING, started_ms=_now_ms(), message="running")
        try:
            result = body(ctx)
        except TaskCancelled as exc:
            self._update(ctx.task_id, state=TaskState.CANCELLED, message=str(exc), finished_ms=_now_ms())
        except ThunesError as exc:
            self._update(ctx.task_id, state=TaskState.FAILED, error=str(exc).splitlines()[0], message="failed",
                         finished_ms=_now_ms())
        except Exception as exc:  # noqa: BLE001 - a task failure is reported, never raised into the server
            log.exception("task %s failed", ctx.task_id)
            self._update(ctx.task_id, state=TaskState.FAILED, error=f"{type(exc).__name__}: {exc}",
                         message="failed", finished_ms=_now_ms())
        else:
            self._update(ctx.task_id, state=TaskState.DONE, progress=1.0, message="done", result=result,
                         finished_ms=_now_ms())

    def get(self, task_id: str) -> TaskInfo:
        with self._lock:
            info = self._tasks.get(task_id)
        if info is None:
            raise TaskNotFound(f"no task {task_id!r}")
        return info

    def list(self) -> list[TaskInfo]:
        with self._lock:
            return sorted(self._tasks.values(), key=lambda t: t.created_ms, reverse=True)

    def cancel(self, task_id: str) -> TaskInfo:
        """Ask the task to stop; a queued task never starts, a finished one is left as it is."""
        info = self.get(task_id)
        if info.state in _FINAL:
            return info
        self._contexts[task_id].cancel_event.set()
        return self._update(task_id, cancel_requested=True, message="cancel requested")

    def wait(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            info = self.get(task_id)
            if info.state in _FINAL:
                return info
            time.sleep(0.02)
        return self.get(task_id)

    def close(self) -> None:
        for ctx in list(self._contexts.values()):
            ctx.cancel_event.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
