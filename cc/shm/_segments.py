"""POSIX shared-memory segments mapped as numpy arrays.

Creation and unlinking are done by the supervisor only; children attach.  A
segment keeps its mmap until :meth:`Segment.close`, which must run after every
numpy view on it was dropped (numpy holds a buffer export on the mmap).
"""

from __future__ import annotations

import glob
import hashlib
import mmap
import os
from pathlib import Path

import numpy as np
import posix_ipc

SHM_DIR = "/dev/shm"


def instance_id(var_dir: str | os.PathLike[str]) -> str:
    """A short id derived from the var directory, so two installations never share segments."""
    return hashlib.sha1(str(Path(var_dir).resolve()).encode()).hexdigest()[:10]


def segment_name(instance: str, part: str) -> str:
    return f"/cc-{instance}-{part}"


class Segment:
    """One mapped segment.  ``fd`` stays open only for the lock segment (OFD locks need it)."""

    def __init__(self, name: str, size: int, *, create: bool, keep_fd: bool = False):
        self.name = name
        self.size = size
        flags = posix_ipc.O_CREX if create else 0
        shm = posix_ipc.SharedMemory(name, flags, mode=0o600, size=size if create else 0)
        try:
            actual = os.fstat(shm.fd).st_size
            if not create and actual < size:
                raise ValueError(f"shared memory segment {name} has {actual} bytes, expected {size}")
            self.mmap = mmap.mmap(shm.fd, size) if size else None
        except BaseException:
            shm.close_fd()
            raise
        if keep_fd:
            self.fd: int | None = shm.fd
        else:
            self.fd = None
            shm.close_fd()

    def array(self, dtype, shape) -> np.ndarray:
        assert self.mmap is not None
        return np.ndarray(shape, dtype=dtype, buffer=self.mmap)

    def close(self) -> None:
        if self.mmap is not None:
            try:
                self.mmap.close()
            except BufferError:
                # A view is still alive somewhere; leave the mapping to process exit.
                pass
            self.mmap = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def segment_exists(name: str) -> bool:
    return os.path.exists(SHM_DIR + name)


def unlink_all(instance: str) -> list[str]:
    """Remove every segment of an instance; returns the names removed."""
    removed = []
    for path in glob.glob(f"{SHM_DIR}/cc-{instance}-*"):
        name = "/" + os.path.basename(path)
        try:
            posix_ipc.unlink_shared_memory(name)
            removed.append(name)
        except posix_ipc.ExistentialError:
            pass
    return removed


def list_segments(instance: str) -> list[tuple[str, int, int]]:
    """(name, apparent size, bytes really allocated) for each segment of an instance."""
    out = []
    for path in sorted(glob.glob(f"{SHM_DIR}/cc-{instance}-*")):
        st = os.stat(path)
        out.append(("/" + os.path.basename(path), st.st_size, st.st_blocks * 512))
    return out
