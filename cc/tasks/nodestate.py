"""``main.nodestate-retention``: node-state rows older than ``age`` hours are deleted, or moved to
Parquet files first (policy ``move``).

Parquet files are ``<target-path>/cc-nodestate-<YYYY-MM-DD>-<NNN>.parquet`` (zstd), one or more per
run (each at most about ``max-file-size-mb``), with cc-backend's columns: time_stamp (int64),
node_state, health_state, health_metrics (nullable), cpus_allocated (int32), memory_allocated (int64),
gpus_allocated (int32), jobs_running (int32), hostname, cluster, subcluster, sorted by cluster,
subcluster, hostname, time_stamp.  Unlike cc-backend, a later run of the same day never overwrites an
earlier file (the number goes on).  Rows are deleted only after their files are on disk (fsynced).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import trio

from cc.db import Database
from cc.tasks._settings import NodeStateRetention

SCHEMA = pa.schema([
    ("time_stamp", pa.int64()), ("node_state", pa.string()), ("health_state", pa.string()),
    ("health_metrics", pa.string()), ("cpus_allocated", pa.int32()), ("memory_allocated", pa.int64()),
    ("gpus_allocated", pa.int32()), ("jobs_running", pa.int32()), ("hostname", pa.string()),
    ("cluster", pa.string()), ("subcluster", pa.string()),
])
ROW_OVERHEAD = 100  # bytes per row besides its strings, as cc-backend estimates a file's size
_NAME = re.compile(r"cc-nodestate-(\d{4}-\d{2}-\d{2})-(\d+)\.parquet\Z")


def delete_before(conn: sqlite3.Connection, cutoff: int, max_id: int | None = None) -> int:
    sql, params = "DELETE FROM node_state WHERE time_stamp < ?", [cutoff]
    if max_id is not None:
        sql += " AND id <= ?"
        params.append(max_id)
    return conn.execute(sql, params).rowcount


def rows_before(conn: sqlite3.Connection, cutoff: int) -> list[tuple]:
    """(id, then the columns of :data:`SCHEMA`) of every row older than ``cutoff``, in the files' order."""
    return conn.execute(
        "SELECT s.id, s.time_stamp, s.node_state, s.health_state, s.health_metrics, s.cpus_allocated, "
        "s.memory_allocated, s.gpus_allocated, s.jobs_running, n.hostname, n.cluster, n.subcluster "
        "FROM node_state AS s JOIN node AS n ON n.id = s.node_id WHERE s.time_stamp < ? "
        "ORDER BY n.cluster, n.subcluster, n.hostname, s.time_stamp", (cutoff,)).fetchall()


def _next_number(target: Path, day: str) -> int:
    used = [int(m.group(2)) for p in target.iterdir() if (m := _NAME.match(p.name)) and m.group(1) == day]
    return max(used, default=0) + 1


def _write(target: Path, name: str, rows: list[tuple]) -> None:
    cols = list(zip(*rows, strict=True))
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, SCHEMA, strict=True)],
                                 schema=SCHEMA)
    tmp = target / f".{name}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target / name)


def write_parquet(target: Path, rows: list[tuple], max_file_size_mb: int, day: str | None = None) -> list[Path]:
    """Write ``rows`` (columns of :data:`SCHEMA`) into new files of about ``max_file_size_mb`` at most."""
    target.mkdir(parents=True, exist_ok=True)
    day = day or time.strftime("%Y-%m-%d")
    limit = max_file_size_mb * 1024 * 1024
    number = _next_number(target, day)
    files: list[Path] = []
    batch: list[tuple] = []
    size = 0
    for row in rows:
        est = ROW_OVERHEAD + sum(len(v) for v in (row[1], row[2], row[3] or "", row[8], row[9], row[10]))
        if batch and size + est > limit:
            files.append(target / (name := f"cc-nodestate-{day}-{number:03d}.parquet"))
            _write(target, name, batch)
            number, batch, size = number + 1, [], 0
        batch.append(row)
        size += est
    if batch:
        files.append(target / (name := f"cc-nodestate-{day}-{number:03d}.parquet"))
        _write(target, name, batch)
    if files:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return files


async def apply_retention(db: Database, cfg: NodeStateRetention, now: float | None = None) -> dict:
    """One run: delete, or write the files and then delete the rows they hold."""
    cutoff = int(time.time() if now is None else now) - cfg.age_hours * 3600
    if cfg.policy == "delete":
        return {"policy": "delete", "deleted": await db.write(delete_before, cutoff)}
    rows = await db.read(rows_before, cutoff)
    if not rows:
        return {"policy": "move", "moved": 0, "files": []}
    assert cfg.target_path is not None
    files = await trio.to_thread.run_sync(write_parquet, cfg.target_path, [r[1:] for r in rows],
                                          cfg.max_file_size_mb)
    moved = await db.write(delete_before, cutoff, max(r[0] for r in rows))
    return {"policy": "move", "moved": moved, "files": [f.name for f in files]}
