"""What every child process does at start (parse the common flags, log, die with the supervisor),
and how a parent stops a subprocess it started."""

from __future__ import annotations

import argparse
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable

import trio

from cc.config import Config, load_config
from cc.shm import instance_id


def stop_subprocess(proc: subprocess.Popen | None, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; True if it had to be killed."""
    if proc is None or proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    return False


def supervisor_pid() -> int | None:
    pid = os.environ.get("CC_SUPERVISOR_PID")
    return int(pid) if pid and pid.isdigit() else None


async def watch_parent(shutdown: trio.Event, log: logging.Logger, interval: float = 0.5) -> None:
    """Stop when the supervisor is gone, so no orphan keeps serving.

    (PR_SET_PDEATHSIG is tied to the parent *thread*, and Trio spawns processes from
    worker threads that retire when idle, so we poll our parent pid instead.)
    """
    expected = supervisor_pid()
    if expected is None:
        return
    while not shutdown.is_set():
        if os.getppid() != expected:
            log.warning("supervisor (pid %d) is gone; shutting down", expected)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        await trio.sleep(interval)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_heap() -> bool:
    """Return freed heap memory to the kernel (glibc ``malloc_trim``); False where unavailable.

    Why: glibc keeps freed chunks in the middle of the heap mapped, so a burst of temporary
    allocations (an ingest worker registering 100,000 new series) would stay in the RSS of a
    long-running process for good.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


async def keep_heap_trimmed(progress: Callable[[], int] | None = None, *, settle: float = 5.0,
                            every: float = 600.0) -> None:
    """Call :func:`release_free_heap` at quiet moments, for the life of the process.

    Once ``settle`` seconds after the start (imports and setup leave freed temporaries
    behind), ``settle`` seconds after a burst of work counted by ``progress`` is over (say, an
    ingest worker registering new series), and every ``every`` seconds.  The trim runs in a
    worker thread: it walks the whole heap.
    """
    last = progress() if progress else 0
    trimmed_at: int | None = None
    waited = 0.0
    while True:
        await trio.sleep(settle)
        waited += settle
        now = progress() if progress else 0
        if (now == last and now != trimmed_at) or waited >= every:
            if not await trio.to_thread.run_sync(release_free_heap):
                return
            trimmed_at, waited = now, 0.0
        last = now


def setup_logging(name: str, level: str | None = None) -> logging.Logger:
    """Log in the common format of :mod:`cc.logformat` (process ``name``), at ``level`` or ``$LOGLEVEL``."""
    from cc.logformat import configure

    configure(name, level or os.environ.get("LOGLEVEL") or "info")
    return logging.getLogger(name)


def child_args(description: str, *, listen: bool = False, worker: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True, help="path of config.json")
    p.add_argument("--instance", help="shared-memory instance id (default: derived from the var directory)")
    p.add_argument("--slot", type=int, required=True, help="counter slot in the shared-memory header")
    if listen:
        p.add_argument("--listen-fd", type=int, required=True, help="inherited listening socket")
    if worker:
        p.add_argument("--worker", type=int, default=0, help="worker number")
    return p


def load(args: argparse.Namespace) -> tuple[Config, str]:
    cfg = load_config(args.config)
    return cfg, args.instance or instance_id(cfg.var_dir)


def run(main: Callable[[trio.Nursery, trio.Event], Awaitable[None]], log: logging.Logger,
        grace: float = 5.0, heap_progress: Callable[[], int] | None = None) -> None:
    """Run ``main(nursery, shutdown)`` under Trio.

    SIGTERM/SIGINT set ``shutdown`` (servers use it to finish in-flight requests);
    whatever still runs ``grace`` seconds later is cancelled.  ``heap_progress`` counts work
    after whose bursts the heap is trimmed (:func:`keep_heap_trimmed`).
    """

    async def runner() -> None:
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
                    async for sig in sigs:
                        log.info("received %s, shutting down", signal.Signals(sig).name)
                        shutdown.set()
                        nursery.cancel_scope.deadline = trio.current_time() + grace
                        return

            nursery.start_soon(watch_signals)
            nursery.start_soon(watch_parent, shutdown, log)
            nursery.start_soon(keep_heap_trimmed, heap_progress)
            await main(nursery, shutdown)
            nursery.cancel_scope.cancel()

    expected = supervisor_pid()
    if expected is not None and os.getppid() != expected:
        sys.exit(0)  # the supervisor died before we started
    trio.run(runner)
