"""What every child process does at start: parse the common flags, log, die with the supervisor."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import trio

from cc.config import Config, load_config
from cc.shm import instance_id

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM us when the supervisor dies, so no orphan keeps serving."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    expected = os.environ.get("CC_SUPERVISOR_PID")
    if expected and os.getppid() != int(expected):
        # The supervisor died before we could register: leave now.
        sys.exit(0)


def setup_logging(name: str, level: str | None = None) -> logging.Logger:
    level = (level or os.environ.get("LOGLEVEL") or "info").upper()
    level = {"WARN": "WARNING", "ERR": "ERROR", "CRIT": "CRITICAL"}.get(level, level)
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format=f"%(asctime)s %(levelname)s {name}: %(message)s",
        stream=sys.stderr,
    )
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
        grace: float = 5.0) -> None:
    """Run ``main(nursery, shutdown)`` under Trio.

    SIGTERM/SIGINT set ``shutdown`` (servers use it to finish in-flight requests);
    whatever still runs ``grace`` seconds later is cancelled.
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
            await main(nursery, shutdown)
            nursery.cancel_scope.cancel()

    die_with_parent()
    trio.run(runner)
