"""cc.db.Database: reads run in parallel on a bounded pool of connections, whatever threads run them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import trio

from cc.db import Database
from cc.db._migrate import migrate


def _db_fds(path: Path) -> int:
    """Open file descriptors of this process on the database file itself."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                n += 1
        except OSError:
            pass
    return n


def _count_jobs(conn):
    return conn.execute("SELECT count(*) FROM job").fetchone()[0]


def test_new_threads_reuse_connections(tmp_path):
    """Regression: connections were per thread and never closed, and Trio's worker threads come and go
    (retired after 10 s idle), so a long-running web process collected connections and their page caches."""
    path = tmp_path / "job.db"
    migrate(path, backup=False)
    db = Database(path, readers=4)
    try:
        before = _db_fds(path)
        for _ in range(50):  # 50 threads one after the other, as Trio's thread cache turns over
            out: list[int] = []
            t = threading.Thread(target=lambda out=out: out.append(db.read_sync(_count_jobs)))
            t.start()
            t.join()
            assert out == [0]
        assert db.reader_connections == 1
        assert _db_fds(path) - before <= 1
    finally:
        db.close()
    assert db.reader_connections == 0


async def test_reads_run_in_parallel_on_at_most_readers_connections(tmp_path):
    path = tmp_path / "job.db"
    migrate(path, backup=False)
    db = Database(path, readers=3)
    inside = 0
    most = 0
    all_in = threading.Event()
    lock = threading.Lock()

    def slow(conn):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
            if inside == 3:
                all_in.set()
        all_in.wait(10)  # three reads are inside at once: they do not wait for each other
        conn.execute("SELECT count(*) FROM job").fetchone()
        with lock:
            inside -= 1
        return True

    try:
        async with trio.open_nursery() as n:
            for _ in range(9):
                n.start_soon(db.read, slow)
        assert all_in.is_set() and most == 3
        assert db.reader_connections == 3
        # closing keeps the database usable: the next read opens a fresh connection
        db.close()
        assert db.reader_connections == 0
        assert await db.read(_count_jobs) == 0
        assert db.reader_connections == 1
    finally:
        db.close()


async def test_a_connection_in_use_during_close_is_closed_when_returned(tmp_path):
    path = tmp_path / "job.db"
    migrate(path, backup=False)
    db = Database(path, readers=2)
    entered, release = threading.Event(), threading.Event()

    def held(conn):
        entered.set()
        release.wait(10)
        return conn.execute("SELECT 1").fetchone()[0]

    async with trio.open_nursery() as n:
        n.start_soon(db.read, held)
        await trio.to_thread.run_sync(entered.wait, 10)
        db.close()
        release.set()
    assert db.reader_connections == 0
