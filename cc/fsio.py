"""Replacing files atomically and durably: one place for the temp-file, fsync, rename, fsync-directory dance.

The WAL, snapshots, the Parquet and job archives and small state files all need it; a
rename is only durable once the directory holding it is synced too.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


def fsync_dir(path: Path | str) -> None:
    """Make the entries of a directory (created, renamed files) durable.

    File systems that cannot sync a directory (EINVAL, ENOTSUP: some network file
    systems) are accepted: there is nothing more to do there.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (it may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def replace_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix.

    With ``durable`` the content and the rename survive a power cut once this returns
    (fsync of the file and of its directory); without, only a process crash.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)
