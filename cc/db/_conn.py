"""SQLite connections: WAL mode, foreign keys, and a thread-local pool for Trio code.

SQLite calls block, so Trio code never makes them on the event loop: it hands a
function to :class:`Database`, which runs it in a worker thread with that thread's own
connection.  Writes go through one thread at a time (SQLite has one writer anyway);
reads run in parallel and, thanks to WAL, are never blocked by the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every process uses."""
    if readonly:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache per connection
    conn.row_factory = sqlite3.Row
    return conn


class Database:
    """Runs blocking repository functions in threads, each thread with its own connection.

    ``await db.read(fn, *args)`` calls ``fn(conn, *args)`` on a reader connection,
    ``await db.write(fn, *args)`` inside a transaction on the single writer connection
    (committed when ``fn`` returns, rolled back when it raises: nothing half-written).
    """

    def __init__(self, path: str | Path, readers: int = 4):
        self.path = Path(path)
        self._local = threading.local()
        self._read_limiter = trio.CapacityLimiter(readers)
        self._write_limiter = trio.CapacityLimiter(1)
        self._writer: sqlite3.Connection | None = None
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
            with self._lock:
                self._all.append(conn)
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = connect(self.path)
            with self._lock:
                self._all.append(self._writer)
        return self._writer

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._reader(), *args)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return transaction(self._writer_conn(), fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self.read_sync, fn, *args, limiter=self._read_limiter)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self.write_sync, fn, *args, limiter=self._write_limiter)

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._writer = None
        self._local = threading.local()


def transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(conn, *args)`` in one transaction on an autocommit connection (for CLI tools)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
