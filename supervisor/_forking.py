"""The supervisor's side of the fork server (:mod:`supervisor._forkserver`).

The supervisor marks itself a *child subreaper*, so the children the fork server forks
(through a middle process that exits at once) become the supervisor's own children: it
waits for them through a pidfd, signals them through it (no pid-reuse races) and, as a
subreaper, also collects orphans of its children (say, a ``squeue`` whose adapter was
killed) with :func:`reap_orphans`.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Iterable
from pathlib import Path

import orjson
import trio

PR_SET_CHILD_SUBREAPER = 36
SPAWN_TIMEOUT = 60.0


class SpawnError(Exception):
    """The fork server could not start a child (it is gone, or the fork failed)."""


def become_subreaper(on: bool = True) -> bool:
    """Make orphaned descendants our children (Linux), or stop that; False where that is not possible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class ForkedProcess:
    """A child the fork server made, with the part of :class:`trio.Process` the supervisor uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)  # the child cannot be reaped before we wait: we are its parent
        self._waiting = False
        self._changed = trio.Event()

    async def wait(self) -> int:
        """Wait for the exit and reap it; any number of tasks may wait at once."""
        while self.returncode is None:
            if self._waiting:
                await self._changed.wait()
                continue
            self._waiting = True
            try:
                await trio.lowlevel.wait_readable(self._pidfd)
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
                os.close(self._pidfd)
            finally:
                self._waiting = False
                changed, self._changed = self._changed, trio.Event()
                changed.set()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServerClient:
    """Requests to one running fork server, one at a time."""

    def __init__(self, sock: socket.socket):
        self._sock = trio.socket.from_stdlib_socket(sock)
        self.lock = trio.Lock()  # also held by reap_orphans' caller: a fresh child is registered under it

    def close(self) -> None:
        self._sock.close()

    async def spawn(self, name: str, module: str, args: list[str], *, env: dict[str, str], cwd: str, log_fd: int,
                    pass_fds: Iterable[int] = ()) -> ForkedProcess:
        """Fork ``python -m module args`` (titled ``name``) with stdout/stderr to ``log_fd`` and ``pass_fds`` at their numbers.

        The caller holds :attr:`lock` (so nothing reaps the child before it is known).
        """
        pass_fds = list(pass_fds)
        msg = orjson.dumps({"name": name, "module": module, "args": args, "env": env, "cwd": cwd, "fds": pass_fds})
        fds = array.array("i", [log_fd, *pass_fds])
        try:
            with trio.fail_after(SPAWN_TIMEOUT):
                await self._sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
                answer = await self._sock.recv(65536)
        except trio.TooSlowError:
            raise SpawnError(f"fork server did not answer within {SPAWN_TIMEOUT:.0f}s") from None
        except OSError as e:
            raise SpawnError(f"fork server unreachable: {e.strerror or e}") from None
        if not answer:
            raise SpawnError("fork server exited")
        doc = orjson.loads(answer)
        if "pid" not in doc:
            raise SpawnError(str(doc.get("error", doc)))
        return ForkedProcess(int(doc["pid"]))


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor end, fork-server end); only the latter is inheritable."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.set_inheritable(True)
    return ours, theirs


def reap_orphans(known: set[int]) -> list[int]:
    """Reap zombie children that are not ours to wait for (orphans handed to us as subreaper)."""
    me, reaped = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in known:
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and fields[0] == b"Z" and int(fields[1]) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)
                reaped.append(int(entry.name))
    return reaped
