"""Cross-process locks that die with their holder.

We use Linux open-file-description (OFD) record locks on one byte each of the lock
segment.  The kernel drops them when the holding process dies, even by SIGKILL, so
a killed ingest process can never leave the store locked.  OFD locks belong to the
file description, not the process, so a thread lock guards use within a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import struct
import threading
from collections.abc import Iterator

_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)


def _flock(kind: int, offset: int) -> bytes:
    # struct flock { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; }
    return struct.pack("@hhqqi4x", kind, 0, offset, 1, 0)


class LockSet:
    """Byte-range locks on one file descriptor, plus a per-lock thread mutex."""

    def __init__(self, fd: int):
        self.fd = fd
        self._thread_locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _tlock(self, index: int) -> threading.Lock:
        with self._guard:
            lk = self._thread_locks.get(index)
            if lk is None:
                lk = self._thread_locks[index] = threading.Lock()
            return lk

    @contextlib.contextmanager
    def hold(self, index: int) -> Iterator[None]:
        tl = self._tlock(index)
        with tl:
            fcntl.fcntl(self.fd, _F_OFD_SETLKW, _flock(fcntl.F_WRLCK, index))
            try:
                yield
            finally:
                fcntl.fcntl(self.fd, _F_OFD_SETLK, _flock(fcntl.F_UNLCK, index))

    @contextlib.contextmanager
    def try_hold(self, index: int) -> Iterator[bool]:
        """Yield True if the lock was free and is now held; never blocks."""
        tl = self._tlock(index)
        if not tl.acquire(blocking=False):
            yield False
            return
        try:
            try:
                fcntl.fcntl(self.fd, _F_OFD_SETLK, _flock(fcntl.F_WRLCK, index))
            except (BlockingIOError, PermissionError):
                yield False
                return
            try:
                yield True
            finally:
                fcntl.fcntl(self.fd, _F_OFD_SETLK, _flock(fcntl.F_UNLCK, index))
        finally:
            tl.release()
