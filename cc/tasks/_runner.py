"""Run named async tasks on fixed intervals and remember each one's last run, duration and error."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import trio

log = logging.getLogger("tasks")

TaskFn = Callable[[], Awaitable[Any]]


@dataclass
class TaskState:
    """What ``status`` reports per task (times are Unix seconds; ``last_result`` is the task's summary)."""

    name: str
    interval: float
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_start: float | None = None
    last_duration: float | None = None
    last_error: str | None = None         # the error of the latest run (None: it succeeded)
    last_failure: str | None = None       # the latest error ever, kept after later successes
    last_failure_time: float | None = None
    last_result: Any = None
    next_run: float | None = None


class TaskRunner:
    """Each task runs alone (never overlapping itself); a failing run is logged and recorded, the next one
    comes on schedule."""

    def __init__(self) -> None:
        self._tasks: list[tuple[TaskState, TaskFn, float]] = []

    def add(self, name: str, interval: float, fn: TaskFn, *, first_delay: float | None = None) -> None:
        """Register ``fn``: first run after ``first_delay`` (default: one interval), then every ``interval``."""
        self._tasks.append((TaskState(name, interval), fn, interval if first_delay is None else first_delay))

    def names(self) -> list[str]:
        return [s.name for s, _, _ in self._tasks]

    def state(self) -> list[dict[str, Any]]:
        """One dict per task, in registration order (JSON-ready)."""
        return [asdict(s) for s, _, _ in self._tasks]

    async def run_once(self, name: str) -> dict[str, Any]:
        for st, fn, _ in self._tasks:
            if st.name == name:
                await self._run(st, fn)
                return asdict(st)
        raise KeyError(name)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for st, fn, delay in self._tasks:
                nursery.start_soon(self._loop, st, fn, delay)

    async def _loop(self, st: TaskState, fn: TaskFn, delay: float) -> None:
        st.next_run = time.time() + delay
        await trio.sleep(delay)
        while True:
            started = time.monotonic()
            await self._run(st, fn)
            wait = max(0.0, st.interval - (time.monotonic() - started))
            st.next_run = time.time() + wait
            await trio.sleep(wait)

    async def _run(self, st: TaskState, fn: TaskFn) -> None:
        st.running, st.last_start = True, time.time()
        started = time.monotonic()
        try:
            st.last_result = await fn()
            st.last_error = None
        except Exception as e:  # a task failing must not stop the others or its next run
            st.failures += 1
            st.last_error = st.last_failure = f"{type(e).__name__}: {e}"
            st.last_failure_time = time.time()
            log.error("task %s failed: %s", st.name, st.last_error, exc_info=not isinstance(e, OSError))
        finally:
            st.running = False
            st.runs += 1
            st.last_duration = round(time.monotonic() - started, 6)
