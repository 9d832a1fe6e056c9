"""``main.nodestate-retention``: node-state rows older than ``age`` hours are deleted, or moved to
Parquet files first (policy ``move``).

Parquet files are ``<target-path>/cc-nodestate-<YYYY-MM-DD>-<NNN>.parquet`` (zstd; with
``target-kind: s3`` at the top of ``target-bucket``), one or more per run (each at most about ``max-file-size-mb``), with cc-backend's columns: time_stamp (int64),
node_state, health_state, health_metrics (nullable), cpus_allocated (int32), memory_allocated (int64),
gpus_allocated (int32), jobs_running (int32), hostname, cluster, subcluster, sorted by cluster,
subcluster, hostname, time_stamp.  Unlike cc-backend, a later run of the same day never overwrites an
earlier file (the number goes on).  Rows are deleted only after their files are stored (fsynced,
or the S3 upload completed).
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
from cc.fsio import fsync_dir
from cc.tasks._settings import NodeStateRetention, S3Target

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


class FileTarget:
    """A directory; each file is written to a temporary name, fsynced and renamed."""

    def __init__(self, path: Path):
        self.path = path

    def names(self) -> list[str]:
        self.path.mkdir(parents=True, exist_ok=True)
        return [p.name for p in self.path.iterdir()]

    def put(self, name: str, blob: bytes) -> None:
        tmp = self.path / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)

    def finish(self) -> None:
        fsync_dir(self.path)

    def __str__(self) -> str:
        return str(self.path)


class S3BucketTarget:
    """The top of an S3 bucket, through pyarrow's S3 filesystem (an upload is complete or absent)."""

    def __init__(self, cfg: S3Target):
        from pyarrow import fs

        self.bucket = cfg.bucket
        self.fs = fs.S3FileSystem(access_key=cfg.access_key, secret_key=cfg.secret_key, region=cfg.region,
                                  scheme=cfg.scheme, endpoint_override=cfg.endpoint,
                                  force_virtual_addressing=not cfg.use_path_style)

    def names(self) -> list[str]:
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self.bucket, recursive=False))
        return [i.base_name for i in infos if i.type == fs.FileType.File]

    def put(self, name: str, blob: bytes) -> None:
        with self.fs.open_output_stream(f"{self.bucket}/{name}") as out:
            out.write(blob)

    def finish(self) -> None:
        pass

    def __str__(self) -> str:
        return f"s3://{self.bucket}"


def target_of(cfg: NodeStateRetention) -> FileTarget | S3BucketTarget:
    if cfg.s3 is not None:
        return S3BucketTarget(cfg.s3)
    assert cfg.target_path is not None
    return FileTarget(cfg.target_path)


def _encode(rows: list[tuple]) -> bytes:
    cols = list(zip(*rows, strict=True))
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, SCHEMA, strict=True)],
                                 schema=SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_parquet(target: FileTarget | S3BucketTarget | Path, rows: list[tuple], max_file_size_mb: int,
                  day: str | None = None) -> list[str]:
    """Write ``rows`` (columns of :data:`SCHEMA`) into new files of about ``max_file_size_mb`` at most;
    their names."""
    if isinstance(target, Path):
        target = FileTarget(target)
    day = day or time.strftime("%Y-%m-%d")
    limit = max_file_size_mb * 1024 * 1024
    used = [int(m.group(2)) for n in target.names() if (m := _NAME.match(n)) and m.group(1) == day]
    number = max(used, default=0) + 1
    names: list[str] = []
    batches: list[list[tuple]] = [[]]
    size = 0
    for row in rows:
        est = ROW_OVERHEAD + sum(len(v) for v in (row[1], row[2], row[3] or "", row[8], row[9], row[10]))
        if batches[-1] and size + est > limit:
            batches.append([])
            size = 0
        batches[-1].append(row)
        size += est
    for batch in batches:
        if batch:
            name = f"cc-nodestate-{day}-{number + len(names):03d}.parquet"
            target.put(name, _encode(batch))
            names.append(name)
    if names:
        target.finish()
    return names


async def apply_retention(db: Database, cfg: NodeStateRetention, now: float | None = None) -> dict:
    """One run: delete, or write the files and then delete the rows they hold."""
    cutoff = int(time.time() if now is None else now) - cfg.age_hours * 3600
    if cfg.policy == "delete":
        return {"policy": "delete", "deleted": await db.write(delete_before, cutoff)}
    rows = await db.read(rows_before, cutoff)
    if not rows:
        return {"policy": "move", "moved": 0, "files": []}
    target = target_of(cfg)
    files = await trio.to_thread.run_sync(write_parquet, target, [r[1:] for r in rows], cfg.max_file_size_mb)
    moved = await db.write(delete_before, cutoff, max(r[0] for r in rows))
    return {"policy": "move", "moved": moved, "files": files, "target": str(target)}
