"""Tell the supervisor a child's NATS connection state, for ``cc-supervise status``.

The supervisor starts each child with ``CC_CHILD_NAME`` and ``CC_SUPERVISOR_SOCK`` in its
environment; a process started otherwise (the agent on a node, the adapter by systemd)
has nothing to report to and the reporter does nothing.  Only the newest state is sent,
so a slow or restarting supervisor never makes a child queue up states.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio

from cc import ipc

log = logging.getLogger("nats")


class StateReporter:
    def __init__(self, subject: str = "nats"):
        self.name = os.environ.get("CC_CHILD_NAME")
        sock = os.environ.get("CC_SUPERVISOR_SOCK")
        self.sock = Path(sock) if sock else None
        self.key = subject
        self.state: str | None = None
        self._sent: str | None = None
        self._changed = trio.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.name and self.sock)

    def __call__(self, state: str) -> None:
        """The ``on_state`` callback of :class:`cc.nats.NatsClient` (Trio thread, never blocks)."""
        self.state = state
        self._changed.set()

    async def run(self) -> None:
        if not self.enabled:
            return
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            state = self.state
            if state == self._sent:
                continue
            try:
                await ipc.request(self.sock, {"cmd": "report", "name": self.name, "pid": os.getpid(),
                                              self.key: state}, timeout=5)
                self._sent = state
            except (ipc.IPCError, OSError, trio.TooSlowError) as e:
                log.debug("cannot report NATS state to the supervisor: %s", e)
                await trio.sleep(1)
                self._changed.set()
