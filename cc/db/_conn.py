"""SQLite connections: WAL mode, foreign keys, and a small connection pool for Trio code.

SQLite calls block, so Trio code never makes them on the event loop: it hands a
function to :class:`Database`, which runs it in a worker thread on a pooled connection.
Writes go through one thread at a time (SQLite has one writer anyway); reads run in
parallel and, thanks to WAL, are never blocked by the writer.
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
    """Runs blocking repository functions in worker threads, on pooled connections.

    ``await db.read(fn, *args)`` calls ``fn(conn, *args)`` on a reader connection,
    ``await db.write(fn, *args)`` inside a transaction on the single writer connection
    (committed when ``fn`` returns, rolled back when it raises: nothing half-written).
    """

    def __init__(self, path: str | Path, readers: int = 4):
        self.path = Path(path)
        self.readers = readers
        self._read_limiter = trio.CapacityLimiter(readers)
        self._write_limiter = trio.CapacityLimiter(1)
        self._writer: sqlite3.Connection | None = None
        # Idle reader connections.  Not one per thread: Trio retires worker threads after
        # 10 s idle and starts new ones, so per-thread connections piled up (each with up to
        # 64 MiB of page cache) -- the web process grew by ~100 MiB an hour that way.
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0  # reader connections open now (idle or in use), for tests and leaks
        self._generation = 0  # bumped by close(): connections in use then are closed when returned
        self._lock = threading.Lock()

    def _checkout(self) -> tuple[sqlite3.Connection, int]:
        with self._lock:
            gen = self._generation
            if self._idle:
                return self._idle.pop(), gen
            self._opened += 1
        try:
            return connect(self.path), gen
        except BaseException:
            with self._lock:
                self._opened -= 1
            raise

    def _checkin(self, conn: sqlite3.Connection, gen: int) -> None:
        with self._lock:
            if gen == self._generation and len(self._idle) < self.readers:
                self._idle.append(conn)
                return
            self._opened -= 1
        conn.close()

    @property
    def reader_connections(self) -> int:
        """Reader connections open now (at most ``readers`` once the calls have returned)."""
        with self._lock:
            return self._opened

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = connect(self.path)
        return self._writer

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        conn, gen = self._checkout()
        try:
            return fn(conn, *args)
        finally:
            if conn.in_transaction:  # a reader left a transaction open: do not hand it on
                conn.rollback()
            self._checkin(conn, gen)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return transaction(self._writer_conn(), fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self.read_sync, fn, *args, limiter=self._read_limiter)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self.write_sync, fn, *args, limiter=self._write_limiter)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
            self._generation += 1
            writer, self._writer = self._writer, None
        for c in [*idle, writer]:
            if c is not None:
                try:
                    c.close()
                except sqlite3.Error:
                    pass


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
